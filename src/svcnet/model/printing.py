"""Server-side ``kubectl get`` printing: ``meta.k8s.io/v1`` Tables built from plain objects.

The API server renders every cell of a Table itself; kubectl prints the cells as given
(``-o wide`` only un-hides the columns with ``priority`` 1). This module reproduces the
column sets and cell rules of Kubernetes' built-in printers (``pkg/printers/internalversion``)
and of apimachinery's ``HumanDuration`` for every resource in
:data:`svcnet.model.kinds.RESOURCES`, so that ``kubectl get`` output reads exactly as it does
against a real cluster.

Contracts shared by every function here:

* Objects are plain JSON dicts as stored; missing or ``null`` fields read as empty. Fields a
  real API server always defaults before storing are read with that default when absent
  (Service ``type`` ``ClusterIP``, port ``protocol`` ``TCP``, Secret ``type`` ``Opaque``,
  Deployment/ReplicaSet ``spec.replicas`` 1), and the v1 legacy single-value fields stand in
  for their list forms as the v1 conversion does (``spec.clusterIP`` for ``clusterIPs``,
  ``status.podIP`` for ``podIPs``).
* All cells are rendered as for ``-o wide``: the server always sends every column.
* Times are RFC 3339 strings; ``now`` is an aware ``datetime`` (a naive one is taken as UTC).
* Nothing here mutates its inputs. Returned rows may share nested values with the input
  objects (for instance the ``metadata`` of a partial object); treat them as read-only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from svcnet.model import errors

JSON = dict[str, Any]
Cell = str | int
RowPrinter = Callable[[Mapping[str, Any], datetime], list[Cell]]

TABLE_API_VERSION = "meta.k8s.io/v1"
INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")

# --- column descriptions ------------------------------------------------------------------
# Field documentation as the OpenAPI schema of the v1 types carries it (upstream takes these
# from the types' SwaggerDoc()).

_DOCS: dict[str, str] = {
    "name": (
        'Name must be unique within a namespace. Is required when creating resources, although '
        'some resources may allow a client to request the generation of an appropriate name '
        'automatically. Name is primarily intended for creation idempotence and configuration '
        'definition. Cannot be updated. More info: '
        'https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names'
    ),
    "creationTimestamp": (
        'CreationTimestamp is a timestamp representing the server time when this object was '
        'created. It is not guaranteed to be set in happens-before order across separate '
        'operations. Clients may not set this value. It is represented in RFC3339 form and is in '
        'UTC.  Populated by the system. Read-only. Null for lists. More info: '
        'https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata'
    ),
    "podIP": (
        'podIP address allocated to the pod. Routable at least within the cluster. Empty if not '
        'yet allocated.'
    ),
    "nodeName": (
        'NodeName indicates in which node this pod is scheduled. If empty, this pod is a '
        'candidate for scheduling by the scheduler defined in schedulerName. Once this field is '
        'set, the kubelet for this node becomes responsible for the lifecycle of this pod. This '
        'field should not be used to express a desire for the pod to be scheduled on a specific '
        'node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename'
    ),
    "nominatedNodeName": (
        'nominatedNodeName is set only when this pod preempts other pods on the node, but it '
        'cannot be scheduled right away as preemption victims receive their graceful termination '
        'periods. This field does not guarantee that the pod will be scheduled on this node. '
        'Scheduler may decide to place the pod elsewhere if other nodes become available sooner. '
        'Scheduler may also decide to give the resources on this node to a higher priority pod '
        'that is created after preemption. As a result, this field may be different than '
        'PodSpec.nodeName when the pod is scheduled.'
    ),
    "readinessGates": (
        'If specified, all readiness gates will be evaluated for pod readiness. A pod is ready '
        'when all its containers are ready AND all conditions specified in the readiness gates '
        'have status equal to "True" More info: '
        'https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates'
    ),
    "rsSpecReplicas": (
        'Replicas is the number of desired pods. This is a pointer to distinguish between '
        'explicit zero and unspecified. Defaults to 1. More info: '
        'https://kubernetes.io/docs/concepts/workloads/controllers/replicaset'
    ),
    "rsStatusReplicas": (
        'Replicas is the most recently observed number of non-terminating pods. More info: '
        'https://kubernetes.io/docs/concepts/workloads/controllers/replicaset'
    ),
    "rsReadyReplicas": (
        'The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.'
    ),
    "svcType": (
        'type determines how the Service is exposed. Defaults to ClusterIP. Valid options are '
        'ExternalName, ClusterIP, NodePort, and LoadBalancer. "ClusterIP" allocates a '
        'cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by'
        ' the selector or if that is not specified, by manual construction of an Endpoints object'
        ' or EndpointSlice objects. If clusterIP is "None", no virtual IP is allocated and the '
        'endpoints are published as a set of endpoints rather than a virtual IP. "NodePort" '
        'builds on ClusterIP and allocates a port on every node which routes to the same '
        'endpoints as the clusterIP. "LoadBalancer" builds on NodePort and creates an external '
        'load-balancer (if supported in the current cloud) which routes to the same endpoints as '
        'the clusterIP. "ExternalName" aliases this service to the specified externalName. '
        'Several other fields do not apply to ExternalName services. More info: '
        'https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types'
    ),
    "clusterIP": (
        'clusterIP is the IP address of the service and is usually assigned randomly. If an '
        'address is specified manually, is in-range (as per system configuration), and is not in '
        'use, it will be allocated to the service; otherwise creation of the service will fail. '
        'This field may not be changed through updates unless the type field is also being '
        'changed to ExternalName (which requires this field to be blank) or the type field is '
        'being changed from ExternalName (in which case this field may optionally be specified, '
        'as describe above).  Valid values are "None", empty string (""), or a valid IP address. '
        'Setting this to "None" makes a "headless service" (no virtual IP), which is useful when '
        'direct endpoint connections are preferred and proxying is not required.  Only applies to'
        ' types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a'
        ' Service of type ExternalName, creation will fail. This field will be wiped when '
        'updating a Service to type ExternalName. More info: '
        'https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies'
    ),
    "externalIPs": (
        'externalIPs is a list of IP addresses for which nodes in the cluster will also accept '
        'traffic for this service.  These IPs are not managed by Kubernetes.  The user is '
        'responsible for ensuring that traffic arrives at a node with this IP.  A common example '
        'is external load-balancers that are not part of the Kubernetes system.'
    ),
    "ports": (
        'The list of ports that are exposed by this service. More info: '
        'https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies'
    ),
    "svcSelector": (
        'Route service traffic to pods with label keys and values matching this selector. If '
        'empty or not present, the service is assumed to have an external process managing its '
        'endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, '
        'and LoadBalancer. Ignored if type is ExternalName. More info: '
        'https://kubernetes.io/docs/concepts/services-networking/service/'
    ),
    "subsets": (
        'The set of all endpoints is the union of all subsets. Addresses are placed into subsets '
        'according to the IPs they share. A single address with multiple ports, some of which are'
        ' ready and some of which are not (because they come from different containers) will '
        'result in the address being displayed in different subsets for the different ports. No '
        'address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of '
        'addresses and ports that comprise a service.'
    ),
    "kubeletVersion": (
        'Kubelet Version reported by the node.'
    ),
    "addresses": (
        'List of addresses reachable to the node. Queried from cloud provider, if available. More'
        ' info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field'
        ' is declared as mergeable, but the merge key is not sufficiently unique, which can cause'
        ' data corruption when it is merged. Callers should instead use a full-replacement patch.'
        ' See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can '
        'change during the lifetime of a Node. However, there are some exceptions where this may '
        "not be possible, such as Pods that inherit a Node's address in its own status or "
        'consumers of the downward API (status.hostIP).'
    ),
    "osImage": (
        'OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).'
    ),
    "kernelVersion": (
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."
    ),
    "containerRuntimeVersion": (
        'ContainerRuntime Version reported by the node through runtime remote API (e.g. '
        'containerd://1.4.2).'
    ),
    "lastTimestamp": (
        'The time at which the most recent occurrence of this event was recorded.'
    ),
    "eventType": (
        'Type of this event (Normal, Warning), new types could be added in the future'
    ),
    "reason": (
        'This should be a short, machine understandable string that gives the reason for the '
        "transition into the object's current status."
    ),
    "fieldPath": (
        'If referring to a piece of an object instead of an entire object, this string should '
        'contain a valid JSON/Go field access statement, such as '
        'desiredState.manifest.containers[2]. For example, if the object reference is to a '
        'container within a pod, this would take on a value like: "spec.containers{name}" (where '
        '"name" refers to the name of the container that triggered the event) or if no container '
        'name is specified "spec.containers[2]" (container with index 2 in this pod). This syntax'
        ' is chosen only to have some well-defined way of referencing a part of an object.'
    ),
    "message": (
        'A human-readable description of the status of this operation.'
    ),
    "firstTimestamp": (
        'The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)'
    ),
    "count": (
        'The number of times this event has occurred.'
    ),
    "secretType": (
        'Used to facilitate programmatic handling of secret data. More info: '
        'https://kubernetes.io/docs/concepts/configuration/secret/#secret-types'
    ),
    "secretData": (
        "Data contains the secret data. Each key must consist of alphanumeric characters, '-', "
        "'_' or '.'. The serialized form of the secret data is a base64 encoded string, "
        'representing the arbitrary (possibly non-string) data value here. Described in '
        'https://tools.ietf.org/html/rfc4648#section-4'
    ),
    "saSecrets": (
        'Secrets is a list of the secrets in the same namespace that pods running using this '
        'ServiceAccount are allowed to use. Pods are only limited to this list if this service '
        'account has a "kubernetes.io/enforce-mountable-secrets" annotation set to "true". The '
        '"kubernetes.io/enforce-mountable-secrets" annotation is deprecated since v1.32. Prefer '
        'separate namespaces to isolate access to mounted secrets. This field should not be used '
        'to find auto-generated service account token secrets for use outside of pods. Instead, '
        'tokens can be requested directly using the TokenRequest API, or service account token '
        'secrets can be manually created. More info: '
        'https://kubernetes.io/docs/concepts/configuration/secret'
    ),
    "updatedReplicas": (
        'Total number of non-terminating pods targeted by this deployment that have the desired '
        'template spec.'
    ),
    "availableReplicas": (
        'Total number of available non-terminating pods (ready for at least minReadySeconds) '
        'targeted by this deployment.'
    ),
    "configMapData": (
        'Data contains the configuration data. Each key must consist of alphanumeric characters, '
        "'-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The"
        ' keys stored in Data must not overlap with the keys in the BinaryData field, this is '
        'enforced during validation process.'
    ),
    "holderIdentity": (
        'holderIdentity contains the identity of the holder of a current lease. If Coordinated '
        'Leader Election is used, the holder identity must be equal to the elected '
        'LeaseCandidate.metadata.name field.'
    ),
    "addressType": (
        'addressType specifies the type of address carried by this EndpointSlice. All addresses '
        'in this slice must be the same type. This field is immutable after creation. The '
        'following address types are currently supported: * IPv4: Represents an IPv4 Address. * '
        'IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. '
        '(Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes,'
        ' slices of addressType "IPv4" and "IPv6". No semantics are defined for the "FQDN" type.'
    ),
    "slicePorts": (
        'ports specifies the list of network ports exposed by each endpoint in this slice. Each '
        'port must have a unique name. Each slice may include a maximum of 100 ports. Services '
        'always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller'
        ' will likewise always have at least 1 port. EndpointSlices used for other purposes may '
        'have an empty ports list.'
    ),
    "sliceEndpoints": (
        'endpoints is a list of unique endpoints in this slice. Each slice may include a maximum '
        'of 1000 endpoints.'
    ),
}

_DOCS.update({
    "involvedObject": "The object that this event is about.",
    "eventSource": (
        "The component reporting this event. Should be a short machine understandable string."
    ),
    "deploySelector": (
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be "
        "the ones affected by this deployment."
    ),
    "rsSelector": (
        "Selector is a label query over pods that should match the replica count. If the "
        "selector is empty, it is defaulted to the labels present on the pod template. Label "
        "keys and values that must match in order to be controlled by this replica set. More "
        "info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/"
        "#label-selectors"
    ),
    "podReady": "The aggregate readiness state of this pod for accepting traffic.",
    "podStatus": "The aggregate status of the containers in this pod.",
    "podRestarts": (
        "The number of times the containers in this pod have been restarted and when the last "
        "container in this pod has restarted."
    ),
    "containers": "Names of each container in the template.",
    "images": "Images referenced by each container in the template.",
    "deployReady": "Number of the pod with ready state",
    "ingressClass": (
        "The name of the IngressClass resource that should be used for additional configuration"
    ),
    "ingressHosts": "Hosts that incoming requests are matched against before the ingress rule",
    "ingressAddress": "Address is a list containing ingress points for the load-balancer",
    "ingressPorts": "Ports of TLS configurations that open",
    "ingressClassController": "Controller that is responsible for handling this class",
    "ingressClassParameters": "A reference to a resource with additional parameters",
    "nodeStatus": "The status of the node",
    "nodeRoles": "The roles of the node",
    "namespaceStatus": "The status of the namespace",
    "quotaRequest": (
        "Request represents a minimum amount of cpu/memory that a container may consume."
    ),
    "quotaLimit": (
        "Limits control the maximum amount of cpu/memory that a container may use independent "
        "of contention on the node."
    ),
})


def _col(name: str, doc: str, *, kind: str = "string", fmt: str = "", wide: bool = False) -> JSON:
    """One ``TableColumnDefinition``; ``wide`` columns get priority 1."""
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": _DOCS.get(doc, doc),
        "priority": 1 if wide else 0,
    }


def _name_col(wide: bool = False) -> JSON:
    return _col("Name", "name", fmt="name", wide=wide)


def _age_col() -> JSON:
    return _col("Age", "creationTimestamp")


def _template_cols(selector_doc: str) -> list[JSON]:
    return [
        _col("Containers", "containers", wide=True),
        _col("Images", "images", wide=True),
        _col("Selector", selector_doc, wide=True),
    ]


_COLUMNS: dict[tuple[str, str], list[JSON]] = {
    ("", "pods"): [
        _name_col(),
        _col("Ready", "podReady"),
        _col("Status", "podStatus"),
        _col("Restarts", "podRestarts"),
        _age_col(),
        _col("IP", "podIP", wide=True),
        _col("Node", "nodeName", wide=True),
        _col("Nominated Node", "nominatedNodeName", wide=True),
        _col("Readiness Gates", "readinessGates", wide=True),
    ],
    ("apps", "deployments"): [
        _name_col(),
        _col("Ready", "deployReady"),
        _col("Up-to-date", "updatedReplicas"),
        _col("Available", "availableReplicas"),
        _age_col(),
        *_template_cols("deploySelector"),
    ],
    ("apps", "replicasets"): [
        _name_col(),
        _col("Desired", "rsSpecReplicas", kind="integer"),
        _col("Current", "rsStatusReplicas", kind="integer"),
        _col("Ready", "rsReadyReplicas", kind="integer"),
        _age_col(),
        *_template_cols("rsSelector"),
    ],
    ("", "services"): [
        _name_col(),
        _col("Type", "svcType"),
        _col("Cluster-IP", "clusterIP"),
        _col("External-IP", "externalIPs"),
        _col("Port(s)", "ports"),
        _age_col(),
        _col("Selector", "svcSelector", wide=True),
    ],
    ("", "endpoints"): [_name_col(), _col("Endpoints", "subsets"), _age_col()],
    ("discovery.k8s.io", "endpointslices"): [
        _name_col(),
        _col("AddressType", "addressType"),
        _col("Ports", "slicePorts"),
        _col("Endpoints", "sliceEndpoints"),
        _age_col(),
    ],
    ("networking.k8s.io", "ingresses"): [
        _name_col(),
        _col("Class", "ingressClass"),
        _col("Hosts", "ingressHosts"),
        _col("Address", "ingressAddress"),
        _col("Ports", "ingressPorts"),
        _age_col(),
    ],
    ("networking.k8s.io", "ingressclasses"): [
        _name_col(),
        _col("Controller", "ingressClassController"),
        _col("Parameters", "ingressClassParameters"),
        _age_col(),
    ],
    ("", "namespaces"): [_name_col(), _col("Status", "namespaceStatus"), _age_col()],
    ("", "nodes"): [
        _name_col(),
        _col("Status", "nodeStatus"),
        _col("Roles", "nodeRoles"),
        _age_col(),
        _col("Version", "kubeletVersion"),
        _col("Internal-IP", "addresses", wide=True),
        _col("External-IP", "addresses", wide=True),
        _col("OS-Image", "osImage", wide=True),
        _col("Kernel-Version", "kernelVersion", wide=True),
        _col("Container-Runtime", "containerRuntimeVersion", wide=True),
    ],
    ("", "secrets"): [
        _name_col(), _col("Type", "secretType"), _col("Data", "secretData"), _age_col(),
    ],
    ("", "configmaps"): [_name_col(), _col("Data", "configMapData"), _age_col()],
    ("", "serviceaccounts"): [_name_col(), _col("Secrets", "saSecrets"), _age_col()],
    ("", "events"): [
        _col("Last Seen", "lastTimestamp"),
        _col("Type", "eventType"),
        _col("Reason", "reason"),
        _col("Object", "involvedObject"),
        _col("Subobject", "fieldPath", wide=True),
        _col("Source", "eventSource", wide=True),
        _col("Message", "message"),
        _col("First Seen", "firstTimestamp", wide=True),
        _col("Count", "count", wide=True),
        _name_col(wide=True),
    ],
    ("", "resourcequotas"): [
        _name_col(), _col("Request", "quotaRequest"), _col("Limit", "quotaLimit"), _age_col(),
    ],
    ("coordination.k8s.io", "leases"): [
        _name_col(), _col("Holder", "holderIdentity"), _age_col(),
    ],
}

# The API server's default table convertor, used for kinds without a printer.
_DEFAULT_COLUMNS: list[JSON] = [
    _name_col(),
    _col("Created At", "creationTimestamp", kind="date"),
]


def column_definitions(resource: str, group: str) -> list[JSON]:
    """The ``columnDefinitions`` of a Table of ``resource`` in API ``group``.

    Each entry has ``name``, ``type``, ``format``, ``description`` and ``priority`` (1 for
    the columns kubectl shows only with ``-o wide``). Resources without a printer (for
    example ``limitranges``) get the default ``Name`` / ``Created At`` pair. The result is
    a fresh list of fresh dicts the caller may modify.
    """
    return [dict(c) for c in _COLUMNS.get((group, resource), _DEFAULT_COLUMNS)]


# --- small readers for plain JSON -------------------------------------------------------------


def _d(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (absent and ``null`` fields)."""
    return value if isinstance(value, Mapping) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _i(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return 0


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _d(obj.get("metadata"))


def _name(obj: Mapping[str, Any]) -> str:
    return _s(_meta(obj).get("name"))


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _d(obj.get("spec"))


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _d(obj.get("status"))


# --- time ---------------------------------------------------------------------------------------

_FRACTION = re.compile(r"\.(\d+)")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``Z`` or offset, any fraction length) as an aware datetime.

    ``None``, empty and unparseable values give ``None`` (a zero ``metav1.Time``).
    """
    text = _s(value).strip()
    if not text:
        return None
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """apimachinery's ``duration.HumanDuration`` for a duration given in seconds.

    Whole seconds are taken by truncation toward zero. Below -1 s → ``<invalid>``; -1 s up
    to 0 → ``0s``; under 2 min → ``Ns``; under 10 min → ``MmSs`` (``Mm`` on a whole
    minute); under 3 h → ``Mm``; under 8 h → ``HhMm`` (``Hh``); under 48 h → ``Hh``; under
    8 days → ``DdHh`` (``Dd``); under 2 years of 365 days → ``Dd``; under 8 years →
    ``YyDd`` (``Yy``); otherwise ``Yy``.
    """
    total = int(seconds)
    if total < -1:
        return "<invalid>"
    if total < 0:
        return "0s"
    if total < 120:
        return f"{total}s"
    return _minutes_and_up(total)


def _minutes_and_up(total: int) -> str:
    minutes = total // 60
    if minutes < 10:
        return _pair(minutes, "m", total % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    hours = total // 3600
    if hours < 8:
        return _pair(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return _pair(hours // 24, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        return _pair(hours // 24 // 365, "y", (hours // 24) % 365, "d")
    return f"{hours // 24 // 365}y"


def _pair(big: int, big_unit: str, small: int, small_unit: str) -> str:
    """``3h5m`` style, dropping the smaller unit when it is zero."""
    return f"{big}{big_unit}" if small == 0 else f"{big}{big_unit}{small}{small_unit}"


def _since(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "<unknown>"
    return human_duration((_aware(now) - moment).total_seconds())


def age(timestamp: str | None, now: datetime) -> str:
    """The human duration from RFC 3339 ``timestamp`` to ``now``; ``<unknown>`` if unset.

    Clock skew of at most one second in the future reads ``0s``; more reads ``<invalid>``.
    """
    return _since(parse_time(timestamp), now)


def _created(obj: Mapping[str, Any], now: datetime) -> str:
    return age(_meta(obj).get("creationTimestamp"), now)


# --- label formatting ---------------------------------------------------------------------------


def _format_labels(labels: Any) -> str:
    """labels.FormatLabels: ``k=v`` sorted by key, comma-joined; ``<none>`` when empty."""
    pairs = sorted(_d(labels).items())
    return ",".join(f"{k}={v}" for k, v in pairs) or "<none>"


_SELECTOR_OPS = {"In": " in ", "NotIn": " notin ", "Exists": "", "DoesNotExist": ""}


def _requirement(expr: Mapping[str, Any]) -> tuple[str, str]:
    """One matchExpression as ``(key, text)``; raises ValueError when apimachinery would."""
    key, op = _s(expr.get("key")), _s(expr.get("operator"))
    values = [_s(v) for v in _l(expr.get("values"))]
    if op not in _SELECTOR_OPS or not key:
        raise ValueError(f"{op!r} is not a valid label selector operator")
    if op in ("Exists", "DoesNotExist"):
        if values:
            raise ValueError("values set must be empty for exists and does not exist")
        return key, ("!" if op == "DoesNotExist" else "") + key
    if not values:
        raise ValueError("for 'in', 'notin' operators, values set can't be empty")
    return key, f"{key}{_SELECTOR_OPS[op]}({','.join(sorted(values))})"


def _selector_string(selector: Mapping[str, Any]) -> str:
    """metav1.LabelSelectorAsSelector(...).String(): requirements sorted by key.

    An empty selector gives ``""``; an invalid one raises ValueError.
    """
    reqs = [(k, f"{k}={_s(v)}") for k, v in _d(selector.get("matchLabels")).items()]
    reqs += [_requirement(_d(e)) for e in _l(selector.get("matchExpressions"))]
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def _format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector: ``<none>`` when unset or empty, ``<error>`` if invalid."""
    if not isinstance(selector, Mapping):
        return "<none>"
    try:
        return _selector_string(selector) or "<none>"
    except ValueError:
        return "<error>"


