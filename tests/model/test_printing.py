"""Server-side Table printing: durations, column sets, per-resource cells and Table shape.

Expected values follow Kubernetes' built-in printers (pkg/printers/internalversion) and
apimachinery's duration.HumanDuration; case ids name the rule each case pins down.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from svcnet.model import kinds, printing
from svcnet.model.errors import APIError

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
DAY = 86400


def ago(seconds: float) -> str:
    """An RFC 3339 timestamp ``seconds`` before NOW."""
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, created_ago: float = 60, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(created_ago), **extra}


# --- human_duration / age ---------------------------------------------------------------------

DURATIONS = [
    pytest.param(-2.0, "<invalid>", id="below -1s is invalid"),
    pytest.param(-1.9, "0s", id="-1.9s truncates to -1s: skew tolerated"),
    pytest.param(-1.0, "0s", id="-1s skew reads 0s"),
    pytest.param(0, "0s", id="zero"),
    pytest.param(59.9, "59s", id="fractions truncate"),
    pytest.param(119, "119s", id="under 2m: seconds"),
    pytest.param(120, "2m", id="2m: minutes, whole minute drops seconds"),
    pytest.param(125, "2m5s", id="under 10m: MmSs"),
    pytest.param(599, "9m59s", id="just under 10m"),
    pytest.param(600, "10m", id="10m: minutes only"),
    pytest.param(659, "10m", id="under 3h: seconds dropped"),
    pytest.param(3 * 3600 - 1, "179m", id="just under 3h: still minutes"),
    pytest.param(3 * 3600, "3h", id="3h: hours, whole hour drops minutes"),
    pytest.param(3 * 3600 + 5 * 60, "3h5m", id="under 8h: HhMm"),
    pytest.param(7 * 3600 + 59 * 60, "7h59m", id="just under 8h"),
    pytest.param(8 * 3600, "8h", id="8h: hours only"),
    pytest.param(8 * 3600 + 30 * 60, "8h", id="under 48h: minutes dropped"),
    pytest.param(47 * 3600 + 59 * 60, "47h", id="just under 48h"),
    pytest.param(2 * DAY, "2d", id="48h: days, whole day drops hours"),
    pytest.param(2 * DAY + 3 * 3600, "2d3h", id="under 8d: DdHh"),
    pytest.param(8 * DAY - 1, "7d23h", id="just under 8d"),
    pytest.param(8 * DAY, "8d", id="8d: days only"),
    pytest.param(729 * DAY + 23 * 3600, "729d", id="under 2y of 365d: days"),
    pytest.param(730 * DAY, "2y", id="730d: 2y, zero days dropped"),
    pytest.param(731 * DAY, "2y1d", id="under 8y: YyDd"),
    pytest.param(8 * 365 * DAY, "8y", id="8y: years only"),
    pytest.param(3000 * DAY, "8y", id="beyond 8y: whole years"),
]


@pytest.mark.parametrize(("seconds", "expected"), DURATIONS)
def test_human_duration(seconds: float, expected: str) -> None:
    assert printing.human_duration(seconds) == expected


AGES = [
    pytest.param(None, "<unknown>", id="unset"),
    pytest.param("", "<unknown>", id="empty"),
    pytest.param("not a time", "<unknown>", id="unparseable"),
    pytest.param(ago(300), "5m", id="past Z timestamp"),
    pytest.param("2024-05-01T11:59:00.123456789Z", "59s", id="nanosecond fraction"),
    pytest.param("2024-05-01T13:50:00+02:00", "10m", id="offset timestamp"),
    pytest.param("2024-05-01T12:00:01Z", "0s", id="1s in the future is skew"),
    pytest.param("2024-05-01T12:00:05Z", "<invalid>", id="5s in the future is invalid"),
]


@pytest.mark.parametrize(("timestamp", "expected"), AGES)
def test_age(timestamp: str | None, expected: str) -> None:
    assert printing.age(timestamp, NOW) == expected


def test_age_takes_naive_now_as_utc() -> None:
    assert printing.age(ago(30), NOW.replace(tzinfo=None)) == "30s"


# --- column definitions -----------------------------------------------------------------------

COLUMNS = [
    pytest.param("", "pods", ["Name", "Ready", "Status", "Restarts", "Age", "IP*", "Node*",
                              "Nominated Node*", "Readiness Gates*"], id="pods"),
    pytest.param("apps", "deployments", ["Name", "Ready", "Up-to-date", "Available", "Age",
                                         "Containers*", "Images*", "Selector*"], id="deployments"),
    pytest.param("apps", "replicasets", ["Name", "Desired", "Current", "Ready", "Age",
                                         "Containers*", "Images*", "Selector*"], id="replicasets"),
    pytest.param("", "services", ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age",
                                  "Selector*"], id="services"),
    pytest.param("", "endpoints", ["Name", "Endpoints", "Age"], id="endpoints"),
    pytest.param("discovery.k8s.io", "endpointslices",
                 ["Name", "AddressType", "Ports", "Endpoints", "Age"], id="endpointslices"),
    pytest.param("networking.k8s.io", "ingresses",
                 ["Name", "Class", "Hosts", "Address", "Ports", "Age"], id="ingresses"),
    pytest.param("networking.k8s.io", "ingressclasses",
                 ["Name", "Controller", "Parameters", "Age"], id="ingressclasses"),
    pytest.param("", "namespaces", ["Name", "Status", "Age"], id="namespaces"),
    pytest.param("", "nodes", ["Name", "Status", "Roles", "Age", "Version", "Internal-IP*",
                               "External-IP*", "OS-Image*", "Kernel-Version*",
                               "Container-Runtime*"], id="nodes"),
    pytest.param("", "secrets", ["Name", "Type", "Data", "Age"], id="secrets"),
    pytest.param("", "configmaps", ["Name", "Data", "Age"], id="configmaps"),
    pytest.param("", "serviceaccounts", ["Name", "Secrets", "Age"], id="serviceaccounts"),
    pytest.param("", "events", ["Last Seen", "Type", "Reason", "Object", "Subobject*", "Source*",
                                "Message", "First Seen*", "Count*", "Name*"], id="events"),
    pytest.param("", "resourcequotas", ["Name", "Request", "Limit", "Age"], id="resourcequotas"),
    pytest.param("coordination.k8s.io", "leases", ["Name", "Holder", "Age"], id="leases"),
    pytest.param("", "limitranges", ["Name", "Created At"], id="limitranges: default printer"),
    pytest.param("example.com", "widgets", ["Name", "Created At"], id="unknown: default printer"),
]


@pytest.mark.parametrize(("group", "resource", "expected"), COLUMNS)
def test_column_names_and_wide_priority(group: str, resource: str, expected: list[str]) -> None:
    cols = printing.column_definitions(resource, group)
    shown = [c["name"] + ("*" if c["priority"] == 1 else "") for c in cols]
    assert shown == expected


COLUMN_DETAILS = [
    pytest.param("", "pods", "Name", "string", "name", id="name column has format name"),
    pytest.param("", "pods", "Restarts", "string", "", id="pod restarts is a string"),
    pytest.param("apps", "replicasets", "Desired", "integer", "", id="replicaset counts integer"),
    pytest.param("apps", "deployments", "Up-to-date", "string", "", id="deployment counts string"),
    pytest.param("", "limitranges", "Created At", "date", "", id="default Created At is a date"),
    pytest.param("", "events", "Name", "string", "name", id="event name wide with format name"),
]


@pytest.mark.parametrize(("group", "resource", "column", "kind", "fmt"), COLUMN_DETAILS)
def test_column_type_and_format(group: str, resource: str, column: str, kind: str,
                                fmt: str) -> None:
    col = next(c for c in printing.column_definitions(resource, group) if c["name"] == column)
    assert (col["type"], col["format"]) == (kind, fmt)
    assert set(col) == {"name", "type", "format", "description", "priority"}
    assert col["description"]


def test_column_descriptions_are_the_field_docs() -> None:
    cols = {c["name"]: c for c in printing.column_definitions("pods", "")}
    assert cols["Name"]["description"].startswith("Name must be unique within a namespace.")
    assert cols["Name"]["description"].endswith("working-with-objects/names#names")
    assert cols["Ready"]["description"] == (
        "The aggregate readiness state of this pod for accepting traffic."
    )


def test_column_definitions_are_fresh_copies() -> None:
    printing.column_definitions("pods", "")[0]["name"] = "Changed"
    assert printing.column_definitions("pods", "")[0]["name"] == "Name"


@pytest.mark.parametrize("info", kinds.RESOURCES, ids=lambda r: r.qualified)
def test_every_served_resource_prints_a_cell_per_column(info: kinds.ResourceInfo) -> None:
    for obj in ({"metadata": {"name": "x"}}, {"metadata": {"name": "x"}, "spec": None,
                                             "status": None}):
        cells = printing.row_cells(info.resource, info.group, obj, NOW)
        assert len(cells) == len(printing.column_definitions(info.resource, info.group))
        assert all(isinstance(c, str | int) for c in cells)


# --- pods -------------------------------------------------------------------------------------


def pod(name: str = "web-1", *, phase: str = "Running", statuses: list[Any] | None = None,
        init: list[Any] | None = None, init_statuses: list[Any] | None = None,
        containers: int = 1, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": "nginx"}
                                           for i in range(containers)], "nodeName": "node-a"}
    status: dict[str, Any] = {"phase": phase}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init is not None:
        spec["initContainers"] = init
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    obj: dict[str, Any] = {"metadata": meta(name, 300), "spec": spec, "status": status}
    for key, value in extra.items():
        section, _, field = key.partition("__")
        obj[section][field] = value
    return obj


def running(ready: bool = True, restarts: int = 0, **more: Any) -> dict[str, Any]:
    return {"name": "c0", "ready": ready, "restartCount": restarts,
            "state": {"running": {"startedAt": ago(200)}}, **more}


def waiting(reason: str, restarts: int = 0, **more: Any) -> dict[str, Any]:
    return {"name": "c0", "ready": False, "restartCount": restarts,
            "state": {"waiting": {"reason": reason}}, **more}


def terminated(**state: Any) -> dict[str, Any]:
    return {"name": "c0", "ready": False, "restartCount": 0, "state": {"terminated": state}}


LAST_CRASH = {"lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                           "finishedAt": ago(90)}}}

POD_STATUS = [
    pytest.param(pod(statuses=[running()], status__podIPs=[{"ip": "10.0.0.5"}]),
                 ["web-1", "1/1", "Running", "0", "5m", "10.0.0.5", "node-a", "<none>", "<none>"],
                 id="running ready"),
    pytest.param(pod(phase="Pending", statuses=[waiting("ContainerCreating")]),
                 ["web-1", "0/1", "ContainerCreating", "0", "5m", "<none>", "node-a", "<none>",
                  "<none>"], id="container creating"),
    pytest.param(pod(statuses=[waiting("CrashLoopBackOff", 4, **LAST_CRASH)]),
                 ["web-1", "0/1", "CrashLoopBackOff", "4 (90s ago)", "5m", "<none>", "node-a",
                  "<none>", "<none>"], id="crash loop with last restart age"),
    pytest.param(pod(phase="Succeeded", statuses=[terminated(exitCode=0, reason="Completed")]),
                 ["web-1", "0/1", "Completed", "0", "5m", "<none>", "node-a", "<none>",
                  "<none>"], id="completed"),
    pytest.param(pod(statuses=[running()], metadata__deletionTimestamp=ago(5)),
                 ["web-1", "1/1", "Terminating", "0", "5m", "<none>", "node-a", "<none>",
                  "<none>"], id="terminating when deletionTimestamp set"),
]


@pytest.mark.parametrize(("obj", "expected"), POD_STATUS)
def test_pod_rows(obj: dict[str, Any], expected: list[Any]) -> None:
    assert printing.row_cells("pods", "", obj, NOW) == expected


SIDECAR = {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}

POD_READY_STATUS_RESTARTS = [
    pytest.param(pod(phase="Pending"), ("0/1", "Pending", "0"), id="no statuses: phase"),
    pytest.param(pod(status__reason="Evicted", phase="Failed"), ("0/1", "Evicted", "0"),
                 id="status reason beats phase"),
    pytest.param(pod(phase="Pending", status__conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]),
        ("0/1", "SchedulingGated", "0"), id="scheduling gated"),
    pytest.param(pod(phase="Failed", statuses=[terminated(exitCode=2)]),
                 ("0/1", "ExitCode:2", "0"), id="terminated without reason: exit code"),
    pytest.param(pod(phase="Failed", statuses=[terminated(exitCode=137, signal=9)]),
                 ("0/1", "Signal:9", "0"), id="terminated by signal"),
    pytest.param(pod(statuses=[running(restarts=2)]), ("1/1", "Running", "2"),
                 id="restarts without a known finish time stay bare"),
    pytest.param(pod(containers=2, statuses=[
        {**running(), "name": "c0"}, {**waiting("ImagePullBackOff"), "name": "c1"}]),
        ("1/2", "ImagePullBackOff", "0"), id="waiting reason of any container wins"),
    pytest.param(pod(containers=2, statuses=[
        {**waiting("ErrImagePull"), "name": "c0"}, {**waiting("CrashLoopBackOff"), "name": "c1"}]),
        ("0/2", "ErrImagePull", "0"), id="first listed container's reason wins"),
    pytest.param(pod(containers=2, status__conditions=[{"type": "Ready", "status": "True"}],
                     statuses=[{**terminated(exitCode=0, reason="Completed"), "name": "c0"},
                               {**running(), "name": "c1"}]),
                 ("1/2", "Running", "0"), id="completed container beside running: Running"),
    pytest.param(pod(containers=2, statuses=[
        {**terminated(exitCode=0, reason="Completed"), "name": "c0"}, {**running(), "name": "c1"}]),
        ("1/2", "NotReady", "0"), id="completed beside running without Ready: NotReady"),
    pytest.param(pod(statuses=[running()], status__reason="NodeLost",
                     metadata__deletionTimestamp=ago(5)),
                 ("1/1", "Unknown", "0"), id="deleting on a lost node: Unknown"),
    pytest.param(pod(phase="Succeeded", statuses=[terminated(exitCode=0, reason="Completed")],
                     metadata__deletionTimestamp=ago(5)),
                 ("0/1", "Completed", "0"), id="deleting a finished pod is not Terminating"),
    pytest.param(pod(phase="Pending", init=[{"name": "i0"}], init_statuses=[
        {"name": "i0", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}],
        statuses=[waiting("PodInitializing")]),
        ("0/1", "Init:0/1", "0"), id="init waiting PodInitializing: Init:i/n"),
    pytest.param(pod(phase="Pending", init=[{"name": "i0"}, {"name": "i1"}], init_statuses=[
        {"name": "i0", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
        {"name": "i1", "restartCount": 0, "state": {"running": {}}}]),
        ("0/1", "Init:1/2", "0"), id="second init container running: Init:1/2"),
    pytest.param(pod(phase="Pending", init=[{"name": "i0"}], init_statuses=[
        {"name": "i0", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         **LAST_CRASH}]),
        ("0/1", "Init:CrashLoopBackOff", "3 (90s ago)"), id="init crash loop"),
    pytest.param(pod(phase="Pending", init=[{"name": "i0"}], init_statuses=[
        {"name": "i0", "restartCount": 0,
         "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]),
        ("0/1", "Init:Error", "0"), id="init failed with reason"),
    pytest.param(pod(phase="Pending", init=[{"name": "i0"}], init_statuses=[
        {"name": "i0", "restartCount": 0, "state": {"terminated": {"exitCode": 3}}}]),
        ("0/1", "Init:ExitCode:3", "0"), id="init failed without reason"),
    pytest.param(pod(phase="Pending", init=[{"name": "i0"}], init_statuses=[
        {"name": "i0", "restartCount": 0,
         "state": {"terminated": {"exitCode": 143, "signal": 15}}}]),
        ("0/1", "Init:Signal:15", "0"), id="init killed by signal"),
    pytest.param(pod(init=[SIDECAR], init_statuses=[
        {"name": "proxy", "restartCount": 1, "started": True, "ready": True,
         "state": {"running": {}}}], statuses=[running(restarts=2)]),
        ("2/2", "Running", "3"), id="sidecar counts toward ready, total and restarts"),
]


@pytest.mark.parametrize(("obj", "expected"), POD_READY_STATUS_RESTARTS)
def test_pod_ready_status_restarts(obj: dict[str, Any], expected: tuple[str, str, str]) -> None:
    cells = printing.row_cells("pods", "", obj, NOW)
    assert tuple(cells[1:4]) == expected


POD_WIDE = [
    pytest.param(pod(status__podIP="10.0.0.7"), ["10.0.0.7", "node-a", "<none>", "<none>"],
                 id="legacy podIP when podIPs absent"),
    pytest.param(pod(status__podIPs=[{"ip": "10.0.0.8"}, {"ip": "fd00::8"}],
                     spec__nodeName="", status__nominatedNodeName="node-b"),
                 ["10.0.0.8", "<none>", "node-b", "<none>"], id="first podIP; nominated node"),
    pytest.param(pod(spec__readinessGates=[{"conditionType": "a"}, {"conditionType": "b"}],
                     status__conditions=[{"type": "a", "status": "True"},
                                         {"type": "b", "status": "False"}]),
                 ["<none>", "node-a", "<none>", "1/2"], id="readiness gates true/total"),
]


@pytest.mark.parametrize(("obj", "expected"), POD_WIDE)
def test_pod_wide_cells(obj: dict[str, Any], expected: list[str]) -> None:
    assert printing.row_cells("pods", "", obj, NOW)[5:] == expected


# --- workloads --------------------------------------------------------------------------------


def template(*containers: tuple[str, str]) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": n, "image": i} for n, i in containers]}}


WORKLOADS = [
    pytest.param("apps", "deployments", {
        "metadata": meta("web", 4),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": template(("nginx", "nginx:1.25"))},
        "status": {}},
        ["web", "0/3", 0, 0, "4s", "nginx", "nginx:1.25", "app=web"],
        id="deployment observed 0/3 0 0"),
    pytest.param("apps", "deployments", {
        "metadata": meta("api", 7200),
        "spec": {"replicas": 2, "template": template(("api", "api:v2"), ("log", "fluent:1")),
                 "selector": {"matchLabels": {"app": "api"}, "matchExpressions": [
                     {"key": "tier", "operator": "In", "values": ["b", "a"]},
                     {"key": "legacy", "operator": "DoesNotExist"},
                     {"key": "env", "operator": "NotIn", "values": ["dev"]},
                     {"key": "zone", "operator": "Exists"}]}},
        "status": {"readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 1}},
        ["api", "2/2", 2, 1, "120m", "api,log", "api:v2,fluent:1",
         "app=api,env notin (dev),!legacy,tier in (a,b),zone"],
        id="deployment selector with expressions sorted by key"),
    pytest.param("apps", "deployments", {"metadata": meta("d", 10), "spec": {}},
                 ["d", "0/1", 0, 0, "10s", "", "", ""],
                 id="deployment defaults replicas 1; empty selector empty"),
    pytest.param("apps", "deployments", {
        "metadata": meta("bad", 10),
        "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}}},
        ["bad", "0/1", 0, 0, "10s", "", "", "<invalid>"], id="deployment invalid selector"),
    pytest.param("apps", "replicasets", {
        "metadata": meta("web-abc", 4),
        "spec": {"replicas": 3, "template": template(("nginx", "nginx:1.25")),
                 "selector": {"matchLabels": {"pod-template-hash": "abc", "app": "web"}}},
        "status": {"replicas": 3, "readyReplicas": 2}},
        ["web-abc", 3, 3, 2, "4s", "nginx", "nginx:1.25", "app=web,pod-template-hash=abc"],
        id="replicaset integer counts"),
    pytest.param("apps", "replicasets", {"metadata": meta("rs", 4), "spec": {"replicas": 0}},
                 ["rs", 0, 0, 0, "4s", "", "", "<none>"], id="replicaset no selector: <none>"),
    pytest.param("apps", "replicasets", {
        "metadata": meta("rs", 4),
        "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}},
        ["rs", 1, 0, 0, "4s", "", "", "<error>"], id="replicaset invalid selector: <error>"),
]


@pytest.mark.parametrize(("group", "resource", "obj", "expected"), WORKLOADS)
def test_workload_rows(group: str, resource: str, obj: dict[str, Any],
                       expected: list[Any]) -> None:
    assert printing.row_cells(resource, group, obj, NOW) == expected


# --- services, endpoints, endpointslices -----------------------------------------------------


def svc(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": meta("websvc", 3), "spec": spec, "status": status or {}}


PORT80 = {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}

SERVICES = [
    pytest.param(svc({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                      "ports": [PORT80], "selector": {"app": "web"}}),
                 ["websvc", "ClusterIP", "10.96.0.10", "<none>", "80/TCP", "3s", "app=web"],
                 id="observed ClusterIP row"),
    pytest.param(svc({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
                      "ports": [PORT80]}),
                 ["websvc", "ClusterIP", "None", "<none>", "80/TCP", "3s", "<none>"],
                 id="headless None; empty selector <none>"),
    pytest.param(svc({"type": "NodePort", "clusterIPs": ["10.96.0.11"], "selector": {
        "tier": "fe", "app": "web"}, "ports": [{**PORT80, "nodePort": 30080},
                                               {"port": 443, "nodePort": 30443,
                                                "protocol": "TCP"}]}),
        ["websvc", "NodePort", "10.96.0.11", "<none>", "80:30080/TCP,443:30443/TCP", "3s",
         "app=web,tier=fe"], id="NodePort ports; selector sorted"),
    pytest.param(svc({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"],
                      "ports": [{**PORT80, "nodePort": 31000}]}),
                 ["websvc", "LoadBalancer", "10.96.0.12", "<pending>", "80:31000/TCP", "3s",
                  "<none>"], id="LoadBalancer without ingress: <pending>"),
    pytest.param(svc({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"],
                      "ports": [{**PORT80, "nodePort": 31000}]},
                     {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"},
                                                   {"hostname": "lb.example.com"},
                                                   {"ip": "198.51.100.2"}]}}),
                 ["websvc", "LoadBalancer", "10.96.0.12", "198.51.100.2,203.0.113.9,lb.example.com",
                  "80:31000/TCP", "3s", "<none>"], id="LoadBalancer ingress sorted"),
    pytest.param(svc({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"],
                      "externalIPs": ["192.0.2.1"], "ports": [PORT80]},
                     {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}),
                 ["websvc", "LoadBalancer", "10.96.0.12", "203.0.113.9,192.0.2.1", "80/TCP", "3s",
                  "<none>"], id="LoadBalancer ingress then externalIPs"),
    pytest.param(svc({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"],
                      "externalIPs": ["192.0.2.1"], "ports": [PORT80]}),
                 ["websvc", "LoadBalancer", "10.96.0.12", "192.0.2.1", "80/TCP", "3s", "<none>"],
                 id="LoadBalancer only externalIPs"),
    pytest.param(svc({"type": "ExternalName", "externalName": "db.example.com"}),
                 ["websvc", "ExternalName", "<none>", "db.example.com", "<none>", "3s", "<none>"],
                 id="ExternalName shows the name; no ports"),
    pytest.param(svc({"type": "ClusterIP", "clusterIPs": ["10.96.0.13", "fd00::13"],
                      "externalIPs": ["192.0.2.1", "192.0.2.2"],
                      "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}),
                 ["websvc", "ClusterIP", "10.96.0.13", "192.0.2.1,192.0.2.2", "53/UDP,53/TCP",
                  "3s", "<none>"], id="externalIPs joined; first clusterIP; protocols"),
    pytest.param(svc({"clusterIP": "10.96.0.14", "ports": [{"port": 80}]}),
                 ["websvc", "ClusterIP", "10.96.0.14", "<none>", "80/TCP", "3s", "<none>"],
                 id="defaults: type ClusterIP, protocol TCP, legacy clusterIP"),
]


@pytest.mark.parametrize(("obj", "expected"), SERVICES)
def test_service_rows(obj: dict[str, Any], expected: list[Any]) -> None:
    assert printing.row_cells("services", "", obj, NOW) == expected


def addrs(*ips: str) -> list[dict[str, str]]:
    return [{"ip": ip} for ip in ips]


ENDPOINTS = [
    pytest.param(None, "<none>", id="no subsets"),
    pytest.param([{"addresses": addrs("10.0.0.1", "10.0.0.2"), "ports": [{"port": 80}]}],
                 "10.0.0.1:80,10.0.0.2:80", id="two addresses"),
    pytest.param([{"addresses": addrs("10.0.0.1", "10.0.0.2"),
                   "ports": [{"port": 80}, {"port": 443}]},
                  {"addresses": addrs("10.0.0.3"), "ports": [{"port": 80}]}],
                 "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...",
                 id="per subset, per port, per address; + N more"),
    pytest.param([{"addresses": addrs("10.0.0.1", "10.0.0.2", "10.0.0.3"),
                   "ports": [{"port": 80}]}],
                 "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80", id="exactly three: no more"),
    pytest.param([{"addresses": addrs("10.0.0.1", "10.0.0.2")}], "10.0.0.1,10.0.0.2",
                 id="no ports: bare addresses"),
    pytest.param([{"addresses": addrs("fd00::1"), "ports": [{"port": 80}]}], "[fd00::1]:80",
                 id="IPv6 bracketed"),
    pytest.param([{"notReadyAddresses": addrs("10.0.0.9"), "ports": [{"port": 80}]}], "",
                 id="only not-ready addresses: empty"),
]


@pytest.mark.parametrize(("subsets", "expected"), ENDPOINTS)
def test_endpoints_rows(subsets: list[Any] | None, expected: str) -> None:
    obj: dict[str, Any] = {"metadata": meta("websvc", 3)}
    if subsets is not None:
        obj["subsets"] = subsets
    assert printing.row_cells("endpoints", "", obj, NOW) == ["websvc", expected, "3s"]


SLICES = [
    pytest.param([{"name": "http", "port": 80}, {"name": "https", "port": 443}],
                 [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}],
                 "80,443", "10.0.0.1,10.0.0.2", id="ports and addresses"),
    pytest.param([{"port": 1}, {"port": 2}, {"port": 3}, {"port": 4}],
                 [{"addresses": ["a", "b"]}, {"addresses": ["c", "d", "e"]}],
                 "1,2,3 + 1 more...", "a,b,c + 2 more...", id="more than three"),
    pytest.param([{"name": "dns"}, {}], [], "dns,*", "<unset>",
                 id="name when no port; * when neither; no endpoints unset"),
    pytest.param([], [], "<unset>", "<unset>", id="empty"),
]


@pytest.mark.parametrize(("ports", "endpoints", "port_cell", "ep_cell"), SLICES)
def test_endpointslice_rows(ports: list[Any], endpoints: list[Any], port_cell: str,
                            ep_cell: str) -> None:
    obj = {"metadata": meta("websvc-x1", 3), "addressType": "IPv4", "ports": ports,
           "endpoints": endpoints}
    assert printing.row_cells("endpointslices", "discovery.k8s.io", obj, NOW) == [
        "websvc-x1", "IPv4", port_cell, ep_cell, "3s"]


# --- ingress ----------------------------------------------------------------------------------


def rules(*hosts: str) -> list[dict[str, Any]]:
    return [{"host": h} if h else {} for h in hosts]


INGRESSES = [
    pytest.param({"ingressClassName": "nginx", "rules": rules("a.example.com", "b.example.com"),
                  "tls": [{"hosts": ["a.example.com"]}]},
                 {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}},
                 ["nginx", "a.example.com,b.example.com", "10.0.0.9", "80, 443"],
                 id="class, hosts, address, TLS ports"),
    pytest.param({"defaultBackend": {}}, {}, ["<none>", "*", "", "80"],
                 id="no class, no rules, no address"),
    pytest.param({"ingressClassName": "", "rules": rules("", "a", "b", "c", "d")}, {},
                 ["", "a,b,c + 2 more...", "", "80"],
                 id="more hosts counts every further rule; empty class name kept"),
]


@pytest.mark.parametrize(("spec", "status", "expected"), INGRESSES)
def test_ingress_rows(spec: dict[str, Any], status: dict[str, Any], expected: list[str]) -> None:
    obj = {"metadata": meta("ing", 60), "spec": spec, "status": status}
    assert printing.row_cells("ingresses", "networking.k8s.io", obj, NOW) == [
        "ing", *expected, "60s"]


INGRESS_CLASSES = [
    pytest.param({"kind": "IngressParameters", "apiGroup": "k8s.example.com", "name": "lb"},
                 "IngressParameters.k8s.example.com/lb", id="kind.group/name"),
    pytest.param({"kind": "ConfigMap", "name": "cfg", "scope": "Namespace"}, "ConfigMap/cfg",
                 id="core kind/name"),
    pytest.param(None, "<none>", id="no parameters"),
]


@pytest.mark.parametrize(("params", "expected"), INGRESS_CLASSES)
def test_ingressclass_rows(params: dict[str, Any] | None, expected: str) -> None:
    spec: dict[str, Any] = {"controller": "k8s.io/ingress-nginx"}
    if params is not None:
        spec["parameters"] = params
    obj = {"metadata": meta("nginx", 60), "spec": spec}
    assert printing.row_cells("ingressclasses", "networking.k8s.io", obj, NOW) == [
        "nginx", "k8s.io/ingress-nginx", expected, "60s"]


# --- nodes ------------------------------------------------------------------------------------

NODE_INFO = {"kubeletVersion": "v1.32.4", "osImage": "Ubuntu 22.04.4 LTS",
             "kernelVersion": "6.5.0-1020", "containerRuntimeVersion": "containerd://1.7.12"}

NODES = [
    pytest.param({"labels": {"node-role.kubernetes.io/control-plane": ""}}, {},
                 {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                 {"type": "Ready", "status": "True"}],
                  "addresses": [{"type": "Hostname", "address": "n1"},
                                {"type": "InternalIP", "address": "192.168.1.10"}],
                  "nodeInfo": NODE_INFO},
                 ["Ready", "control-plane", "10d", "v1.32.4", "192.168.1.10", "<none>",
                  "Ubuntu 22.04.4 LTS", "6.5.0-1020", "containerd://1.7.12"],
                 id="ready control-plane"),
    pytest.param({"labels": {"node-role.kubernetes.io/worker": "", "kubernetes.io/role": "gpu",
                             "node-role.kubernetes.io/": "x"}},
                 {"unschedulable": True},
                 {"conditions": [{"type": "Ready", "status": "False"}],
                  "addresses": [{"type": "ExternalIP", "address": "203.0.113.4"}]},
                 ["NotReady,SchedulingDisabled", "gpu,worker", "10d", "", "<none>",
                  "203.0.113.4", "<unknown>", "<unknown>", "<unknown>"],
                 id="not ready, cordoned, roles from both label forms"),
    pytest.param({}, {}, {"conditions": [{"type": "Ready", "status": "Unknown"}]},
                 ["NotReady", "<none>", "10d", "", "<none>", "<none>", "<unknown>",
                  "<unknown>", "<unknown>"], id="Ready Unknown prints NotReady"),
    pytest.param({}, {}, {}, ["Unknown", "<none>", "10d", "", "<none>", "<none>", "<unknown>",
                              "<unknown>", "<unknown>"], id="no Ready condition: Unknown"),
]


@pytest.mark.parametrize(("metadata", "spec", "status", "expected"), NODES)
def test_node_rows(metadata: dict[str, Any], spec: dict[str, Any], status: dict[str, Any],
                   expected: list[str]) -> None:
    obj = {"metadata": {**meta("n1", 10 * DAY), **metadata}, "spec": spec, "status": status}
    assert printing.row_cells("nodes", "", obj, NOW) == ["n1", *expected]


# --- config, namespaces, leases, quotas, default ----------------------------------------------

SIMPLE = [
    pytest.param("", "namespaces", {"metadata": meta("default", 3 * DAY),
                                    "status": {"phase": "Active"}},
                 ["default", "Active", "3d"], id="namespace"),
    pytest.param("", "secrets", {"metadata": meta("creds", 60), "type": "kubernetes.io/tls",
                                 "data": {"tls.crt": "eA==", "tls.key": "eQ=="}},
                 ["creds", "kubernetes.io/tls", 2, "60s"], id="secret counts data keys"),
    pytest.param("", "secrets", {"metadata": meta("s", 60), "stringData": {"a": "b"}},
                 ["s", "Opaque", 0, "60s"], id="secret ignores stringData; type Opaque"),
    pytest.param("", "configmaps", {"metadata": meta("cfg", 60), "data": {"a": "1", "b": "2"},
                                    "binaryData": {"c": "AA=="}},
                 ["cfg", 3, "60s"], id="configmap counts data and binaryData"),
    pytest.param("", "serviceaccounts", {"metadata": meta("default", 60)},
                 ["default", 0, "60s"], id="serviceaccount without secrets"),
    pytest.param("", "serviceaccounts", {"metadata": meta("bot", 60),
                                         "secrets": [{"name": "bot-token"}]},
                 ["bot", 1, "60s"], id="serviceaccount with a secret"),
    pytest.param("coordination.k8s.io", "leases", {"metadata": meta("svcnet-ctrl", 60),
                                                   "spec": {"holderIdentity": "host-1_ab"}},
                 ["svcnet-ctrl", "host-1_ab", "60s"], id="lease holder"),
    pytest.param("coordination.k8s.io", "leases", {"metadata": meta("free", 60), "spec": {}},
                 ["free", "", "60s"], id="lease without holder"),
    pytest.param("", "resourcequotas", {
        "metadata": meta("quota", 60),
        "status": {"hard": {"requests.cpu": "1", "pods": "10", "limits.memory": "2Gi",
                            "limits": "5"},
                   "used": {"requests.cpu": "500m", "pods": "2", "limits.memory": "1Gi"}}},
        ["quota", "limits: 0/5, pods: 2/10, requests.cpu: 500m/1", "limits.memory: 1Gi/2Gi",
         "60s"], id="quota requests and limits sorted"),
    pytest.param("", "limitranges", {"metadata": meta("lr", 3600)},
                 ["lr", "2024-05-01T11:00:00Z"], id="default printer Created At"),
    pytest.param("", "limitranges", {"metadata": {"name": "lr",
                                                  "creationTimestamp": "2024-05-01T13:00:00+02:00"}},
                 ["lr", "2024-05-01T11:00:00Z"], id="default printer normalises to UTC"),
    pytest.param("", "limitranges", {"metadata": {"name": "lr"}},
                 ["lr", "0001-01-01T00:00:00Z"], id="default printer zero time"),
]


@pytest.mark.parametrize(("group", "resource", "obj", "expected"), SIMPLE)
def test_simple_rows(group: str, resource: str, obj: dict[str, Any], expected: list[Any]) -> None:
    assert printing.row_cells(resource, group, obj, NOW) == expected


# --- events -----------------------------------------------------------------------------------


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "metadata": meta("web-1.17c2a", 300),
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default",
                           "fieldPath": "spec.containers{web}"},
        "reason": "Pulled", "message": "  Container image already present\n", "type": "Normal",
        "source": {"component": "kubelet", "host": "node-a"},
    }
    base.update(fields)
    return base


EVENTS = [
    pytest.param(event(firstTimestamp=ago(300), lastTimestamp=ago(30), count=3),
                 ["30s", "Normal", "Pulled", "pod/web-1", "spec.containers{web}",
                  "kubelet, node-a", "Container image already present", "5m", 3, "web-1.17c2a"],
                 id="classic event"),
    pytest.param(event(firstTimestamp=ago(300)),
                 ["5m", "Normal", "Pulled", "pod/web-1", "spec.containers{web}",
                  "kubelet, node-a", "Container image already present", "5m", 1, "web-1.17c2a"],
                 id="no lastTimestamp: first seen; count 0 reads 1"),
    pytest.param(event(eventTime="2024-05-01T11:58:00.000000Z", source={},
                       reportingComponent="svcnet-controller", reportingInstance="ctrl-1",
                       series={"count": 7, "lastObservedTime": "2024-05-01T11:59:50.000000Z"}),
                 ["10s", "Normal", "Pulled", "pod/web-1", "spec.containers{web}",
                  "svcnet-controller, ctrl-1", "Container image already present", "2m", 7,
                  "web-1.17c2a"], id="eventTime, series and reporting fields"),
    pytest.param(event(involvedObject={"kind": "Node"}, source={"component": "kubelet"},
                       type="Warning", reason="Rebooted", message="rebooted"),
                 ["<unknown>", "Warning", "Rebooted", "node", "", "kubelet", "rebooted",
                  "<unknown>", 1, "web-1.17c2a"], id="kind only object; no host; no times"),
]


@pytest.mark.parametrize(("obj", "expected"), EVENTS)
def test_event_rows(obj: dict[str, Any], expected: list[Any]) -> None:
    assert printing.row_cells("events", "", obj, NOW) == expected


# --- tables -----------------------------------------------------------------------------------

SVC = svc({"type": "ClusterIP", "clusterIPs": ["10.96.0.10"], "ports": [PORT80]})
SVC["metadata"].update(labels={"app": "web"}, uid="u-1", resourceVersion="104",
                       managedFields=[{"manager": "kubectl"}])


def test_table_shape() -> None:
    table = printing.to_table("services", "", [SVC], NOW, resource_version="104")
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "104"}
    assert [c["name"] for c in table["columnDefinitions"]][:2] == ["Name", "Type"]
    assert table["rows"] == [{
        "cells": ["websvc", "ClusterIP", "10.96.0.10", "<none>", "80/TCP", "3s", "<none>"],
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": SVC["metadata"]},
    }]


INCLUDE = [
    pytest.param("Metadata", {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                              "metadata": SVC["metadata"]}, id="Metadata: partial, unchanged"),
    pytest.param("Object", SVC, id="Object: the full object"),
    pytest.param("None", None, id="None: null object"),
]


@pytest.mark.parametrize(("include", "expected"), INCLUDE)
def test_table_include_object(include: str, expected: Any) -> None:
    table = printing.to_table("services", "", [SVC], NOW, include_object=include)
    assert table["rows"][0]["object"] == expected


TABLE_META = [
    pytest.param({}, {}, True, id="nothing given: empty metadata"),
    pytest.param({"resource_version": "7", "continue_token": "abc"},
                 {"resourceVersion": "7", "continue": "abc"}, True, id="resourceVersion, continue"),
    pytest.param({"with_columns": False}, {}, False, id="watch event after the first: no columns"),
]


@pytest.mark.parametrize(("kwargs", "metadata", "has_columns"), TABLE_META)
def test_table_metadata_and_columns(kwargs: dict[str, Any], metadata: dict[str, Any],
                                    has_columns: bool) -> None:
    table = printing.to_table("services", "", [SVC], NOW, **kwargs)
    assert table["metadata"] == metadata
    assert bool(table["columnDefinitions"]) is has_columns
    assert len(table["rows"]) == 1


def test_empty_table_has_columns_and_no_rows() -> None:
    table = printing.to_table("pods", "", [], NOW)
    assert table["rows"] == []
    assert len(table["columnDefinitions"]) == 9


def test_unknown_include_object_is_bad_request() -> None:
    with pytest.raises(APIError) as caught:
        printing.to_table("pods", "", [], NOW, include_object="Everything")
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")
    assert caught.value.message == 'unrecognized includeObject value: "Everything"'


ROW_CONDITIONS = [
    pytest.param("Succeeded", [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                "message": "The pod has completed successfully."}],
                 id="succeeded pod row is Completed"),
    pytest.param("Failed", [{"type": "Completed", "status": "True", "reason": "Failed",
                             "message": "The pod failed."}], id="failed pod row is Completed"),
    pytest.param("Running", None, id="running pod row has no conditions"),
]


@pytest.mark.parametrize(("phase", "expected"), ROW_CONDITIONS)
def test_pod_row_conditions(phase: str, expected: list[Any] | None) -> None:
    row = printing.to_table("pods", "", [pod(phase=phase)], NOW)["rows"][0]
    assert row.get("conditions") == expected


def test_rows_keep_input_order_and_inputs_unchanged() -> None:
    objs = [pod("b"), pod("a")]
    before = repr(objs)
    table = printing.to_table("pods", "", objs, NOW, include_object="Object")
    assert [r["cells"][0] for r in table["rows"]] == ["b", "a"]
    assert repr(objs) == before
