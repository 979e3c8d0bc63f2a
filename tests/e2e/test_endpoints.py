"""Endpoints and EndpointSlices kept true by the real controller-manager, checked with real
kubectl and the official Python client.

Pods do not run here: the test plays the node agent, giving pods IPs and readiness through
the ``status`` subresource. One Node (``node-1``, zone ``zone-a``) exists so that the
scheduler binds deployment pods and endpoints carry ``nodeName`` and ``zone``.
"""

from __future__ import annotations

import json
import queue
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import pytest

from svcnet.testing.cluster import APIServerProcess
from tests.e2e.helpers import wait_for

pytestmark = pytest.mark.usefixtures("kubectl_available")

T = TypeVar("T")
NS = "default"
APP = "alpaca-prod"
IMAGE = "gcr.io/kuar-demo/kuard-amd64:blue"
SVC_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[APIServerProcess]:
    with APIServerProcess(tmp_path_factory.mktemp("endpoints")) as srv:
        srv.start_controllers()
        yield srv


@pytest.fixture(scope="module")
def api(cluster: APIServerProcess) -> Iterator[tuple[Any, Any]]:
    from kubernetes import client, config
    c = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core = client.CoreV1Api(c)
    node: Any = {"metadata": {"name": "node-1",
                              "labels": {"topology.kubernetes.io/zone": "zone-a"}},
                 "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    core.create_node(node)
    try:
        yield core, client.DiscoveryV1Api(c)
    finally:
        c.close()


# --- helpers ---------------------------------------------------------------------------------


def kubectl_json(srv: APIServerProcess, *args: str) -> Any:
    res = srv.kubectl(*args, "-o", "json")
    assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr}"
    return json.loads(res.stdout)


def kubectl_ok(srv: APIServerProcess, *args: str) -> str:
    res = srv.kubectl(*args)
    assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr}"
    return res.stdout


def endpoints(core: Any, name: str) -> Obj | None:
    try:
        return dict(json.loads(core.read_namespaced_endpoints(
            name, NS, _preload_content=False).data))
    except Exception as e:  # noqa: BLE001 - 404 until the controller writes it
        if getattr(e, "status", None) == 404:
            return None
        raise


def slices(disc: Any, service: str, managed_by: str = "endpointslice-controller.k8s.io"
           ) -> list[Obj]:
    raw = disc.list_namespaced_endpoint_slice(
        NS, label_selector=f"{SVC_LABEL}={service},{MANAGED_BY}={managed_by}",
        _preload_content=False)
    return list(json.loads(raw.data)["items"])


def endpoints_where(core: Any, name: str, pred: Callable[[Obj], bool]
                    ) -> Callable[[], Obj | None]:
    """A poll function: the Endpoints ``name`` once ``pred`` holds for it."""
    def poll() -> Obj | None:
        ep = endpoints(core, name)
        return ep if ep is not None and pred(ep) else None
    return poll


def slices_where(disc: Any, service: str, pred: Callable[[list[Obj]], bool]
                 ) -> Callable[[], list[Obj] | None]:
    """A poll function: the controller's slices of ``service`` once ``pred`` holds."""
    def poll() -> list[Obj] | None:
        items = slices(disc, service)
        return items if pred(items) else None
    return poll


def ips(ep: Obj | None, field: str = "addresses") -> list[str]:
    return sorted(a["ip"] for s in (ep or {}).get("subsets") or [] for a in s.get(field) or [])


def slice_ips(items: list[Obj], ready: bool | None = None) -> list[str]:
    return sorted(a for s in items for e in s["endpoints"] for a in e["addresses"]
                  if ready is None or e["conditions"]["ready"] is ready)


def make_pod(core: Any, name: str, labels: dict[str, str], ports: list[tuple[str, int]],
             hostname: str = "", subdomain: str = "") -> None:
    spec: Obj = {"nodeName": "node-1", "containers": [{"name": "app", "image": IMAGE, "ports": [
        {"name": n, "containerPort": p} for n, p in ports]}]}
    if hostname:
        spec["hostname"], spec["subdomain"] = hostname, subdomain
    core.create_namespaced_pod(NS, {"metadata": {"name": name, "labels": labels},
                                    "spec": spec})