def _deployment_selector(selector: Any) -> str:
    """The Deployment printer's selector cell: empty when unset, ``<invalid>`` if invalid."""
    try:
        return _selector_string(_d(selector))
    except ValueError:
        return "<invalid>"


def _container_cells(template: Any) -> list[Cell]:
    """Comma-joined container names and images of a pod template."""
    containers = [_d(c) for c in _l(_d(_d(template).get("spec")).get("containers"))]
    return [
        ",".join(_s(c.get("name")) for c in containers),
        ",".join(_s(c.get("image")) for c in containers),
    ]


# --- pods ---------------------------------------------------------------------------------------


@dataclass
class _PodTally:
    """Running totals while walking a pod's container statuses (upstream ``printPod``)."""

    reason: str
    ready: int = 0
    restarts: int = 0
    last_restart: datetime | None = None
    sidecar_restarts: int = 0
    sidecar_last_restart: datetime | None = None
    initializing: bool = False


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _last_finished(status: Mapping[str, Any]) -> datetime | None:
    """``lastState.terminated.finishedAt`` of a container status, if any."""
    terminated = _d(status.get("lastState")).get("terminated")
    if terminated is None:
        return None
    return parse_time(_d(terminated).get("finishedAt"))


def _is_sidecar(container: Any) -> bool:
    """A restartable init container: ``restartPolicy: Always``."""
    return _s(_d(container).get("restartPolicy")) == "Always"


