"""The cluster's credentials: a self-signed CA, the API server's serving certificate, an
admin bearer token and the kubeconfig that ties them together.

Everything lives in ``<data-dir>/pki`` and is generated once; later starts reuse it, so a
kubeconfig handed out earlier keeps working across restarts.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Names and addresses the serving certificate is valid for: loopback (how the host reaches
# the API) and the in-cluster names of the `kubernetes` service.
_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
_IP_ADDRESSES = ("127.0.0.1", "::1", "10.96.0.1")


@dataclass(frozen=True)
class Pki:
    """Paths of the generated files and the admin token."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    token: str


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _generate(pki_dir: Path, extra_ips: tuple[str, ...]) -> None:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = _new_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svcnet-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = _new_key()
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in _DNS_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in (*_IP_ADDRESSES, *extra_ips)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(pki_dir / "ca.key", _key_pem(ca_key))
    _write_private(pki_dir / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(pki_dir / "apiserver.key", _key_pem(key))
    _write_private(pki_dir / "apiserver.crt", cert.public_bytes(serialization.Encoding.PEM))


def ensure_pki(data_dir: Path, extra_ips: tuple[str, ...] = ()) -> Pki:
    """Create the CA, serving certificate and admin token under ``data_dir/pki`` unless
    they exist; return their locations. Safe to call from several processes in turn."""
    pki_dir = data_dir / "pki"
    pki_dir.mkdir(parents=True, exist_ok=True)
    if not (pki_dir / "apiserver.crt").exists():
        _generate(pki_dir, extra_ips)
    token_file = pki_dir / "admin.token"
    if not token_file.exists():
        _write_private(token_file, secrets.token_urlsafe(32).encode())
    return Pki(
        ca_cert=pki_dir / "ca.crt",
        server_cert=pki_dir / "apiserver.crt",
        server_key=pki_dir / "apiserver.key",
        token=token_file.read_text().strip(),
    )


def kubeconfig_dict(pki: Pki, server: str, cluster: str = "svcnet") -> dict[str, object]:
    """A kubeconfig with the CA embedded and the admin token as the user's credential."""
    ca_b64 = base64.b64encode(pki.ca_cert.read_bytes()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": cluster, "cluster": {"server": server, "certificate-authority-data": ca_b64}}
        ],
        "users": [{"name": "admin", "user": {"token": pki.token}}],
        "contexts": [
            {"name": cluster, "context": {"cluster": cluster, "user": "admin",
                                          "namespace": "default"}}
        ],
        "current-context": cluster,
        "preferences": {},
    }


def write_kubeconfig(path: Path, pki: Pki, server: str) -> None:
    """Write (atomically, mode 0600) the admin kubeconfig for ``server``."""
    text = yaml.safe_dump(kubeconfig_dict(pki, server), sort_keys=False)
    _write_private(path, text.encode())