def set_status(core: Any, name: str, ip: str, ready: bool) -> None:
    core.patch_namespaced_pod_status(name, NS, {"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}})


class LineReader:
    """Lines of a subprocess's stdout, readable with a deadline (a reader thread)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, out: Iterable[str]) -> None:
        for line in out:
            self.lines.put(line)

    def wait_line(self, what: str, pred: Callable[[str], bool], timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            seen.append(line)
            if pred(line):
                return line
        pytest.fail(f"no watch line with {what}; saw {seen!r}")


# --- the book's flow ---------------------------------------------------------------------------


def test_deployment_expose_ready_flips_and_watch(cluster: APIServerProcess,
                                                 api: tuple[Any, Any]) -> None:
    core, disc = api
    logs = cluster.controllers_log
    kubectl_ok(cluster, "create", "deployment", APP, f"--image={IMAGE}", "--port=8080")
    kubectl_ok(cluster, "scale", "deployment", APP, "--replicas", "3")
    pods = wait_for("3 scheduled pods", lambda: (p := core.list_namespaced_pod(
        NS, label_selector=f"app={APP}").items) and len(p) == 3 and
        all(x.spec.node_name for x in p) and p, on_timeout=logs)
    kubectl_ok(cluster, "expose", "deployment", APP)
    svc = core.read_namespaced_service(APP, NS)
    assert svc.spec.cluster_ip and svc.spec.ports[0].port == 8080

    # Not ready yet: all addresses are notReadyAddresses.
    names = sorted(p.metadata.name for p in pods)
    pod_ip = {n: f"10.244.0.{i + 10}" for i, n in enumerate(names)}
    for n in names:
        set_status(core, n, pod_ip[n], ready=False)
    wait_for("3 not-ready addresses", lambda: ips(endpoints(core, APP), "notReadyAddresses")
             == sorted(pod_ip.values()), on_timeout=logs)
    assert ips(endpoints(core, APP)) == []

    watch = subprocess.Popen(["kubectl", "get", "endpoints", APP, "--watch"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=cluster.env())
    try:
        reader = LineReader(watch)
        reader.wait_line("the header", lambda line: "ENDPOINTS" in line)
        for n in names:
            set_status(core, n, pod_ip[n], ready=True)
        want = sorted(f"{ip}:8080" for ip in pod_ip.values())
        line = reader.wait_line("three endpoints", lambda line: len(line.split()) > 1 and
                                sorted(line.split()[1].split(",")) == want)
        assert line.split()[0] == APP
        table = kubectl_ok(cluster, "get", "endpoints", APP)
        assert sorted(table.splitlines()[1].split()[1].split(",")) == want

        # One pod not ready: out of the list, and the watch shows it.
        victim = names[1]
        set_status(core, victim, pod_ip[victim], ready=False)
        rest = sorted(f"{pod_ip[n]}:8080" for n in names if n != victim)
        reader.wait_line("two endpoints", lambda line: len(line.split()) > 1 and
                         sorted(line.split()[1].split(",")) == rest)
        ep = endpoints(core, APP)
        assert ips(ep, "notReadyAddresses") == [pod_ip[victim]]
        # Ready again: back in.
        set_status(core, victim, pod_ip[victim], ready=True)
        reader.wait_line("three endpoints again", lambda line: len(line.split()) > 1 and
                         sorted(line.split()[1].split(",")) == want)
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=5)

    ep = kubectl_json(cluster, "get", "endpoints", APP)
    assert ep["metadata"]["labels"] == {"app": APP}
    [subset] = ep["subsets"]
    assert subset["ports"] == [{"port": 8080, "protocol": "TCP"}]
    uid = {p.metadata.name: p.metadata.uid for p in pods}
    want_addresses: list[Obj] = [
        {"ip": pod_ip[n], "nodeName": "node-1",
         "targetRef": {"kind": "Pod", "namespace": NS, "name": n, "uid": uid[n]}}
        for n in names]
    assert subset["addresses"] == sorted(want_addresses, key=lambda a: str(a["ip"]))

    # The slices say the same thing, field by field.
    items = wait_for("slice with 3 ready endpoints", lambda: (
        s := kubectl_json(cluster, "get", "endpointslices", "-l", f"{SVC_LABEL}={APP}")["items"])
        and slice_ips(s, ready=True) == sorted(pod_ip.values()) and s)
    [es] = items
    assert es["addressType"] == "IPv4"
    assert es["metadata"]["generateName"] == f"{APP}-"
    assert es["metadata"]["labels"] == {"app": APP, SVC_LABEL: APP,
                                        MANAGED_BY: "endpointslice-controller.k8s.io"}
    assert es["metadata"]["ownerReferences"] == [{
        "apiVersion": "v1", "kind": "Service", "name": APP, "uid": svc.metadata.uid,
        "controller": True, "blockOwnerDeletion": True}]
    assert es["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]
    by_ip = {a["ip"]: a for a in subset["addresses"]}
    for e in es["endpoints"]:
        a = by_ip[e["addresses"][0]]
        assert e["conditions"] == {"ready": True, "serving": True, "terminating": False}
        assert e["nodeName"] == a["nodeName"] and e["targetRef"] == a["targetRef"]
        assert e["zone"] == "zone-a"


def test_ready_flip_latency(cluster: APIServerProcess, api: tuple[Any, Any],
                            capsys: pytest.CaptureFixture[str]) -> None:
    """Time from a pod status write to the Endpoints and EndpointSlice watch events that
    reflect it (median and p90 over 50 flips)."""
    from kubernetes import watch as kwatch
    core, disc = api
    pod = sorted(p.metadata.name for p in core.list_namespaced_pod(
        NS, label_selector=f"app={APP}").items)[0]
    ip = endpoints(core, APP) and next(
        a["ip"] for s in endpoints(core, APP)["subsets"] for a in s["addresses"]  # type: ignore[index]
        if a["targetRef"]["name"] == pod)
    assert ip
    events: dict[str, queue.Queue[tuple[float, Obj]]] = {"ep": queue.Queue(),
                                                          "es": queue.Queue()}
    watchers = [kwatch.Watch(), kwatch.Watch()]

    def follow(w: Any, key: str, fn: Any, **kw: Any) -> None:
        try:
            for ev in w.stream(fn, NS, timeout_seconds=60, _preload_content=False, **kw):
                events[key].put((time.monotonic(), ev["raw_object"]))
        except Exception:  # noqa: BLE001 - the stream ends when stopped
            pass

    ts = [threading.Thread(target=follow, args=(watchers[0], "ep",
                                                core.list_namespaced_endpoints),
                           kwargs={"field_selector": f"metadata.name={APP}"}, daemon=True),
          threading.Thread(target=follow, args=(watchers[1], "es",
                                                disc.list_namespaced_endpoint_slice),
                           kwargs={"label_selector": f"{SVC_LABEL}={APP}"}, daemon=True)]
    for t in ts:
        t.start()

    def ep_ready(obj: Obj) -> bool:
        return ip in ips(obj)

    def es_ready(obj: Obj) -> bool:
        return ip in slice_ips([obj], ready=True)

    def wait_event(key: str, pred: Callable[[Obj], bool], want: bool) -> float:
        deadline = time.monotonic() + 10
        while True:
            t, obj = events[key].get(timeout=max(0.01, deadline - time.monotonic()))
            if pred(obj) is want:
                return t

    # Drain the initial ADDED events before measuring.
    wait_event("ep", ep_ready, True)
    wait_event("es", es_ready, True)
    lat_ep: list[float] = []
    lat_es: list[float] = []
    try:
        for i in range(50):
            ready = i % 2 == 1
            t0 = time.monotonic()
            set_status(core, pod, ip, ready)
            lat_ep.append(wait_event("ep", ep_ready, ready) - t0)
            lat_es.append(wait_event("es", es_ready, ready) - t0)
    finally:
        for w in watchers:
            w.stop()
    with capsys.disabled():
        for label, xs in (("Endpoints", lat_ep), ("EndpointSlice", lat_es)):
            q = statistics.quantiles(xs, n=10)
            print(f"\nready-flip → {label} event over {len(xs)} flips: "
                  f"median {statistics.median(xs) * 1000:.1f} ms, p90 {q[-1] * 1000:.1f} ms, "
                  f"max {max(xs) * 1000:.1f} ms")
    assert statistics.median(lat_ep) < 1.0 and statistics.median(lat_es) < 1.0
    assert ep_ready(endpoints(core, APP) or {})  # the last flip left it ready


# --- other kinds of service ------------------------------------------------------------------


def test_headless_service_hostnames(cluster: APIServerProcess, api: tuple[Any, Any]) -> None:
    core, disc = api
    core.create_namespaced_service(NS, {
        "metadata": {"name": "kuard-hl", "labels": {"tier": "hl"}},
        "spec": {"clusterIP": "None", "selector": {"app": "kuard-hl"},
                 "ports": [{"port": 8080, "targetPort": 8080}]}})
    for i, n in enumerate(("kuard-0", "kuard-1")):
        make_pod(core, n, {"app": "kuard-hl"}, [("http", 8080)], hostname=n,
                 subdomain="kuard-hl")
        set_status(core, n, f"10.244.1.{i + 2}", ready=True)
    ep = wait_for("headless endpoints",
                  endpoints_where(core, "kuard-hl", lambda e: len(ips(e)) == 2))
    assert ep["metadata"]["labels"] == {"tier": "hl", "service.kubernetes.io/headless": ""}
    assert sorted(a["hostname"] for a in ep["subsets"][0]["addresses"]) == \
        ["kuard-0", "kuard-1"]
    items = wait_for("headless slice", slices_where(
        disc, "kuard-hl", lambda s: len(slice_ips(s, ready=True)) == 2))
    assert items[0]["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    assert sorted(e["hostname"] for e in items[0]["endpoints"]) == ["kuard-0", "kuard-1"]

    # Deleting the service takes its Endpoints and slices with it.
    core.delete_namespaced_service("kuard-hl", NS)
    wait_for("endpoints gone", lambda: endpoints(core, "kuard-hl") is None)
    wait_for("slices gone", lambda: slices(disc, "kuard-hl") == [])


def test_named_target_ports_resolved_per_pod(cluster: APIServerProcess,
                                          api: tuple[Any, Any]) -> None:
    core, disc = api
    core.create_namespaced_service(NS, {"metadata": {"name": "multi"}, "spec": {
        "selector": {"app": "multi"},
        "ports": [{"name": "http", "port": 80, "targetPort": "web"},
                  {"name": "metrics", "port": 9100, "targetPort": 9100}]}})
    make_pod(core, "multi-a", {"app": "multi"}, [("web", 8080)])
    make_pod(core, "multi-b", {"app": "multi"}, [("web", 8081)])
    make_pod(core, "multi-c", {"app": "multi"}, [("other", 8080)])
    for i, n in enumerate(("multi-a", "multi-b", "multi-c")):
        set_status(core, n, f"10.244.2.{i + 2}", ready=True)
    # Repacked: a subset per distinct address set — http:8080 {a}, http:8081 {b},
    # metrics:9100 {a, b, c} (multi-c lacks the named port, so it only serves 9100).
    want = [(["multi-a"], [("http", 8080)]),
            (["multi-a", "multi-b", "multi-c"], [("metrics", 9100)]),
            (["multi-b"], [("http", 8081)])]

    def packed(e: dict[str, Any]) -> list[Any]:
        return sorted((sorted(a["targetRef"]["name"] for a in s.get("addresses") or []),
                       [(p["name"], p["port"]) for p in s["ports"]])
                      for s in e.get("subsets") or [])
    # Wait for the final state: intermediate ones (a pod not yet ready) also have subsets.
    ep = wait_for("subsets for all three pods",
                  endpoints_where(core, "multi", lambda e: packed(e) == want))
    assert packed(ep) == want
    items = wait_for("three slices", slices_where(
        disc, "multi", lambda s: len(s) == 3 and sum(len(x["endpoints"]) for x in s) == 3))
    by_pod = {e["targetRef"]["name"]: sorted((p["name"], p["port"]) for p in s["ports"])
              for s in items for e in s["endpoints"]}
    assert by_pod == {"multi-a": [("http", 8080), ("metrics", 9100)],
                      "multi-b": [("http", 8081), ("metrics", 9100)],
                      "multi-c": [("metrics", 9100)]}


def test_publish_not_ready_addresses(cluster: APIServerProcess, api: tuple[Any, Any]) -> None:
    core, disc = api
    core.create_namespaced_service(NS, {"metadata": {"name": "pnr"}, "spec": {
        "selector": {"app": "pnr"}, "publishNotReadyAddresses": True,
        "ports": [{"port": 80, "targetPort": 8080}]}})
    make_pod(core, "pnr-0", {"app": "pnr"}, [])
    set_status(core, "pnr-0", "10.244.3.2", ready=False)
    ep = wait_for("published address", endpoints_where(core, "pnr", lambda e: bool(ips(e))))
    assert ips(ep) == ["10.244.3.2"] and ips(ep, "notReadyAddresses") == []
    [es] = wait_for("slice", slices_where(disc, "pnr", lambda s: bool(slice_ips(s))))
    assert es["endpoints"][0]["conditions"] == {"ready": True, "serving": False,
                                                "terminating": False}


def test_selectorless_service_mirrored_and_external_name_empty(
        cluster: APIServerProcess, api: tuple[Any, Any]) -> None:
    core, disc = api
    core.create_namespaced_service(NS, {"metadata": {"name": "external-database"}, "spec": {
        "ports": [{"port": 3306, "targetPort": 3306}]}})
    manual = core.create_namespaced_endpoints(NS, {
        "metadata": {"name": "external-database", "labels": {"owner": "me"}},
        "subsets": [{"addresses": [{"ip": "192.0.2.42"}, {"ip": "192.0.2.43"}],
                     "ports": [{"port": 3306}]}]})
    core.create_namespaced_service(NS, {"metadata": {"name": "external-name"}, "spec": {
        "type": "ExternalName", "externalName": "database.example.com"}})
    mirrored = wait_for("mirrored slice", lambda: slices(
        disc, "external-database", "endpointslicemirroring-controller.k8s.io"))
    [ms] = mirrored
    assert ms["metadata"]["labels"] == {
        "owner": "me", SVC_LABEL: "external-database",
        MANAGED_BY: "endpointslicemirroring-controller.k8s.io"}
    assert ms["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    assert ms["endpoints"] == [{"addresses": ["192.0.2.42"], "conditions": {"ready": True}},
                               {"addresses": ["192.0.2.43"], "conditions": {"ready": True}}]
    assert ms["ports"] == [{"name": "", "port": 3306, "protocol": "TCP"}]

    # A later service's endpoints prove the controllers have seen the earlier events.
    core.create_namespaced_service(NS, {"metadata": {"name": "sentinel"}, "spec": {
        "selector": {"app": "sentinel"}, "ports": [{"port": 80}]}})
    wait_for("sentinel endpoints", lambda: endpoints(core, "sentinel"))
    wait_for("sentinel placeholder slice", lambda: slices(disc, "sentinel"))
    ep = endpoints(core, "external-database")
    assert ep is not None
    assert ep["metadata"]["resourceVersion"] == manual.metadata.resource_version
    assert ips(ep) == ["192.0.2.42", "192.0.2.43"]
    assert endpoints(core, "external-name") is None
    assert slices(disc, "external-name") == []
    assert slices(disc, "external-name", "endpointslicemirroring-controller.k8s.io") == []
    assert slices(disc, "kubernetes", "endpointslicemirroring-controller.k8s.io") == []


def test_controller_restart_converges(cluster: APIServerProcess, api: tuple[Any, Any]) -> None:
    """Changes made while the controller-manager is down are caught up after a restart:
    a readiness change and a deleted Service (whose Endpoints is left over)."""
    core, disc = api
    cluster.stop_controllers(signal.SIGKILL)
    victim = sorted(p.metadata.name for p in core.list_namespaced_pod(
        NS, label_selector=f"app={APP}").items)[0]
    ip = next(a["ip"] for s in endpoints(core, APP)["subsets"]  # type: ignore[index]
              for a in s["addresses"] if a["targetRef"]["name"] == victim)
    set_status(core, victim, ip, ready=False)
    core.delete_namespaced_service("pnr", NS)
    cluster.start_controllers()
    wait_for("victim not ready", lambda: ips(endpoints(core, APP), "notReadyAddresses") == [ip],
             timeout=20, on_timeout=cluster.controllers_log)
    wait_for("slice not ready", lambda: ip in slice_ips(slices(disc, APP), ready=False))
    wait_for("leftover endpoints removed", lambda: endpoints(core, "pnr") is None)
    wait_for("leftover slices removed", lambda: slices(disc, "pnr") == [])
    assert len(slices(disc, APP)) == 1
