"""The ``netns`` runtime: a network namespace per node with a bridge, one per pod.

Layout (``P`` = prefix, default ``svcnet``)::

    netns P-node-<node>          lo up, bridge cbr0 = first address of the pod CIDR,
                                 ip_forward=1, bridge-nf-call-iptables set on purpose
       cbr0 ── veth<hash11>      one port per pod, hairpin on
                  │
    netns P-<uid12>              eth0 = pod IP (from the pod CIDR), lo up,
                                 default route via the bridge address
    /etc/netns/P-<uid12>/        resolv.conf, hosts, hostname (``ip netns exec``
                                 bind-mounts them over /etc/...)

Every link is created with ``ip -n <node-ns> ... peer ... netns <pod-ns>``, so nothing
ever appears in the host's namespace; the host's interfaces, routes, firewall and sysctls
are never touched.

``net.bridge.bridge-nf-call-iptables`` (only present when the ``br_netfilter`` module is
loaded) is set inside the node namespace to ``bridge_nf_call_iptables`` — 0 by default.
In a new namespace it is 1, and then a pod reaching itself through a service VIP stalls on
retransmits (hairpin). 0 is right for the userspace proxy and for a kernel dataplane that
masquerades pod-to-service traffic; a kernel dataplane that DNATs without masquerading
pod-sourced traffic (kube-proxy's pod-CIDR local-traffic detector) needs 1, because the
reply of a pod on the same bridge is otherwise bridged past conntrack and never
un-DNATed. When ``br_netfilter`` is not loaded the setting does not exist and bridged
traffic bypasses netfilter anyway (:attr:`NetnsRuntime.notes` says so). If the module
is loaded later, the kernel gives existing namespaces the default 1: restart the agent.

Processes run via :meth:`NetnsRuntime.exec_prefix`: ``ip netns exec <pod-ns>`` (network
namespace + /etc/netns files) then ``unshare --uts`` with the pod's hostname; each step
``exec``s the next, so a container's pid is the pid the agent started.

On :meth:`NetnsRuntime.start`, sandboxes recorded by an earlier run are removed (the agent
recreates its pods): processes (recorded ones, and every process found in the pod's
namespace), the namespace (and with it the veth pair), the /etc/netns directory, the
address.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
from pathlib import Path

from svcnet._util import netns as _netns
from svcnet.agent.runtime.base import (
    ContainerProcess,
    ContainerSpec,
    DNSSettings,
    Sandbox,
    SandboxSpec,
)
from svcnet.agent.runtime.containers import AddressPool, ProcessTable, SandboxRecords

log = logging.getLogger(__name__)

BRIDGE = "cbr0"
ETC_NETNS = Path("/etc/netns")
_NETNS_NAME_MAX = 64
_BRIDGE_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


# --------------------------------------------------------------------------- names


def _fit(name: str, limit: int) -> str:
    """``name`` if it fits in ``limit`` characters, else its head plus a hash."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:limit - 9]}-{digest}"


def node_netns_name(prefix: str, node: str) -> str:
    """``<prefix>-node-<node>`` (node name sanitised, trimmed and hashed if long)."""
    return _fit(f"{prefix}-node-{re.sub(r'[^A-Za-z0-9_.-]', '-', node)}", _NETNS_NAME_MAX)


def short_uid(pod_uid: str) -> str:
    """12 characters naming a pod: the UID's first 12 hex digits (a hash of the UID
    when it is not a UUID-like string)."""
    hexchars = re.sub(r"[^0-9a-f]", "", pod_uid.lower())
    if len(hexchars) >= 12 and re.fullmatch(r"[0-9a-fA-F-]+", pod_uid):
        return hexchars[:12]
    return hashlib.sha256(pod_uid.encode()).hexdigest()[:12]


def pod_netns_name(prefix: str, pod_uid: str) -> str:
    return _fit(f"{prefix}-{short_uid(pod_uid)}", _NETNS_NAME_MAX)


