"""The machine's real kubectl against a real svcnet API server.

Each test checks what kubectl prints, as it prints it against a real cluster.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from svcnet.testing.cluster import APIServerProcess
from tests.e2e.helpers import ok

pytestmark = pytest.mark.usefixtures("kubectl_available")


def fail(srv: APIServerProcess, *args: str, input: str | None = None) -> str:
    res = srv.kubectl(*args, input=input)
    assert res.returncode != 0, f"kubectl {' '.join(args)} unexpectedly succeeded"
    return res.stderr


def columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def table(out: str) -> list[list[str]]:
    return [columns(line) for line in out.strip().splitlines()]


DEPLOY_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: applied
  labels: {app: applied}
spec:
  replicas: REPLICAS
  selector:
    matchLabels: {app: applied}
  template:
    metadata:
      labels: {app: applied}
    spec:
      containers:
      - name: web
        image: IMAGE
        ports:
        - containerPort: 80
"""


def test_version_reports_minor_32(apiserver: APIServerProcess) -> None:
    out = json.loads(ok(apiserver, "version", "-o", "json"))
    assert out["serverVersion"]["minor"] == "32"
    assert out["clientVersion"]["gitVersion"].startswith("v1.32")


def test_create_namespace_and_get(apiserver: APIServerProcess) -> None:
    assert ok(apiserver, "create", "namespace", "team-a").strip() == "namespace/team-a created"
    rows = table(ok(apiserver, "get", "ns"))
    assert rows[0] == ["NAME", "STATUS", "AGE"]
    names = {r[0]: r[1] for r in rows[1:]}
    assert names["team-a"] == "Active"
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names.keys()
    err = fail(apiserver, "create", "namespace", "team-a")
    assert err.strip() == 'Error from server (AlreadyExists): namespaces "team-a" already exists'


def test_create_deployment_expose_and_get_wide(apiserver: APIServerProcess) -> None:
    out = ok(apiserver, "create", "deployment", "web", "--image=nginx", "--replicas=2",
             "--port=80")
    assert out.strip() == "deployment.apps/web created"
    out = ok(apiserver, "expose", "deployment", "web", "--port=8080", "--target-port=80")
    assert out.strip() == "service/web exposed"
    rows = table(ok(apiserver, "get", "svc", "-o", "wide"))
    assert rows[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE",
                       "SELECTOR"]
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["kubernetes"][1:5] == ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    web = by_name["web"]
    assert web[1] == "ClusterIP" and web[3:5] == ["<none>", "8080/TCP"]
    assert web[2].startswith("10.") and web[6] == "app=web"
    svc = json.loads(ok(apiserver, "get", "svc", "web", "-o", "json"))
    assert svc["spec"]["ports"] == [{"port": 8080, "protocol": "TCP", "targetPort": 80}]
    assert svc["spec"]["sessionAffinity"] == "None"
    assert svc["spec"]["ipFamilies"] == ["IPv4"]


def test_kube_system_services(apiserver: APIServerProcess) -> None:
    rows = table(ok(apiserver, "get", "svc", "-n", "kube-system"))
    assert rows[1][:5] == ["kube-dns", "ClusterIP", "10.96.0.10", "<none>",
                           "53/UDP,53/TCP,9153/TCP"]


def test_get_all_lists_every_category_member(apiserver: APIServerProcess) -> None:
    ok(apiserver, "create", "deployment", "allweb", "--image=nginx")
    out = ok(apiserver, "get", "all")
    assert "service/kubernetes" in out
    assert re.search(r"deployment\.apps/allweb\s+0/1\s+0\s+0", out), out


def test_apply_create_configure_unchanged(apiserver: APIServerProcess, tmp_path: Path) -> None:
    f = tmp_path / "deploy.yaml"
    f.write_text(DEPLOY_YAML.replace("REPLICAS", "1").replace("IMAGE", "nginx:1.27"))
    assert ok(apiserver, "apply", "-f", str(f)).strip() == "deployment.apps/applied created"
    assert ok(apiserver, "apply", "-f", str(f)).strip() == "deployment.apps/applied unchanged"
    f.write_text(DEPLOY_YAML.replace("REPLICAS", "3").replace("IMAGE", "nginx:1.28"))
    assert ok(apiserver, "apply", "-f", str(f)).strip() == "deployment.apps/applied configured"
    d = json.loads(ok(apiserver, "get", "deploy", "applied", "-o", "json"))
    assert d["spec"]["replicas"] == 3
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert d["metadata"]["generation"] == 2
    assert d["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": "25%", "maxUnavailable": "25%"}}