def _exit_reason(terminated: Mapping[str, Any]) -> str:
    """A terminated state's reason, else ``Signal:N`` / ``ExitCode:N``."""
    reason = _s(terminated.get("reason"))
    if reason:
        return reason
    signal = _i(terminated.get("signal"))
    if signal != 0:
        return f"Signal:{signal}"
    return f"ExitCode:{_i(terminated.get('exitCode'))}"


def _condition_true(status: Mapping[str, Any], kind: str) -> bool:
    """Whether the first condition of type ``kind`` has status ``True``."""
    for cond in _l(status.get("conditions")):
        if _d(cond).get("type") == kind:
            return _d(cond).get("status") == "True"
    return False


def _tally_init(tally: _PodTally, pod: Mapping[str, Any]) -> None:
    """Walk init container statuses; stop at the first one still blocking start-up."""
    specs = _l(_spec(pod).get("initContainers"))
    init_specs = {_s(_d(c).get("name")): c for c in specs}
    statuses = _l(_status(pod).get("initContainerStatuses"))
    for index, raw in enumerate(statuses):
        status = _d(raw)
        count, finished = _i(status.get("restartCount")), _last_finished(status)
        tally.restarts += count
        tally.last_restart = _later(tally.last_restart, finished)
        sidecar = _is_sidecar(init_specs.get(_s(status.get("name"))))
        if sidecar:
            tally.sidecar_restarts += count
            tally.sidecar_last_restart = _later(tally.sidecar_last_restart, finished)
        if _init_done(tally, _d(status), sidecar):
            continue
        tally.reason = _init_reason(status, index, len(specs))
        tally.initializing = True
        break