def veth_name(pod_uid: str, salt: str = "") -> str:
    """The bridge-side veth: ``veth`` + 11 hash digits = 15 characters (IFNAMSIZ-1).
    Each sandbox gets a fresh ``salt`` (recorded with it): a namespace's links go away
    asynchronously after it is deleted, so a pod recreated at once must not need the
    same name."""
    return "veth" + hashlib.sha256(f"{pod_uid}/{salt}".encode()).hexdigest()[:11]


# --------------------------------------------------------------------------- files


def resolv_conf(dns: DNSSettings) -> str:
    """resolv.conf as containerd writes it for a pod: ``search``, ``nameserver``
    lines, ``options``."""
    lines = []
    if dns.searches:
        lines.append("search " + " ".join(dns.searches))
    lines += [f"nameserver {ns}" for ns in dns.nameservers]
    if dns.options:
        lines.append("options " + " ".join(dns.options))
    return "".join(line + "\n" for line in lines)


def hosts_file(spec: SandboxSpec, pod_ip: str, cluster_domain: str) -> str:
    """/etc/hosts exactly as the kubelet manages it: localhost boilerplate, the pod IP
    with ``<hostname>.<subdomain>.<ns>.svc.<domain>`` (when a subdomain is set) and the
    hostname, then the hostAliases block."""
    out = ("# Kubernetes-managed hosts file.\n"
           "127.0.0.1\tlocalhost\n"
           "::1\tlocalhost ip6-localhost ip6-loopback\n"
           "fe00::0\tip6-localnet\n"
           "fe00::0\tip6-mcastprefix\n"
           "fe00::1\tip6-allnodes\n"
           "fe00::2\tip6-allrouters\n")
    if spec.subdomain:
        fqdn = f"{spec.hostname}.{spec.subdomain}.{spec.namespace}.svc.{cluster_domain}"
        out += f"{pod_ip}\t{fqdn}\t{spec.hostname}\n"
    else:
        out += f"{pod_ip}\t{spec.hostname}\n"
    if spec.host_aliases:
        out += "\n# Entries added by HostAliases.\n"
        for ip, names in spec.host_aliases:
            out += f"{ip}\t" + "\t".join(names) + "\n"
    return out


# --------------------------------------------------------------------------- commands


class CommandError(RuntimeError):
    """An ``ip`` (or other) command failed; the message carries its stderr."""


