"""The registry of API resources svcnet serves.

One :class:`ResourceInfo` per resource: enough to route a URL, render discovery, name a
resource in error messages and choose per-kind behaviour (status split, generation,
scale). Everything else (validation, defaulting, printing) looks kinds up here by
``(group, resource)`` or by ``kind``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceInfo:
    group: str  # "" for the core group
    version: str
    resource: str  # plural, lower case: "deployments"
    kind: str  # "Deployment"
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    # Whether writes to the main resource leave .status alone (and /status writes only .status).
    has_status: bool = False
    # Whether metadata.generation is bumped on spec changes.
    tracks_generation: bool = False
    verbs: tuple[str, ...] = field(default=ALL_VERBS)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` or ``services``: the name apimachinery uses in messages."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def path_prefix(self) -> str:
        """URL prefix of the group version: ``/api/v1`` or ``/apis/apps/v1``."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


def _r(group: str, version: str, resource: str, kind: str, singular: str, namespaced: bool,
       **kw: object) -> ResourceInfo:
    return ResourceInfo(group, version, resource, kind, singular, namespaced, **kw)  # type: ignore[arg-type]


RESOURCES: tuple[ResourceInfo, ...] = (
    _r("", "v1", "namespaces", "Namespace", "namespace", False, short_names=("ns",),
       subresources=("status", "finalize"), has_status=True,
       verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _r("", "v1", "pods", "Pod", "pod", True, short_names=("po",), categories=("all",),
       subresources=("status", "binding", "log", "exec", "portforward", "attach", "eviction"),
       has_status=True),
    _r("", "v1", "services", "Service", "service", True, short_names=("svc",),
       categories=("all",), subresources=("status", "proxy"), has_status=True,
       verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")),
    _r("", "v1", "endpoints", "Endpoints", "endpoints", True, short_names=("ep",)),
    _r("", "v1", "secrets", "Secret", "secret", True),
    _r("", "v1", "configmaps", "ConfigMap", "configmap", True, short_names=("cm",)),
    _r("", "v1", "serviceaccounts", "ServiceAccount", "serviceaccount", True,
       short_names=("sa",)),
    _r("", "v1", "nodes", "Node", "node", False, short_names=("no",),
       subresources=("status",), has_status=True),
    _r("", "v1", "events", "Event", "event", True, short_names=("ev",)),
    _r("", "v1", "resourcequotas", "ResourceQuota", "resourcequota", True,
       short_names=("quota",), subresources=("status",), has_status=True),
    _r("", "v1", "limitranges", "LimitRange", "limitrange", True, short_names=("limits",)),
    _r("apps", "v1", "deployments", "Deployment", "deployment", True,
       short_names=("deploy",), categories=("all",), subresources=("status", "scale"),
       has_status=True, tracks_generation=True),
    _r("apps", "v1", "replicasets", "ReplicaSet", "replicaset", True, short_names=("rs",),
       categories=("all",), subresources=("status", "scale"), has_status=True,
       tracks_generation=True),
    _r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", "endpointslice", True),
    _r("networking.k8s.io", "v1", "ingresses", "Ingress", "ingress", True,
       short_names=("ing",), subresources=("status",), has_status=True,
       tracks_generation=True),
    _r("networking.k8s.io", "v1", "ingressclasses", "IngressClass", "ingressclass", False),
    _r("coordination.k8s.io", "v1", "leases", "Lease", "lease", True),
)

_BY_GR: dict[tuple[str, str], ResourceInfo] = {(r.group, r.resource): r for r in RESOURCES}
_BY_GVK: dict[tuple[str, str], ResourceInfo] = {(r.group_version, r.kind): r for r in RESOURCES}
_BY_KIND: dict[str, ResourceInfo] = {r.kind: r for r in RESOURCES}


def lookup(group: str, resource: str) -> ResourceInfo | None:
    """The resource at ``/api[s]/<group>/<version>/<resource>``, or None."""
    return _BY_GR.get((group, resource))


def require(group: str, resource: str) -> ResourceInfo:
    """Like :func:`lookup` for a resource the caller knows is served; KeyError otherwise."""
    r = _BY_GR.get((group, resource))
    if r is None:
        raise KeyError(f"{resource}.{group}" if group else resource)
    return r


def by_kind(kind: str, api_version: str | None = None) -> ResourceInfo | None:
    """The resource whose objects have this ``kind`` (and ``apiVersion``, when given)."""
    if api_version is not None:
        return _BY_GVK.get((api_version, kind))
    return _BY_KIND.get(kind)


def group_versions() -> list[tuple[str, str]]:
    """Every served ``(group, version)`` in discovery order, core group first."""
    seen: list[tuple[str, str]] = []
    for r in RESOURCES:
        gv = (r.group, r.version)
        if gv not in seen:
            seen.append(gv)
    return seen


def resources_in(group: str, version: str) -> list[ResourceInfo]:
    return [r for r in RESOURCES if r.group == group and r.version == version]