def _init_done(tally: _PodTally, status: Mapping[str, Any], sidecar: bool) -> bool:
    """Whether an init container no longer blocks: exited 0, or a started sidecar."""
    terminated = _d(status.get("state")).get("terminated")
    if terminated is not None and _i(_d(terminated).get("exitCode")) == 0:
        return True
    if sidecar and status.get("started") is True:
        if status.get("ready") is True:
            tally.ready += 1
        return True
    return False


def _init_reason(status: Mapping[str, Any], index: int, total: int) -> str:
    state = _d(status.get("state"))
    if state.get("terminated") is not None:
        return "Init:" + _exit_reason(_d(state.get("terminated")))
    waiting = _s(_d(state.get("waiting")).get("reason"))
    if state.get("waiting") is not None and waiting and waiting != "PodInitializing":
        return "Init:" + waiting
    return f"Init:{index}/{total}"


def _tally_containers(tally: _PodTally, pod: Mapping[str, Any]) -> None:
    """Walk app container statuses last to first; the first listed reason wins."""
    tally.restarts = tally.sidecar_restarts
    tally.last_restart = tally.sidecar_last_restart
    has_running = False
    for raw in reversed(_l(_status(pod).get("containerStatuses"))):
        status = _d(raw)
        tally.restarts += _i(status.get("restartCount"))
        tally.last_restart = _later(tally.last_restart, _last_finished(status))
        state = _d(status.get("state"))
        waiting = _s(_d(state.get("waiting")).get("reason"))
        if state.get("waiting") is not None and waiting:
            tally.reason = waiting
        elif state.get("terminated") is not None:
            tally.reason = _exit_reason(_d(state.get("terminated")))
        elif status.get("ready") is True and state.get("running") is not None:
            has_running = True
            tally.ready += 1
    if tally.reason == "Completed" and has_running:
        ready = _condition_true(_status(pod), "Ready")
        tally.reason = "Running" if ready else "NotReady"