async def _run(argv: list[str], stdin: str | None = None, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    if check and proc.returncode != 0:
        raise CommandError(f"{shlex.join(argv)}: exit {proc.returncode}: "
                           f"{err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


def pids_in_netns(name: str) -> list[int]:
    """Processes whose network namespace is ``/run/netns/<name>`` (as ``ip netns pids``)."""
    try:
        target = os.stat(_netns.netns_path(name))
    except OSError:
        return []
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        if (st.st_ino, st.st_dev) == (target.st_ino, target.st_dev):
            pids.append(int(entry.name))
    return pids


async def kill_netns_processes(name: str, attempts: int = 50) -> None:
    """SIGKILL every process in namespace ``name`` until none is left (a process may
    fork while being killed). The calling process itself is never signalled."""
    for _ in range(attempts):
        pids = [p for p in pids_in_netns(name) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- runtime


class NetnsRuntime:
    """Pods in network namespaces behind a bridge in a per-node namespace (see the
    module docstring). Needs root and iproute2."""

    name = "netns"

    def __init__(self, node_name: str, pod_cidr: str, state_dir: Path,
                 prefix: str = "svcnet", cluster_domain: str = "cluster.local",
                 bridge_nf_call_iptables: bool = False) -> None:
        self.node_name = node_name
        self.prefix = prefix
        self.state_dir = Path(state_dir)
        self.cluster_domain = cluster_domain
        self.bridge_nf_call_iptables = bridge_nf_call_iptables
        self.network = ipaddress.IPv4Network(pod_cidr)
        self.gateway = str(self.network.network_address + 1)
        self.node_ip = self.gateway  # the node namespace's address (on the bridge)
        self.node_netns = node_netns_name(prefix, node_name)
        self.notes: list[str] = []
        self._ip = shutil.which("ip") or "ip"
        self._unshare = shutil.which("unshare") or "unshare"
        self._sh = shutil.which("sh") or "/bin/sh"
        self._hostname = shutil.which("hostname") or "hostname"
        self._ipam = AddressPool(self.state_dir / "ipam.json", pod_cidr,
                                 reserved=[self.gateway])
        self._records = SandboxRecords(self.state_dir)
        self._procs = ProcessTable(self.state_dir)
        self._veths: dict[str, str] = {}

    # ------------------------------------------------------------------ node

    async def start(self) -> None:
        """Remove what an earlier run recorded, then make sure the node namespace, its
        bridge and its sysctls are in place (an existing node namespace is kept)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for sandbox, _ in self._records.all():
            await self._remove(sandbox)
        await self._procs.kill_all()
        for owner in set(self._ipam.owned().values()):
            self._ipam.release(owner)
        await self._ensure_node()

    async def _ensure_node(self) -> None:
        if not _netns.exists(self.node_netns):
            await _run([self._ip, "netns", "add", self.node_netns])
        has_bridge = await _run([self._ip, "-n", self.node_netns, "link", "show", BRIDGE],
                                check=False)
        if not has_bridge:
            await self._batch(self.node_netns, [
                "link set lo up",
                f"link add {BRIDGE} type bridge",
                f"addr add {self.gateway}/{self.network.prefixlen} dev {BRIDGE}",
                f"link set {BRIDGE} up",
            ])
        settings = ["net.ipv4.ip_forward=1"]
        if _BRIDGE_NF.exists():
            value = int(self.bridge_nf_call_iptables)
            settings += [f"net.bridge.bridge-nf-call-iptables={value}",
                         f"net.bridge.bridge-nf-call-ip6tables={value}"]
        else:
            self.notes.append("br_netfilter is not loaded: bridge-nf-call-iptables does "
                              "not exist and bridged traffic bypasses netfilter")
        await _run([self._ip, "netns", "exec", self.node_netns, "sysctl", "-q", "-w",
                    *settings])

    async def _batch(self, netns: str, commands: list[str], check: bool = True) -> None:
        await _run([self._ip, "-n", netns, *(["-force"] if not check else []),
                    "-batch", "-"], stdin="".join(c + "\n" for c in commands), check=check)

    # ------------------------------------------------------------------ sandboxes

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox:
        """Namespace, veth on the bridge, address, route, /etc/netns files. A sandbox
        already made for the same pod UID is removed first. On failure everything made
        so far is removed and the error (CommandError/OSError) raised."""
        earlier = self._records.get(spec.pod_uid)
        if earlier is not None:
            await self._remove(earlier)
        ns = pod_netns_name(self.prefix, spec.pod_uid)
        veth = veth_name(spec.pod_uid, secrets.token_hex(4))
        ip = self._ipam.allocate(spec.pod_uid)
        sandbox = Sandbox(pod_uid=spec.pod_uid, namespace=spec.namespace, name=spec.name,
                          ip=ip, netns=ns, hostname=spec.hostname)
        self._records.put(sandbox, veth=veth)  # first: a crash from here on is cleanable
        made_netns = False
        try:
            self._write_etc(ns, spec, ip)
            await _run([self._ip, "netns", "add", ns])
            made_netns = True
            await self._batch(self.node_netns, [
                f"link add {veth} type veth peer name eth0 netns {ns}",
                f"link set {veth} master {BRIDGE}",
                f"link set dev {veth} type bridge_slave hairpin on",
                f"link set {veth} up",
            ])
            await self._batch(ns, [
                "link set lo up",
                f"addr add {ip}/{self.network.prefixlen} dev eth0",
                "link set eth0 up",
                f"route add default via {self.gateway} dev eth0",
            ])
        except BaseException:
            await self._remove(sandbox, delete_netns=made_netns)
            raise
        self._veths[spec.pod_uid] = veth
        return sandbox

    def _write_etc(self, ns: str, spec: SandboxSpec, ip: str) -> None:
        files = {"hosts": hosts_file(spec, ip, self.cluster_domain),
                 "hostname": spec.hostname + "\n"}
        if spec.dns is not None:
            files["resolv.conf"] = resolv_conf(spec.dns)
        for attempt in range(3):
            try:
                (ETC_NETNS / ns).mkdir(parents=True, exist_ok=True)
                for name, text in files.items():
                    # `ip netns exec` bind-mounts each file over /etc/<name> and complains
                    # on every exec when that does not exist: shadow only what exists.
                    if (Path("/etc") / name).exists():
                        (ETC_NETNS / ns / name).write_text(text)
                return
            except FileNotFoundError:  # /etc/netns removed meanwhile by another runtime
                if attempt == 2:
                    raise

    async def remove_sandbox(self, sandbox: Sandbox) -> None:
        """Kill the pod's processes (its containers and anything else in its namespace),
        remove the namespace (its veth pair goes with it), files and address.
        Idempotent."""
        await self._remove(sandbox)

    def host_veth(self, sandbox: Sandbox) -> str | None:
        """The bridge-side interface of ``sandbox`` in the node namespace."""
        return self._veths.get(sandbox.pod_uid)

    async def _remove(self, sandbox: Sandbox, delete_netns: bool = True) -> None:
        await self._procs.kill_pod(sandbox.pod_uid)
        ns = sandbox.netns
        if (delete_netns and ns and ns.startswith(self.prefix + "-")
                and ns != self.node_netns):
            await kill_netns_processes(ns)
            # Deleting the namespace destroys eth0 and so its peer on the bridge; the
            # kernel does that asynchronously (an explicit `link del` costs 15-35 ms).
            if _netns.exists(ns):
                await _run([self._ip, "netns", "delete", ns])
            shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)
        self._veths.pop(sandbox.pod_uid, None)
        self._ipam.release(sandbox.pod_uid)
        self._records.remove(sandbox.pod_uid)

    # ------------------------------------------------------------------ processes

    def exec_prefix(self, sandbox: Sandbox) -> list[str]:
        """``ip netns exec <pod-ns> unshare --uts -- sh -c 'hostname "$0" && exec "$@"'
        <hostname>``: append the command. Every step ``exec``s the next."""
        if sandbox.netns is None:
            raise ValueError(f"sandbox of pod {sandbox.pod_uid} has no network namespace")
        script = f'{shlex.quote(self._hostname)} "$0" && exec "$@"'
        return [self._ip, "netns", "exec", sandbox.netns, self._unshare, "--uts", "--",
                self._sh, "-c", script, sandbox.hostname]

    async def start_container(self, sandbox: Sandbox, spec: ContainerSpec
                              ) -> ContainerProcess:
        return await self._procs.start(sandbox, spec, self.exec_prefix(sandbox))

    async def open_connection(self, sandbox: Sandbox, port: int, timeout: float = 5.0
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """TCP to ``pod_ip:port`` from a socket living in the node namespace."""
        sock = _netns.socket_in_netns(self.node_netns, socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, (sandbox.ip, port)), timeout)
            return await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise

    # ------------------------------------------------------------------ shutdown

    async def shutdown(self, remove_all: bool) -> None:
        """``remove_all``: remove every sandbox this runtime recorded and the node
        namespace. Otherwise leave everything (containers die with the agent through
        their parent-death signal; the next :meth:`start` removes the rest)."""
        if not remove_all:
            return
        for sandbox, _ in self._records.all():
            await self._remove(sandbox)
        await self._procs.kill_all()
        if _netns.exists(self.node_netns):
            await _run([self._ip, "netns", "delete", self.node_netns])
        with contextlib.suppress(OSError):
            ETC_NETNS.rmdir()  # only if empty: other users' directories stay