def test_apply_server_side(apiserver: APIServerProcess, tmp_path: Path) -> None:
    f = tmp_path / "svc.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: ssa\nspec:\n"
                 "  selector: {app: ssa}\n  ports:\n  - port: 80\n")
    out = ok(apiserver, "apply", "--server-side", "-f", str(f))
    assert out.strip() == "service/ssa serverside-applied"
    f.write_text(f.read_text().replace("port: 80", "port: 81"))
    assert ok(apiserver, "apply", "--server-side", "-f", str(f)).strip() == \
        "service/ssa serverside-applied"
    svc = json.loads(ok(apiserver, "get", "svc", "ssa", "-o", "json"))
    assert [p["port"] for p in svc["spec"]["ports"]] == [81]


def test_headless_via_client_dry_run_pipe(apiserver: APIServerProcess) -> None:
    manifest = ok(apiserver, "create", "service", "clusterip", "headless",
                  "--clusterip=None", "--dry-run=client", "-o", "yaml")
    assert ok(apiserver, "apply", "-f", "-", input=manifest).strip() == \
        "service/headless created"
    rows = table(ok(apiserver, "get", "svc", "headless"))
    assert rows[1][1:4] == ["ClusterIP", "None", "<none>"]


def test_scale_and_get_deploy(apiserver: APIServerProcess) -> None:
    ok(apiserver, "create", "deployment", "scaler", "--image=nginx", "--replicas=2")
    assert ok(apiserver, "scale", "deployment", "scaler", "--replicas", "3").strip() == \
        "deployment.apps/scaler scaled"
    rows = table(ok(apiserver, "get", "deploy", "scaler"))
    assert rows[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert rows[1][:4] == ["scaler", "0/3", "0", "0"]


def test_label_annotate(apiserver: APIServerProcess) -> None:
    ok(apiserver, "create", "configmap", "cfg", "--from-literal=a=b")
    assert ok(apiserver, "label", "configmap", "cfg", "tier=be").strip() == \
        "configmap/cfg labeled"
    assert ok(apiserver, "annotate", "configmap", "cfg", "owner=me").strip() == \
        "configmap/cfg annotated"
    rows = table(ok(apiserver, "get", "cm", "-l", "tier=be", "--show-labels"))
    assert rows[1][0] == "cfg" and rows[1][-1] == "tier=be"
    ok(apiserver, "label", "configmap", "cfg", "tier-")
    assert "No resources found" in apiserver.kubectl("get", "cm", "-l", "tier=be").stderr


def test_patch_three_types(apiserver: APIServerProcess) -> None:
    ok(apiserver, "create", "deployment", "patched", "--image=nginx")
    out = ok(apiserver, "patch", "deployment", "patched", "-p", '{"spec":{"replicas":2}}')
    assert out.strip() == "deployment.apps/patched patched"
    ok(apiserver, "patch", "deployment", "patched", "--type=merge", "-p",
       '{"metadata":{"labels":{"m":"1"}}}')
    ok(apiserver, "patch", "deployment", "patched", "--type=json", "-p",
       '[{"op":"add","path":"/metadata/labels/j","value":"2"}]')
    d = json.loads(ok(apiserver, "get", "deploy", "patched", "-o", "json"))
    assert d["spec"]["replicas"] == 2
    assert d["metadata"]["labels"] == {"app": "patched", "m": "1", "j": "2"}


def test_edit_with_non_interactive_editor(apiserver: APIServerProcess, tmp_path: Path) -> None:
    ok(apiserver, "create", "deployment", "edited", "--image=nginx")
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/replicas: 1/replicas: 4/' \"$1\"\n")
    editor.chmod(0o755)
    res = apiserver.kubectl("edit", "deployment", "edited", env={"KUBE_EDITOR": str(editor)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "deployment.apps/edited edited"
    d = json.loads(ok(apiserver, "get", "deploy", "edited", "-o", "json"))
    assert d["spec"]["replicas"] == 4


def test_describe_service(apiserver: APIServerProcess) -> None:
    ok(apiserver, "create", "service", "nodeport", "np", "--tcp=80:8080")
    out = ok(apiserver, "describe", "svc", "np")
    fields = dict(re.findall(r"^([A-Za-z][A-Za-z ]+):\s+(.*)$", out, re.M))
    assert fields["Name"] == "np"
    assert fields["Type"] == "NodePort"
    assert fields["Session Affinity"] == "None"
    assert fields["IP Families"] == "IPv4"
    assert fields["TargetPort"] == "8080/TCP"
    assert re.match(r"80-8080\s+30\d\d\d/TCP|80-8080\s+3\d{4}/TCP", fields["NodePort"])


def test_get_pods_watch_sees_later_change(apiserver: APIServerProcess) -> None:
    ok(apiserver, "run", "watched", "--image=nginx")
    proc = subprocess.Popen(["kubectl", "get", "pods", "-w"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=apiserver.env())
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        assert header.split()[:3] == ["NAME", "READY", "STATUS"]
        first = proc.stdout.readline()
        assert first.split()[0] == "watched"
        time.sleep(0.3)
        ok(apiserver, "label", "pod", "watched", "seen=yes")
        deadline = time.monotonic() + 15
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("watched"):
                break
        assert line.split()[:3] == ["watched", "0/1", "Pending"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_delete_and_not_found_errors(apiserver: APIServerProcess) -> None:
    ok(apiserver, "create", "deployment", "doomed", "--image=nginx")
    assert ok(apiserver, "delete", "deployment", "doomed").strip() == \
        'deployment.apps "doomed" deleted'
    err = fail(apiserver, "get", "deployment", "doomed")
    assert err.strip() == 'Error from server (NotFound): deployments.apps "doomed" not found'
    err = fail(apiserver, "delete", "pod", "nope")
    assert err.strip() == 'Error from server (NotFound): pods "nope" not found'


def test_invalid_object_prints_field_causes(apiserver: APIServerProcess, tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(DEPLOY_YAML.replace("applied", "bad").replace("REPLICAS", "-1")
                 .replace("        image: IMAGE\n", ""))
    err = fail(apiserver, "create", "-f", str(f))
    assert 'The Deployment "bad" is invalid:' in err
    assert "* spec.replicas: Invalid value: -1: must be greater than or equal to 0" in err
    assert "* spec.template.spec.containers[0].image: Required value" in err


def test_strict_field_validation(apiserver: APIServerProcess, tmp_path: Path) -> None:
    f = tmp_path / "typo.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: typo\nspec:\n"
                 "  portz:\n  - port: 80\n")
    err = fail(apiserver, "apply", "-f", str(f))
    assert "Error from server (BadRequest)" in err
    assert 'unknown field "spec.portz"' in err


def test_missing_namespace(apiserver: APIServerProcess) -> None:
    err = fail(apiserver, "create", "configmap", "x", "-n", "nowhere", "--from-literal=a=b")
    assert 'namespaces "nowhere" not found' in err


def test_service_port_rules(apiserver: APIServerProcess, tmp_path: Path) -> None:
    f = tmp_path / "two.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: two\nspec:\n"
                 "  ports:\n  - port: 80\n  - port: 443\n")
    err = fail(apiserver, "apply", "-f", str(f))
    assert 'The Service "two" is invalid' in err
    assert "spec.ports[0].name: Required value" in err or \
        "spec.ports[1].name: Required value" in err
    f.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: fixed\nspec:\n"
                 "  clusterIP: 10.96.0.10\n  ports:\n  - port: 80\n")
    err = fail(apiserver, "apply", "-f", str(f))
    assert "already allocated" in err


def test_unauthenticated_request_is_401(apiserver: APIServerProcess) -> None:
    import ssl
    import urllib.error
    import urllib.request
    ctx = ssl.create_default_context(cafile=str(apiserver.ca_file))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(apiserver.url + "/api/v1/namespaces", context=ctx, timeout=5)
    assert e.value.code == 401
    body = json.loads(e.value.read())
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized"


HEADERS = {
    "namespaces": ["NAME", "STATUS", "AGE"],
    "services": ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
    "endpoints": ["NAMESPACE", "NAME", "ENDPOINTS", "AGE"],
    "secrets": ["NAMESPACE", "NAME", "TYPE", "DATA", "AGE"],
    "configmaps": ["NAMESPACE", "NAME", "DATA", "AGE"],
    "deployments": ["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
    "ingresses": ["NAMESPACE", "NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
}


@pytest.mark.parametrize(
    ("create", "resource", "row"),
    [
        (["create", "secret", "generic", "pb-secret", "--from-literal=a=b"], "secrets",
         ["default", "pb-secret", "Opaque", "1"]),
        (["create", "configmap", "pb-cm", "--from-literal=a=b", "--from-literal=c=d"],
         "configmaps", ["default", "pb-cm", "2"]),
        (["create", "ingress", "pb-ing", "--rule=foo.com/bar=svc1:8080,tls=my-cert",
          "--class=nginx"], "ingresses", ["default", "pb-ing", "nginx", "foo.com", "80, 443"]),
        (["create", "service", "loadbalancer", "pb-lb", "--tcp=80:8080"], "services",
         ["default", "pb-lb", "LoadBalancer"]),
        (["create", "service", "externalname", "pb-ext", "--external-name=example.com"],
         "services", ["default", "pb-ext", "ExternalName", "<none>", "example.com"]),
        (["create", "namespace", "pb-ns"], "namespaces", ["pb-ns", "Active"]),
    ],
    ids=["secret", "configmap", "ingress", "loadbalancer", "externalname", "namespace"],
)
def test_create_generators_send_protobuf_and_print(apiserver: APIServerProcess,
                                                   create: list[str], resource: str,
                                                   row: list[str]) -> None:
    """kubectl 1.32 sends these bodies as protobuf; the objects come back as created."""
    name = create[3] if create[1] in ("secret", "service") else create[2]
    assert f"/{name} created" in ok(apiserver, *create)
    rows = table(ok(apiserver, "get", resource, "-A"))
    assert rows[0] == HEADERS[resource]
    got = next(r for r in rows[1:] if name in r[:2])
    assert got[: len(row)] == row


@pytest.mark.parametrize("resource", ["pods", "nodes", "events", "replicasets",
                                      "endpointslices", "ingressclasses", "leases",
                                      "serviceaccounts", "resourcequotas", "limitranges"])
def test_every_resource_lists(apiserver: APIServerProcess, resource: str) -> None:
    res = apiserver.kubectl("get", resource, "-A")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("NAME") or "No resources found" in res.stderr


def test_describe_deployment_and_rollout_edits(apiserver: APIServerProcess) -> None:
    ok(apiserver, "create", "deployment", "alpaca-prod",
       "--image=gcr.io/kuar-demo/kuard-amd64:blue", "--port=8080")
    out = ok(apiserver, "describe", "deployment", "alpaca-prod")
    assert re.search(r"StrategyType:\s+RollingUpdate", out)
    assert re.search(r"RollingUpdateStrategy:\s+25% max unavailable, 25% max surge", out)
    ok(apiserver, "set", "image", "deployment/alpaca-prod",
       "kuard-amd64=gcr.io/kuar-demo/kuard-amd64:green")
    assert ok(apiserver, "rollout", "restart", "deployment/alpaca-prod").strip() == \
        "deployment.apps/alpaca-prod restarted"
    d = json.loads(ok(apiserver, "get", "deploy", "alpaca-prod", "-o", "json"))
    tpl = d["spec"]["template"]
    assert tpl["spec"]["containers"][0]["image"].endswith(":green")
    assert "kubectl.kubernetes.io/restartedAt" in tpl["metadata"]["annotations"]
    assert d["metadata"]["generation"] == 3


def test_service_type_changes_drop_and_allocate(apiserver: APIServerProcess) -> None:
    ok(apiserver, "create", "service", "nodeport", "morph", "--tcp=80:8080")

    def cols() -> list[str]:
        return table(ok(apiserver, "get", "svc", "morph"))[1]
    ip = cols()[2]
    for patch, want_type, ports in (
        ('{"spec":{"type":"ClusterIP"}}', "ClusterIP", r"^80/TCP$"),
        ('{"spec":{"type":"LoadBalancer"}}', "LoadBalancer", r"^80:3\d{4}/TCP$"),
        ('{"spec":{"type":"ExternalName","externalName":"example.com"}}', "ExternalName",
         r"^80/TCP$"),
    ):
        ok(apiserver, "patch", "svc", "morph", "-p", patch)
        row = cols()
        assert row[1] == want_type and re.match(ports, row[4]), row
        if want_type != "ExternalName":
            assert row[2] == ip  # the ClusterIP is kept across type changes
    assert cols()[2:4] == ["<none>", "example.com"]