def _pod_reason(pod: Mapping[str, Any]) -> str:
    """``status.reason`` or the phase, with ``SchedulingGated`` taking precedence."""
    status = _status(pod)
    reason = _s(status.get("reason")) or _s(status.get("phase"))
    for cond in _l(status.get("conditions")):
        c = _d(cond)
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    return reason


def _pod_tally(pod: Mapping[str, Any]) -> _PodTally:
    tally = _PodTally(reason=_pod_reason(pod))
    _tally_init(tally, pod)
    if not tally.initializing or _condition_true(_status(pod), "Initialized"):
        _tally_containers(tally, pod)
    status = _status(pod)
    if _meta(pod).get("deletionTimestamp"):
        if _s(status.get("reason")) == "NodeLost":
            tally.reason = "Unknown"
        elif _s(status.get("phase")) not in ("Succeeded", "Failed"):
            tally.reason = "Terminating"
    return tally


def _pod_total_containers(pod: Mapping[str, Any]) -> int:
    spec = _spec(pod)
    sidecars = sum(1 for c in _l(spec.get("initContainers")) if _is_sidecar(c))
    return len(_l(spec.get("containers"))) + sidecars


def _readiness_gates(pod: Mapping[str, Any]) -> str:
    """``true/total`` over ``spec.readinessGates``; ``<none>`` when there are none."""
    gates = _l(_spec(pod).get("readinessGates"))
    if not gates:
        return "<none>"
    conditions = [_d(c) for c in _l(_status(pod).get("conditions"))]
    true = 0
    for gate in gates:
        wanted = _d(gate).get("conditionType")
        match = next((c for c in conditions if c.get("type") == wanted), None)
        if match is not None and match.get("status") == "True":
            true += 1
    return f"{true}/{len(gates)}"


def _pod_ip(pod: Mapping[str, Any]) -> str:
    status = _status(pod)
    ips = _l(status.get("podIPs"))
    ip = _s(_d(ips[0]).get("ip")) if ips else _s(status.get("podIP"))
    return ip or "<none>"


def _pod_row(pod: Mapping[str, Any], now: datetime) -> list[Cell]:
    tally = _pod_tally(pod)
    restarts = str(tally.restarts)
    if tally.restarts != 0 and tally.last_restart is not None:
        restarts = f"{tally.restarts} ({_since(tally.last_restart, now)} ago)"
    return [
        _name(pod),
        f"{tally.ready}/{_pod_total_containers(pod)}",
        tally.reason,
        restarts,
        _created(pod, now),
        _pod_ip(pod),
        _s(_spec(pod).get("nodeName")) or "<none>",
        _s(_status(pod).get("nominatedNodeName")) or "<none>",
        _readiness_gates(pod),
    ]


_POD_ROW_CONDITIONS = {
    "Succeeded": {
        "type": "Completed",
        "status": "True",
        "reason": "Succeeded",
        "message": "The pod has completed successfully.",
    },
    "Failed": {
        "type": "Completed",
        "status": "True",
        "reason": "Failed",
        "message": "The pod failed.",
    },
}


def row_conditions(resource: str, group: str, obj: Mapping[str, Any]) -> list[JSON]:
    """The ``conditions`` of a Table row: a ``Completed`` condition for finished pods.

    Empty for everything else (the row then carries no ``conditions`` key).
    """
    if (group, resource) != ("", "pods"):
        return []
    condition = _POD_ROW_CONDITIONS.get(_s(_status(obj).get("phase")))
    return [dict(condition)] if condition else []


# --- workloads ------------------------------------------------------------------------------------


def _replicas(spec: Mapping[str, Any]) -> int:
    """``spec.replicas`` with the API default of 1 when unset."""
    value = spec.get("replicas")
    return 1 if value is None else _i(value)


def _deployment_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    return [
        _name(obj),
        f"{_i(status.get('readyReplicas'))}/{_replicas(spec)}",
        _i(status.get("updatedReplicas")),
        _i(status.get("availableReplicas")),
        _created(obj, now),
        *_container_cells(spec.get("template")),
        _deployment_selector(spec.get("selector")),
    ]


def _replicaset_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    spec, status = _spec(obj), _status(obj)
    return [
        _name(obj),
        _replicas(spec),
        _i(status.get("replicas")),
        _i(status.get("readyReplicas")),
        _created(obj, now),
        *_container_cells(spec.get("template")),
        _format_label_selector(spec.get("selector")),
    ]


# --- services and endpoints -----------------------------------------------------------------------


def _lb_addresses(status: Mapping[str, Any]) -> list[str]:
    """Sorted, de-duplicated ingress IPs (or hostnames when no IP) of a load balancer."""
    found: set[str] = set()
    for raw in _l(_d(status.get("loadBalancer")).get("ingress")):
        entry = _d(raw)
        value = _s(entry.get("ip")) or _s(entry.get("hostname"))
        if value:
            found.add(value)
    return sorted(found)


def _service_type(spec: Mapping[str, Any]) -> str:
    return _s(spec.get("type")) or "ClusterIP"


def _service_external_ip(svc: Mapping[str, Any]) -> str:
    spec = _spec(svc)
    kind = _service_type(spec)
    external = [_s(ip) for ip in _l(spec.get("externalIPs"))]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        found = _lb_addresses(_status(svc)) + external
        return ",".join(found) or "<pending>"
    if kind == "ExternalName":
        return _s(spec.get("externalName"))
    return "<unknown>"


def _service_ports(spec: Mapping[str, Any]) -> str:
    pieces = []
    for raw in _l(spec.get("ports")):
        port = _d(raw)
        protocol = _s(port.get("protocol")) or "TCP"
        node_port = _i(port.get("nodePort"))
        middle = f":{node_port}" if node_port > 0 else ""
        pieces.append(f"{_i(port.get('port'))}{middle}/{protocol}")
    return ",".join(pieces) or "<none>"


def _cluster_ip(spec: Mapping[str, Any]) -> str:
    ips = _l(spec.get("clusterIPs"))
    ip = _s(ips[0]) if ips else _s(spec.get("clusterIP"))
    return ip or "<none>"


def _service_row(svc: Mapping[str, Any], now: datetime) -> list[Cell]:
    spec = _spec(svc)
    return [
        _name(svc),
        _service_type(spec),
        _cluster_ip(spec),
        _service_external_ip(svc),
        _service_ports(spec),
        _created(svc, now),
        _format_labels(spec.get("selector")),
    ]


def _host_port(ip: str, port: int) -> str:
    """net.JoinHostPort: IPv6 addresses in brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _endpoint_entries(subsets: list[Any]) -> Iterable[str]:
    """Every entry formatEndpoints counts, in its order: per subset, per port, per address."""
    for raw in subsets:
        subset = _d(raw)
        addresses = [_s(_d(a).get("ip")) for a in _l(subset.get("addresses"))]
        ports = _l(subset.get("ports"))
        if not ports:
            yield from addresses
            continue
        for port in ports:
            number = _i(_d(port).get("port"))
            yield from (_host_port(ip, number) for ip in addresses)


def _with_more(entries: Iterable[str], empty: str, limit: int = 3) -> str:
    """The first ``limit`` entries comma-joined, then `` + N more...``; ``empty`` if none."""
    items = list(entries)
    shown = ",".join(items[:limit])
    if len(items) > limit:
        return f"{shown} + {len(items) - limit} more..."
    return shown or empty


def _endpoints_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    subsets = _l(obj.get("subsets"))
    text = _with_more(_endpoint_entries(subsets), "") if subsets else "<none>"
    return [_name(obj), text, _created(obj, now)]


def _slice_port(port: Mapping[str, Any]) -> str:
    if port.get("port") is not None:
        return str(_i(port.get("port")))
    if port.get("name") is not None:
        return _s(port.get("name"))
    return "*"


def _endpointslice_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    ports = (_slice_port(_d(p)) for p in _l(obj.get("ports")))
    addresses = (
        _s(a) for e in _l(obj.get("endpoints")) for a in _l(_d(e).get("addresses"))
    )
    return [
        _name(obj),
        _s(obj.get("addressType")),
        _with_more(ports, "<unset>"),
        _with_more(addresses, "<unset>"),
        _created(obj, now),
    ]


# --- ingress ------------------------------------------------------------------------------------


def _ingress_hosts(rules: list[Any]) -> str:
    """Up to 3 rule hosts; `` + N more...`` counts every further rule; ``*`` if none."""
    hosts: list[str] = []
    for rule in rules:
        if len(hosts) == 3:
            return f"{','.join(hosts)} + {len(rules) - 3} more..."
        host = _s(_d(rule).get("host"))
        if host:
            hosts.append(host)
    return ",".join(hosts) or "*"


def _ingress_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    spec = _spec(obj)
    class_name = spec.get("ingressClassName")
    return [
        _name(obj),
        "<none>" if class_name is None else _s(class_name),
        _ingress_hosts(_l(spec.get("rules"))),
        ",".join(_lb_addresses(_status(obj))),
        "80, 443" if _l(spec.get("tls")) else "80",
        _created(obj, now),
    ]


def _ingressclass_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    spec = _spec(obj)
    params = "<none>"
    if spec.get("parameters") is not None:
        ref = _d(spec.get("parameters"))
        params = _s(ref.get("kind"))
        if ref.get("apiGroup") is not None:
            params += "." + _s(ref.get("apiGroup"))
        params += "/" + _s(ref.get("name"))
    return [_name(obj), _s(spec.get("controller")), params, _created(obj, now)]


# --- cluster and config objects --------------------------------------------------------------------


def _namespace_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    return [_name(obj), _s(_status(obj).get("phase")), _created(obj, now)]


def _node_status(node: Mapping[str, Any]) -> str:
    ready = next(
        (_d(c) for c in _l(_status(node).get("conditions")) if _d(c).get("type") == "Ready"),
        None,
    )
    if ready is None:
        parts = ["Unknown"]
    else:
        parts = ["Ready" if ready.get("status") == "True" else "NotReady"]
    if _spec(node).get("unschedulable") is True:
        parts.append("SchedulingDisabled")
    return ",".join(parts)


_ROLE_PREFIX = "node-role.kubernetes.io/"


def _node_roles(node: Mapping[str, Any]) -> str:
    roles: set[str] = set()
    for key, value in _d(_meta(node).get("labels")).items():
        if key.startswith(_ROLE_PREFIX) and key[len(_ROLE_PREFIX):]:
            roles.add(key[len(_ROLE_PREFIX):])
        elif key == "kubernetes.io/role" and _s(value):
            roles.add(_s(value))
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Mapping[str, Any], kind: str) -> str:
    for raw in _l(_status(node).get("addresses")):
        if _d(raw).get("type") == kind:
            return _s(_d(raw).get("address"))
    return "<none>"


def _node_row(node: Mapping[str, Any], now: datetime) -> list[Cell]:
    info = _d(_status(node).get("nodeInfo"))
    return [
        _name(node),
        _node_status(node),
        _node_roles(node),
        _created(node, now),
        _s(info.get("kubeletVersion")),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        _s(info.get("osImage")) or "<unknown>",
        _s(info.get("kernelVersion")) or "<unknown>",
        _s(info.get("containerRuntimeVersion")) or "<unknown>",
    ]


def _secret_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    kind = _s(obj.get("type")) or "Opaque"
    return [_name(obj), kind, len(_d(obj.get("data"))), _created(obj, now)]


def _configmap_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    count = len(_d(obj.get("data"))) + len(_d(obj.get("binaryData")))
    return [_name(obj), count, _created(obj, now)]


def _serviceaccount_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    return [_name(obj), len(_l(obj.get("secrets"))), _created(obj, now)]


def _lease_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    return [_name(obj), _s(_spec(obj).get("holderIdentity")), _created(obj, now)]


def _quantity(value: Any) -> str:
    """A quantity as stored (not re-canonicalised); absent reads ``0``."""
    if value is None:
        return "0"
    return value if isinstance(value, str) else str(value)


def _quota_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    status = _status(obj)
    hard, used = _d(status.get("hard")), _d(status.get("used"))
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        target = limits if resource.split(".")[0] == "limits" and "." in resource else requests
        target.append(f"{resource}: {_quantity(used.get(resource))}/{_quantity(hard[resource])}")
    return [_name(obj), ", ".join(requests), ", ".join(limits), _created(obj, now)]


# --- events -----------------------------------------------------------------------------------------


def _event_source(event: Mapping[str, Any]) -> str:
    """``component, host``; the reporting fields stand in for empty source fields."""
    source = _d(event.get("source"))
    component = _s(source.get("component")) or _s(event.get("reportingComponent"))
    host = _s(source.get("host")) or _s(event.get("reportingInstance"))
    return f"{component}, {host}" if host else component


def _event_times(event: Mapping[str, Any], now: datetime) -> tuple[str, str, int]:
    """``(last seen, first seen, count)`` as the event printer derives them."""
    first_at = parse_time(event.get("firstTimestamp"))
    first = _since(first_at or parse_time(event.get("eventTime")), now)
    last_at = parse_time(event.get("lastTimestamp"))
    last = first if last_at is None else _since(last_at, now)
    count = _i(event.get("count"))
    series = event.get("series")
    if series is not None:
        last = _since(parse_time(_d(series).get("lastObservedTime")), now)
        count = _i(_d(series).get("count"))
    elif count == 0:
        count = 1
    return last, first, count


def _event_row(event: Mapping[str, Any], now: datetime) -> list[Cell]:
    last, first, count = _event_times(event, now)
    involved = _d(event.get("involvedObject"))
    target = _s(involved.get("kind")).lower()
    if _s(involved.get("name")):
        target += "/" + _s(involved.get("name"))
    return [
        last,
        _s(event.get("type")),
        _s(event.get("reason")),
        target,
        _s(involved.get("fieldPath")),
        _event_source(event),
        _s(event.get("message")).strip(),
        first,
        count,
        _name(event),
    ]


# --- the default printer ----------------------------------------------------------------------------


def _default_row(obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    """Name and ``creationTimestamp`` in UTC RFC 3339 (zero time when unset)."""
    created = parse_time(_meta(obj).get("creationTimestamp"))
    if created is None:
        return [_name(obj), "0001-01-01T00:00:00Z"]
    return [_name(obj), created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]


_PRINTERS: dict[tuple[str, str], RowPrinter] = {
    ("", "pods"): _pod_row,
    ("apps", "deployments"): _deployment_row,
    ("apps", "replicasets"): _replicaset_row,
    ("", "services"): _service_row,
    ("", "endpoints"): _endpoints_row,
    ("discovery.k8s.io", "endpointslices"): _endpointslice_row,
    ("networking.k8s.io", "ingresses"): _ingress_row,
    ("networking.k8s.io", "ingressclasses"): _ingressclass_row,
    ("", "namespaces"): _namespace_row,
    ("", "nodes"): _node_row,
    ("", "secrets"): _secret_row,
    ("", "configmaps"): _configmap_row,
    ("", "serviceaccounts"): _serviceaccount_row,
    ("", "events"): _event_row,
    ("", "resourcequotas"): _quota_row,
    ("coordination.k8s.io", "leases"): _lease_row,
}


def row_cells(resource: str, group: str, obj: Mapping[str, Any], now: datetime) -> list[Cell]:
    """The cells of one object's row, one per entry of :func:`column_definitions`.

    Cells are strings or ints exactly as the upstream printer renders them; times are
    relative to ``now``.
    """
    printer = _PRINTERS.get((group, resource), _default_row)
    return printer(obj, now)


# --- tables --------------------------------------------------------------------------------------------


def _row_object(obj: Mapping[str, Any], include_object: str) -> Any:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": TABLE_API_VERSION,
        "metadata": dict(_meta(obj)),
    }


def table_row(
    resource: str, group: str, obj: Mapping[str, Any], now: datetime,
    include_object: str = "Metadata",
) -> JSON:
    """One ``TableRow``: ``cells``, ``object`` per ``include_object`` and any ``conditions``.

    ``include_object`` is ``None`` (object ``null``), ``Metadata`` (a
    ``meta.k8s.io/v1`` ``PartialObjectMetadata`` carrying the object's metadata unchanged)
    or ``Object`` (the object itself). Any other value raises a 400 :class:`APIError`.
    """
    _check_include_object(include_object)
    row: JSON = {
        "cells": row_cells(resource, group, obj, now),
        "object": _row_object(obj, include_object),
    }
    conditions = row_conditions(resource, group, obj)
    if conditions:
        row["conditions"] = conditions
    return row


def _check_include_object(include_object: str) -> None:
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise errors.bad_request(f'unrecognized includeObject value: "{include_object}"')


def to_table(
    resource: str,
    group: str,
    objs: Sequence[Mapping[str, Any]],
    now: datetime,
    include_object: str = "Metadata",
    resource_version: str = "",
    with_columns: bool = True,
    continue_token: str = "",
) -> JSON:
    """A complete ``meta.k8s.io/v1`` Table of ``objs`` (one row each, in order).

    ``metadata`` carries ``resourceVersion`` and ``continue`` when non-empty.
    ``columnDefinitions`` is empty when ``with_columns`` is false (watch events after the
    first). ``include_object`` is as for :func:`table_row`; an unknown value raises a 400
    :class:`APIError` before any row is built.
    """
    _check_include_object(include_object)
    metadata: JSON = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": metadata,
        "columnDefinitions": column_definitions(resource, group) if with_columns else [],
        "rows": [table_row(resource, group, o, now, include_object) for o in objs],
    }
