"""Decoding of Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``).

kubectl 1.32 sends the body of every ``kubectl create <generator>`` request in protobuf: the
magic bytes ``k8s\\0`` followed by a ``runtime.Unknown`` envelope
``{1 typeMeta {1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding, 4 contentType}`` whose ``raw``
holds the typed object's own encoding (gogo-protobuf, proto2).
:func:`decode_k8s_protobuf` turns such a body into the dict the API server would have parsed
had the client sent JSON, so the rest of the server handles one representation only.

The module has three layers:

* a wire-format reader (:func:`_read_varint`, :func:`_fields`): varints (two's-complement
  10-byte negatives included), length-delimited values and fixed32/fixed64 values; unknown
  field numbers are skipped by wire type;
* declarative message schemas: one ``dict`` per message mapping field number to a
  :class:`Field` (JSON name, :class:`T` type, repeated, sub-schema, flags), with field
  numbers from ``k8s.io/api`` and ``k8s.io/apimachinery`` ``generated.proto`` (v0.32);
* the JSON rules of Go's ``encoding/json`` applied to the decoded values.

JSON equivalence contract (what Go's ``encoding/json`` would emit for the decoded object):

* gogo-protobuf emits every non-pointer field, zero values included. A scalar field whose Go
  field has ``omitempty`` and is not a pointer is dropped when it holds ``""``, ``0`` or
  ``false``. Fields marked ``keep`` (Go pointers such as ``DeploymentSpec.replicas``, and
  fields without ``omitempty`` such as ``ContainerPort.containerPort``) are kept whenever
  present on the wire, zero or not.
* Nested messages are kept whenever present, even empty (Go emits ``"strategy": {}``,
  ``"resources": {}``, ``"status": {}``); pointer messages are only on the wire when set.
* ``Time`` becomes an RFC 3339 string in UTC with seconds precision
  (``"2024-01-02T03:04:05Z"``; nanoseconds are dropped as the real server does). An empty
  ``Time`` message is the zero time, which Go renders as ``null``; this decoder **omits** it,
  so ``metadata.creationTimestamp`` is absent rather than ``null``.
* ``IntOrString`` becomes an ``int`` or a ``str``; ``Quantity`` its string form, unchanged (not
  canonicalised); ``bytes`` (Secret ``data``, ConfigMap ``binaryData``) standard base64;
  ``FieldsV1`` the JSON value it carries.
* Go embedded structs (``ProbeHandler`` in ``Probe``, ``VolumeSource`` in ``Volume``,
  ``IngressRuleValue`` in ``IngressRule``, ``LocalObjectReference`` in key selectors) are
  flattened into their parent, as in JSON.
* Whatever Go renders as ``null`` is absent: empty repeated fields and maps without
  ``omitempty`` (``PodSpec.containers``), nil pointers without ``omitempty``
  (TokenRequest ``spec.boundObjectRef``) and zero times.
* Fields this module does not model are skipped (after their wire format is checked).

Errors: a malformed body raises :class:`APIError` 400 ``BadRequest``; a well-formed envelope
for a kind without a schema raises 415 ``UnsupportedMediaType``. No other exception escapes
:func:`decode_k8s_protobuf`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import enum
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.model.errors import APIError, bad_request

PROTOBUF_MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# wire types
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
_U64 = (1 << 64) - 1


def is_protobuf(content_type: str) -> bool:
    """True when a ``Content-Type`` header value names the Kubernetes protobuf media type.

    The type is compared case-insensitively; parameters (``;charset=...``) are ignored."""
    return content_type.split(";", 1)[0].strip().lower() == PROTOBUF_MEDIA_TYPE


# --- wire-format reader ----------------------------------------------------------------


class _Malformed(Exception):
    """Internal: the bytes are not valid protobuf; turned into a 400 at the boundary."""


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Read a base-128 varint at ``pos``; return (unsigned 64-bit value, next position).

    At most 10 bytes; bits beyond 64 are discarded as Go's decoder does."""
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(buf):
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & _U64, pos
    raise _Malformed("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field number, wire type, value)`` for every field of one encoded message.

    Varint and fixed values are unsigned ints; length-delimited values are bytes. Groups
    (wire types 3/4) and unknown wire types are rejected."""
    pos = 0
    end = len(buf)
    while pos < end:
        tag, pos = _read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0 or number > 0x1FFFFFFF:
            raise _Malformed(f"illegal field number {number}")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
            yield number, wire, value
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if pos + size > end:
                raise _Malformed(f"truncated fixed{size * 8} field {number}")
            yield number, wire, int.from_bytes(buf[pos:pos + size], "little")
            pos += size
        elif wire == _LEN:
            length, pos = _read_varint(buf, pos)
            if length > end - pos:
                raise _Malformed(f"length {length} of field {number} exceeds the message")
            yield number, wire, bytes(buf[pos:pos + length])
            pos += length
        else:
            raise _Malformed(f"unsupported wire type {wire} for field {number}")


def _group(buf: bytes) -> dict[int, list[tuple[int, int | bytes]]]:
    """All fields of a message by number, in wire order: ``{number: [(wire type, value)]}``."""
    out: dict[int, list[tuple[int, int | bytes]]] = {}
    for number, wire, value in _fields(buf):
        out.setdefault(number, []).append((wire, value))
    return out


def _as_int64(value: int) -> int:
    """Two's-complement reading of a 64-bit varint (Go ``int64(v)``)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _as_int32(value: int) -> int:
    """Go ``int32(v)``: the low 32 bits, signed."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Malformed("string field is not valid UTF-8") from exc


# --- schema ----------------------------------------------------------------------------


class T(enum.Enum):
    """How a field's wire value becomes a JSON value."""

    STRING = "string"
    BOOL = "bool"
    INT32 = "int32"
    INT64 = "int64"
    BYTES = "bytes"  # -> base64 string
    MESSAGE = "message"  # -> dict, decoded with Field.schema
    TIME = "time"  # metav1.Time -> RFC 3339 string; empty -> omitted
    INT_OR_STRING = "intstr"  # intstr.IntOrString -> int | str
    QUANTITY = "quantity"  # resource.Quantity -> str
    FIELDS_V1 = "fieldsV1"  # metav1.FieldsV1 -> the JSON value it holds
    MAP_STRING = "map<string,string>"
    MAP_BYTES = "map<string,bytes>"  # values -> base64 strings
    MAP_QUANTITY = "map<string,Quantity>"


_SCALARS = {T.STRING, T.BOOL, T.INT32, T.INT64, T.BYTES}
_VARINT_TYPES = {T.BOOL, T.INT32, T.INT64}


@dataclass(frozen=True)
class Field:
    """One protobuf field of a message schema.

    ``keep``: emit zero values when present (Go pointer, or no ``omitempty``).
    ``inline``: a Go embedded struct; its keys merge into the parent object.
    """

    name: str
    type: T
    repeated: bool = False
    schema: Mapping[int, Field] | None = None
    keep: bool = False
    inline: bool = False


Schema = Mapping[int, "Field"]


def _s(name: str, *, keep: bool = False) -> Field:
    """A string field."""
    return Field(name, T.STRING, keep=keep)


def _ss(name: str) -> Field:
    """A repeated string field."""
    return Field(name, T.STRING, repeated=True)


def _i32(name: str, *, keep: bool = False) -> Field:
    """An int32 field."""
    return Field(name, T.INT32, keep=keep)


def _i64(name: str, *, keep: bool = False) -> Field:
    """An int64 field."""
    return Field(name, T.INT64, keep=keep)


def _b(name: str, *, keep: bool = False) -> Field:
    """A bool field."""
    return Field(name, T.BOOL, keep=keep)


def _m(name: str, schema: Schema) -> Field:
    """A nested message."""
    return Field(name, T.MESSAGE, schema=schema)


def _ms(name: str, schema: Schema) -> Field:
    """A repeated nested message."""
    return Field(name, T.MESSAGE, repeated=True, schema=schema)


def _inline(schema: Schema) -> Field:
    """A Go embedded struct flattened into its parent."""
    return Field("", T.MESSAGE, schema=schema, inline=True)


def _typed(name: str, kind: T) -> Field:
    """A field of special type ``kind``."""
    return Field(name, kind)


# --- apimachinery meta/v1 --------------------------------------------------------------

STR_MAP = T.MAP_STRING

OWNER_REFERENCE: Schema = {
    1: _s("kind", keep=True), 3: _s("name", keep=True), 4: _s("uid", keep=True),
    5: _s("apiVersion", keep=True), 6: _b("controller", keep=True),
    7: _b("blockOwnerDeletion", keep=True),
}
FIELDS_V1_ENTRY: Schema = {
    1: _s("manager"), 2: _s("operation"), 3: _s("apiVersion"), 4: _typed("time", T.TIME),
    6: _s("fieldsType"), 7: _typed("fieldsV1", T.FIELDS_V1), 8: _s("subresource"),
}
OBJECT_META: Schema = {
    1: _s("name"), 2: _s("generateName"), 3: _s("namespace"), 4: _s("selfLink"), 5: _s("uid"),
    6: _s("resourceVersion"), 7: _i64("generation"), 8: _typed("creationTimestamp", T.TIME),
    9: _typed("deletionTimestamp", T.TIME), 10: _i64("deletionGracePeriodSeconds", keep=True),
    11: _typed("labels", STR_MAP), 12: _typed("annotations", STR_MAP),
    13: _ms("ownerReferences", OWNER_REFERENCE), 14: _ss("finalizers"),
    17: _ms("managedFields", FIELDS_V1_ENTRY),
}
LABEL_SELECTOR_REQUIREMENT: Schema = {
    1: _s("key", keep=True), 2: _s("operator", keep=True), 3: _ss("values"),
}
LABEL_SELECTOR: Schema = {
    1: _typed("matchLabels", STR_MAP), 2: _ms("matchExpressions", LABEL_SELECTOR_REQUIREMENT),
}
META_CONDITION: Schema = {
    1: _s("type", keep=True), 2: _s("status", keep=True), 3: _i64("observedGeneration"),
    4: _typed("lastTransitionTime", T.TIME), 5: _s("reason", keep=True),
    6: _s("message", keep=True),
}

# --- core/v1: pods ---------------------------------------------------------------------

LOCAL_OBJECT_REFERENCE: Schema = {1: _s("name")}
OBJECT_REFERENCE: Schema = {
    1: _s("kind"), 2: _s("namespace"), 3: _s("name"), 4: _s("uid"), 5: _s("apiVersion"),
    6: _s("resourceVersion"), 7: _s("fieldPath"),
}
OBJECT_FIELD_SELECTOR: Schema = {1: _s("apiVersion"), 2: _s("fieldPath", keep=True)}
RESOURCE_FIELD_SELECTOR: Schema = {
    1: _s("containerName"), 2: _s("resource", keep=True), 3: _typed("divisor", T.QUANTITY),
}
KEY_SELECTOR: Schema = {  # ConfigMapKeySelector and SecretKeySelector
    1: _inline(LOCAL_OBJECT_REFERENCE), 2: _s("key", keep=True), 3: _b("optional", keep=True),
}
ENV_VAR_SOURCE: Schema = {
    1: _m("fieldRef", OBJECT_FIELD_SELECTOR), 2: _m("resourceFieldRef", RESOURCE_FIELD_SELECTOR),
    3: _m("configMapKeyRef", KEY_SELECTOR), 4: _m("secretKeyRef", KEY_SELECTOR),
}
ENV_VAR: Schema = {1: _s("name", keep=True), 2: _s("value"), 3: _m("valueFrom", ENV_VAR_SOURCE)}
ENV_SOURCE_REF: Schema = {  # ConfigMapEnvSource and SecretEnvSource
    1: _inline(LOCAL_OBJECT_REFERENCE), 2: _b("optional", keep=True),
}
ENV_FROM_SOURCE: Schema = {
    1: _s("prefix"), 2: _m("configMapRef", ENV_SOURCE_REF), 3: _m("secretRef", ENV_SOURCE_REF),
}
CONTAINER_PORT: Schema = {
    1: _s("name"), 2: _i32("hostPort"), 3: _i32("containerPort", keep=True), 4: _s("protocol"),
    5: _s("hostIP"),
}
RESOURCE_CLAIM: Schema = {1: _s("name", keep=True), 2: _s("request")}
RESOURCE_REQUIREMENTS: Schema = {
    1: _typed("limits", T.MAP_QUANTITY), 2: _typed("requests", T.MAP_QUANTITY),
    3: _ms("claims", RESOURCE_CLAIM),
}
VOLUME_MOUNT: Schema = {
    1: _s("name", keep=True), 2: _b("readOnly"), 3: _s("mountPath", keep=True), 4: _s("subPath"),
    5: _s("mountPropagation", keep=True), 6: _s("subPathExpr"),
    7: _s("recursiveReadOnly", keep=True),
}
VOLUME_DEVICE: Schema = {1: _s("name", keep=True), 2: _s("devicePath", keep=True)}
EXEC_ACTION: Schema = {1: _ss("command")}
HTTP_HEADER: Schema = {1: _s("name", keep=True), 2: _s("value", keep=True)}
HTTP_GET_ACTION: Schema = {
    1: _s("path"), 2: _typed("port", T.INT_OR_STRING), 3: _s("host"), 4: _s("scheme"),
    5: _ms("httpHeaders", HTTP_HEADER),
}
TCP_SOCKET_ACTION: Schema = {1: _typed("port", T.INT_OR_STRING), 2: _s("host")}
GRPC_ACTION: Schema = {1: _i32("port", keep=True), 2: _s("service", keep=True)}
SLEEP_ACTION: Schema = {1: _i64("seconds", keep=True)}
PROBE_HANDLER: Schema = {
    1: _m("exec", EXEC_ACTION), 2: _m("httpGet", HTTP_GET_ACTION),
    3: _m("tcpSocket", TCP_SOCKET_ACTION), 4: _m("grpc", GRPC_ACTION),
}
PROBE: Schema = {
    1: _inline(PROBE_HANDLER), 2: _i32("initialDelaySeconds"), 3: _i32("timeoutSeconds"),
    4: _i32("periodSeconds"), 5: _i32("successThreshold"), 6: _i32("failureThreshold"),
    7: _i64("terminationGracePeriodSeconds", keep=True),
}
LIFECYCLE_HANDLER: Schema = {
    1: _m("exec", EXEC_ACTION), 2: _m("httpGet", HTTP_GET_ACTION),
    3: _m("tcpSocket", TCP_SOCKET_ACTION), 4: _m("sleep", SLEEP_ACTION),
}
LIFECYCLE: Schema = {1: _m("postStart", LIFECYCLE_HANDLER), 2: _m("preStop", LIFECYCLE_HANDLER)}
CAPABILITIES: Schema = {1: _ss("add"), 2: _ss("drop")}
SE_LINUX_OPTIONS: Schema = {1: _s("user"), 2: _s("role"), 3: _s("type"), 4: _s("level")}
PROFILE: Schema = {  # SeccompProfile and AppArmorProfile
    1: _s("type", keep=True), 2: _s("localhostProfile", keep=True),
}
SECURITY_CONTEXT: Schema = {
    1: _m("capabilities", CAPABILITIES), 2: _b("privileged", keep=True),
    3: _m("seLinuxOptions", SE_LINUX_OPTIONS), 4: _i64("runAsUser", keep=True),
    5: _b("runAsNonRoot", keep=True), 6: _b("readOnlyRootFilesystem", keep=True),
    7: _b("allowPrivilegeEscalation", keep=True), 8: _i64("runAsGroup", keep=True),
    9: _s("procMount", keep=True), 11: _m("seccompProfile", PROFILE),
    12: _m("appArmorProfile", PROFILE),
}
SYSCTL: Schema = {1: _s("name", keep=True), 2: _s("value", keep=True)}
POD_SECURITY_CONTEXT: Schema = {
    1: _m("seLinuxOptions", SE_LINUX_OPTIONS), 2: _i64("runAsUser", keep=True),
    3: _b("runAsNonRoot", keep=True), 4: Field("supplementalGroups", T.INT64, repeated=True),
    5: _i64("fsGroup", keep=True), 6: _i64("runAsGroup", keep=True), 7: _ms("sysctls", SYSCTL),
    9: _s("fsGroupChangePolicy", keep=True), 10: _m("seccompProfile", PROFILE),
    11: _m("appArmorProfile", PROFILE), 12: _s("supplementalGroupsPolicy", keep=True),
    13: _s("seLinuxChangePolicy", keep=True),
}
CONTAINER_RESIZE_POLICY: Schema = {
    1: _s("resourceName", keep=True), 2: _s("restartPolicy", keep=True),
}
CONTAINER: Schema = {
    1: _s("name", keep=True), 2: _s("image"), 3: _ss("command"), 4: _ss("args"),
    5: _s("workingDir"), 6: _ms("ports", CONTAINER_PORT), 7: _ms("env", ENV_VAR),
    8: _m("resources", RESOURCE_REQUIREMENTS), 9: _ms("volumeMounts", VOLUME_MOUNT),
    10: _m("livenessProbe", PROBE), 11: _m("readinessProbe", PROBE),
    12: _m("lifecycle", LIFECYCLE), 13: _s("terminationMessagePath"),
    14: _s("imagePullPolicy"), 15: _m("securityContext", SECURITY_CONTEXT), 16: _b("stdin"),
    17: _b("stdinOnce"), 18: _b("tty"), 19: _ms("envFrom", ENV_FROM_SOURCE),
    20: _s("terminationMessagePolicy"), 21: _ms("volumeDevices", VOLUME_DEVICE),
    22: _m("startupProbe", PROBE), 23: _ms("resizePolicy", CONTAINER_RESIZE_POLICY),
    24: _s("restartPolicy", keep=True),
}
KEY_TO_PATH: Schema = {1: _s("key", keep=True), 2: _s("path", keep=True), 3: _i32("mode", keep=True)}
HOST_PATH_VOLUME: Schema = {1: _s("path", keep=True), 2: _s("type", keep=True)}
EMPTY_DIR_VOLUME: Schema = {1: _s("medium"), 2: _typed("sizeLimit", T.QUANTITY)}
SECRET_VOLUME: Schema = {
    1: _s("secretName"), 2: _ms("items", KEY_TO_PATH), 3: _i32("defaultMode", keep=True),
    4: _b("optional", keep=True),
}
CONFIG_MAP_VOLUME: Schema = {
    1: _inline(LOCAL_OBJECT_REFERENCE), 2: _ms("items", KEY_TO_PATH),
    3: _i32("defaultMode", keep=True), 4: _b("optional", keep=True),
}
PVC_VOLUME: Schema = {1: _s("claimName", keep=True), 2: _b("readOnly")}
DOWNWARD_API_FILE: Schema = {
    1: _s("path", keep=True), 2: _m("fieldRef", OBJECT_FIELD_SELECTOR),
    3: _m("resourceFieldRef", RESOURCE_FIELD_SELECTOR), 4: _i32("mode", keep=True),
}
DOWNWARD_API_VOLUME: Schema = {
    1: _ms("items", DOWNWARD_API_FILE), 2: _i32("defaultMode", keep=True),
}
PROJECTION_REF: Schema = {  # SecretProjection and ConfigMapProjection
    1: _inline(LOCAL_OBJECT_REFERENCE), 2: _ms("items", KEY_TO_PATH), 4: _b("optional", keep=True),
}
SERVICE_ACCOUNT_TOKEN_PROJECTION: Schema = {
    1: _s("audience"), 2: _i64("expirationSeconds", keep=True), 3: _s("path", keep=True),
}
VOLUME_PROJECTION: Schema = {
    1: _m("secret", PROJECTION_REF), 2: _m("downwardAPI", {1: _ms("items", DOWNWARD_API_FILE)}),
    3: _m("configMap", PROJECTION_REF),
    4: _m("serviceAccountToken", SERVICE_ACCOUNT_TOKEN_PROJECTION),
}
PROJECTED_VOLUME: Schema = {
    1: _ms("sources", VOLUME_PROJECTION), 2: _i32("defaultMode", keep=True),
}
VOLUME_SOURCE: Schema = {
    1: _m("hostPath", HOST_PATH_VOLUME), 2: _m("emptyDir", EMPTY_DIR_VOLUME),
    6: _m("secret", SECRET_VOLUME), 10: _m("persistentVolumeClaim", PVC_VOLUME),
    16: _m("downwardAPI", DOWNWARD_API_VOLUME), 19: _m("configMap", CONFIG_MAP_VOLUME),
    26: _m("projected", PROJECTED_VOLUME),
}
VOLUME: Schema = {1: _s("name", keep=True), 2: _inline(VOLUME_SOURCE)}
TOLERATION: Schema = {
    1: _s("key"), 2: _s("operator"), 3: _s("value"), 4: _s("effect"),
    5: _i64("tolerationSeconds", keep=True),
}
POD_DNS_CONFIG: Schema = {
    1: _ss("nameservers"), 2: _ss("searches"),
    3: _ms("options", {1: _s("name"), 2: _s("value", keep=True)}),
}
HOST_ALIAS: Schema = {1: _s("ip", keep=True), 2: _ss("hostnames")}
NAME_ONLY_KEEP: Schema = {1: _s("name", keep=True)}  # PodOS, PodSchedulingGate
POD_SPEC: Schema = {
    1: _ms("volumes", VOLUME), 2: _ms("containers", CONTAINER), 3: _s("restartPolicy"),
    4: _i64("terminationGracePeriodSeconds", keep=True),
    5: _i64("activeDeadlineSeconds", keep=True), 6: _s("dnsPolicy"),
    7: _typed("nodeSelector", STR_MAP), 8: _s("serviceAccountName"), 9: _s("serviceAccount"),
    10: _s("nodeName"), 11: _b("hostNetwork"), 12: _b("hostPID"), 13: _b("hostIPC"),
    14: _m("securityContext", POD_SECURITY_CONTEXT),
    15: _ms("imagePullSecrets", LOCAL_OBJECT_REFERENCE), 16: _s("hostname"),
    17: _s("subdomain"), 19: _s("schedulerName"), 20: _ms("initContainers", CONTAINER),
    21: _b("automountServiceAccountToken", keep=True), 22: _ms("tolerations", TOLERATION),
    23: _ms("hostAliases", HOST_ALIAS), 24: _s("priorityClassName"),
    25: _i32("priority", keep=True), 26: _m("dnsConfig", POD_DNS_CONFIG),
    27: _b("shareProcessNamespace", keep=True),
    28: _ms("readinessGates", {1: _s("conditionType", keep=True)}),
    29: _s("runtimeClassName", keep=True), 30: _b("enableServiceLinks", keep=True),
    31: _s("preemptionPolicy", keep=True), 32: _typed("overhead", T.MAP_QUANTITY),
    35: _b("setHostnameAsFQDN", keep=True), 36: _m("os", NAME_ONLY_KEEP),
    37: _b("hostUsers", keep=True), 38: _ms("schedulingGates", NAME_ONLY_KEEP),
    40: _m("resources", RESOURCE_REQUIREMENTS),
}
POD_TEMPLATE_SPEC: Schema = {1: _m("metadata", OBJECT_META), 2: _m("spec", POD_SPEC)}
POD_CONDITION: Schema = {
    1: _s("type", keep=True), 2: _s("status", keep=True), 3: _typed("lastProbeTime", T.TIME),
    4: _typed("lastTransitionTime", T.TIME), 5: _s("reason"), 6: _s("message"),
}
IP_ONLY: Schema = {1: _s("ip", keep=True)}  # PodIP, HostIP
POD_STATUS: Schema = {
    1: _s("phase"), 2: _ms("conditions", POD_CONDITION), 3: _s("message"), 4: _s("reason"),
    5: _s("hostIP"), 6: _s("podIP"), 7: _typed("startTime", T.TIME), 9: _s("qosClass"),
    11: _s("nominatedNodeName"), 12: _ms("podIPs", IP_ONLY), 16: _ms("hostIPs", IP_ONLY),
}
POD: Schema = {1: _m("metadata", OBJECT_META), 2: _m("spec", POD_SPEC), 3: _m("status", POD_STATUS)}

# --- core/v1: other kinds --------------------------------------------------------------

NAMESPACE_CONDITION: Schema = {
    1: _s("type", keep=True), 2: _s("status", keep=True),
    4: _typed("lastTransitionTime", T.TIME), 5: _s("reason"), 6: _s("message"),
}
NAMESPACE: Schema = {
    1: _m("metadata", OBJECT_META), 2: _m("spec", {1: _ss("finalizers")}),
    3: _m("status", {1: _s("phase"), 2: _ms("conditions", NAMESPACE_CONDITION)}),
}
SERVICE_PORT: Schema = {
    1: _s("name"), 2: _s("protocol"), 3: _i32("port", keep=True),
    4: _typed("targetPort", T.INT_OR_STRING), 5: _i32("nodePort"),
    6: _s("appProtocol", keep=True),
}
SESSION_AFFINITY_CONFIG: Schema = {
    1: _m("clientIP", {1: _i32("timeoutSeconds", keep=True)}),
}
SERVICE_SPEC: Schema = {
    1: _ms("ports", SERVICE_PORT), 2: _typed("selector", STR_MAP), 3: _s("clusterIP"),
    4: _s("type"), 5: _ss("externalIPs"), 7: _s("sessionAffinity"), 8: _s("loadBalancerIP"),
    9: _ss("loadBalancerSourceRanges"), 10: _s("externalName"),
    11: _s("externalTrafficPolicy"), 12: _i32("healthCheckNodePort"),
    13: _b("publishNotReadyAddresses"), 14: _m("sessionAffinityConfig", SESSION_AFFINITY_CONFIG),
    17: _s("ipFamilyPolicy", keep=True), 18: _ss("clusterIPs"), 19: _ss("ipFamilies"),
    20: _b("allocateLoadBalancerNodePorts", keep=True), 21: _s("loadBalancerClass", keep=True),
    22: _s("internalTrafficPolicy", keep=True), 23: _s("trafficDistribution", keep=True),
}
PORT_STATUS: Schema = {
    1: _i32("port", keep=True), 2: _s("protocol", keep=True), 3: _s("error", keep=True),
}
LOAD_BALANCER_INGRESS: Schema = {
    1: _s("ip"), 2: _s("hostname"), 3: _s("ipMode", keep=True), 4: _ms("ports", PORT_STATUS),
}
SERVICE: Schema = {
    1: _m("metadata", OBJECT_META), 2: _m("spec", SERVICE_SPEC),
    3: _m("status", {
        1: _m("loadBalancer", {1: _ms("ingress", LOAD_BALANCER_INGRESS)}),
        2: _ms("conditions", META_CONDITION),
    }),
}
SECRET: Schema = {
    1: _m("metadata", OBJECT_META), 2: _typed("data", T.MAP_BYTES), 3: _s("type"),
    4: _typed("stringData", STR_MAP), 5: _b("immutable", keep=True),
}
CONFIG_MAP: Schema = {
    1: _m("metadata", OBJECT_META), 2: _typed("data", STR_MAP),
    3: _typed("binaryData", T.MAP_BYTES), 4: _b("immutable", keep=True),
}
SERVICE_ACCOUNT: Schema = {
    1: _m("metadata", OBJECT_META), 2: _ms("secrets", OBJECT_REFERENCE),
    3: _ms("imagePullSecrets", LOCAL_OBJECT_REFERENCE),
    4: _b("automountServiceAccountToken", keep=True),
}
ENDPOINT_ADDRESS: Schema = {
    1: _s("ip", keep=True), 2: _m("targetRef", OBJECT_REFERENCE), 3: _s("hostname"),
    4: _s("nodeName", keep=True),
}
ENDPOINT_PORT: Schema = {
    1: _s("name"), 2: _i32("port", keep=True), 3: _s("protocol"), 4: _s("appProtocol", keep=True),
}
ENDPOINTS: Schema = {
    1: _m("metadata", OBJECT_META),
    2: _ms("subsets", {
        1: _ms("addresses", ENDPOINT_ADDRESS), 2: _ms("notReadyAddresses", ENDPOINT_ADDRESS),
        3: _ms("ports", ENDPOINT_PORT),
    }),
}

# --- apps/v1 ---------------------------------------------------------------------------

ROLLING_UPDATE_DEPLOYMENT: Schema = {
    1: _typed("maxUnavailable", T.INT_OR_STRING), 2: _typed("maxSurge", T.INT_OR_STRING),
}
DEPLOYMENT_CONDITION: Schema = {
    1: _s("type", keep=True), 2: _s("status", keep=True), 4: _s("reason"), 5: _s("message"),
    6: _typed("lastUpdateTime", T.TIME), 7: _typed("lastTransitionTime", T.TIME),
}
DEPLOYMENT_SPEC: Schema = {
    1: _i32("replicas", keep=True), 2: _m("selector", LABEL_SELECTOR),
    3: _m("template", POD_TEMPLATE_SPEC),
    4: _m("strategy", {1: _s("type"), 2: _m("rollingUpdate", ROLLING_UPDATE_DEPLOYMENT)}),
    5: _i32("minReadySeconds"), 6: _i32("revisionHistoryLimit", keep=True), 7: _b("paused"),
    9: _i32("progressDeadlineSeconds", keep=True),
}
DEPLOYMENT_STATUS: Schema = {
    1: _i64("observedGeneration"), 2: _i32("replicas"), 3: _i32("updatedReplicas"),
    4: _i32("availableReplicas"), 5: _i32("unavailableReplicas"),
    6: _ms("conditions", DEPLOYMENT_CONDITION), 7: _i32("readyReplicas"),
    8: _i32("collisionCount", keep=True),
}
DEPLOYMENT: Schema = {
    1: _m("metadata", OBJECT_META), 2: _m("spec", DEPLOYMENT_SPEC),
    3: _m("status", DEPLOYMENT_STATUS),
}
REPLICA_SET_CONDITION: Schema = {
    1: _s("type", keep=True), 2: _s("status", keep=True),
    3: _typed("lastTransitionTime", T.TIME), 4: _s("reason"), 5: _s("message"),
}
REPLICA_SET: Schema = {
    1: _m("metadata", OBJECT_META),
    2: _m("spec", {
        1: _i32("replicas", keep=True), 2: _m("selector", LABEL_SELECTOR),
        3: _m("template", POD_TEMPLATE_SPEC), 4: _i32("minReadySeconds"),
    }),
    3: _m("status", {
        1: _i32("replicas", keep=True), 2: _i32("fullyLabeledReplicas"),
        3: _i64("observedGeneration"), 4: _i32("readyReplicas"), 5: _i32("availableReplicas"),
        6: _ms("conditions", REPLICA_SET_CONDITION),
    }),
}

# --- networking.k8s.io/v1 --------------------------------------------------------------

INGRESS_BACKEND: Schema = {
    3: _m("resource", {1: _s("apiGroup", keep=True), 2: _s("kind", keep=True),
                      3: _s("name", keep=True)}),
    4: _m("service", {1: _s("name", keep=True),
                     2: _m("port", {1: _s("name"), 2: _i32("number")})}),
}
HTTP_INGRESS_PATH: Schema = {
    1: _s("path"), 2: _m("backend", INGRESS_BACKEND), 3: _s("pathType", keep=True),
}
INGRESS_RULE: Schema = {
    1: _s("host"),
    2: _inline({1: _m("http", {1: _ms("paths", HTTP_INGRESS_PATH)})}),
}
INGRESS_SPEC: Schema = {
    1: _m("defaultBackend", INGRESS_BACKEND),
    2: _ms("tls", {1: _ss("hosts"), 2: _s("secretName")}),
    3: _ms("rules", INGRESS_RULE), 4: _s("ingressClassName", keep=True),
}
INGRESS_LOAD_BALANCER_INGRESS: Schema = {
    1: _s("ip"), 2: _s("hostname"), 4: _ms("ports", PORT_STATUS),
}
INGRESS: Schema = {
    1: _m("metadata", OBJECT_META), 2: _m("spec", INGRESS_SPEC),
    3: _m("status", {1: _m("loadBalancer", {1: _ms("ingress", INGRESS_LOAD_BALANCER_INGRESS)})}),
}

# --- discovery.k8s.io/v1 ---------------------------------------------------------------

ENDPOINT: Schema = {
    1: _ss("addresses"),
    2: _m("conditions", {1: _b("ready", keep=True), 2: _b("serving", keep=True),
                        3: _b("terminating", keep=True)}),
    3: _s("hostname", keep=True), 4: _m("targetRef", OBJECT_REFERENCE),
    5: _typed("deprecatedTopology", STR_MAP), 6: _s("nodeName", keep=True),
    7: _s("zone", keep=True),
    8: _m("hints", {1: _ms("forZones", NAME_ONLY_KEEP), 2: _ms("forNodes", NAME_ONLY_KEEP)}),
}
ENDPOINT_SLICE: Schema = {
    1: _m("metadata", OBJECT_META), 2: _ms("endpoints", ENDPOINT),
    3: _ms("ports", {1: _s("name", keep=True), 2: _s("protocol", keep=True),
                    3: _i32("port", keep=True), 4: _s("appProtocol", keep=True)}),
    4: _s("addressType", keep=True),
}

# --- authentication.k8s.io/v1 (kubectl create token) -----------------------------------

TOKEN_REQUEST: Schema = {
    1: _m("metadata", OBJECT_META),
    2: _m("spec", {
        1: _ss("audiences"),
        3: _m("boundObjectRef", {1: _s("kind"), 2: _s("apiVersion"), 3: _s("name"),
                                 4: _s("uid")}),
        4: _i64("expirationSeconds", keep=True),
    }),
    3: _m("status", {1: _s("token", keep=True), 2: _typed("expirationTimestamp", T.TIME)}),
}

#: Top-level schemas by (apiVersion, kind).
KINDS: Mapping[tuple[str, str], Schema] = {
    ("v1", "Namespace"): NAMESPACE,
    ("v1", "Pod"): POD,
    ("v1", "Service"): SERVICE,
    ("v1", "Secret"): SECRET,
    ("v1", "ConfigMap"): CONFIG_MAP,
    ("v1", "ServiceAccount"): SERVICE_ACCOUNT,
    ("v1", "Endpoints"): ENDPOINTS,
    ("apps/v1", "Deployment"): DEPLOYMENT,
    ("apps/v1", "ReplicaSet"): REPLICA_SET,
    ("networking.k8s.io/v1", "Ingress"): INGRESS,
    ("discovery.k8s.io/v1", "EndpointSlice"): ENDPOINT_SLICE,
    ("authentication.k8s.io/v1", "TokenRequest"): TOKEN_REQUEST,
}

# --- values ----------------------------------------------------------------------------

_OMIT: Any = object()  # sentinel: the field contributes nothing to the JSON object
_TIME_MIN = int(_dt.datetime(1, 1, 1, tzinfo=_dt.UTC).timestamp())
_TIME_MAX = int(_dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=_dt.UTC).timestamp())


def _expect(field: Field, wire: int, want: int) -> None:
    if wire != want:
        raise _Malformed(f"field {field.name or '<inline>'}: wire type {wire}, expected {want}")


def _scalar(field: Field, wire: int, value: int | bytes) -> Any:
    """One wire value of a scalar field as its JSON value."""
    if field.type in _VARINT_TYPES:
        _expect(field, wire, _VARINT)
        assert isinstance(value, int)
        if field.type is T.BOOL:
            return value != 0
        return _as_int32(value) if field.type is T.INT32 else _as_int64(value)
    _expect(field, wire, _LEN)
    assert isinstance(value, bytes)
    if field.type is T.STRING:
        return _utf8(value)
    return base64.b64encode(value).decode("ascii")


def _is_zero(value: Any) -> bool:
    return value == "" or value is False or (type(value) is int and value == 0)


def _time(raw: bytes) -> Any:
    """metav1.Time: empty message = zero time (omitted); else seconds as RFC 3339 UTC."""
    if not raw:
        return _OMIT
    seconds = 0
    for number, wire, value in _fields(raw):
        if number in (1, 2) and wire != _VARINT:
            raise _Malformed("Time: wrong wire type")
        if number == 1:
            assert isinstance(value, int)
            seconds = _as_int64(value)
    if not _TIME_MIN <= seconds <= _TIME_MAX:
        raise _Malformed(f"Time.seconds {seconds} out of range")
    moment = _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(raw: bytes) -> int | str:
    """intstr.IntOrString {1 type (0 int, 1 string), 2 intVal, 3 strVal}."""
    kind, int_val, str_val = 0, 0, ""
    for number, wire, value in _fields(raw):
        if number in (1, 2):
            if wire != _VARINT:
                raise _Malformed("IntOrString: wrong wire type")
            assert isinstance(value, int)
            if number == 1:
                kind = _as_int64(value)
            else:
                int_val = _as_int32(value)
        elif number == 3:
            if wire != _LEN:
                raise _Malformed("IntOrString.strVal: wrong wire type")
            assert isinstance(value, bytes)
            str_val = _utf8(value)
    if kind == 0:
        return int_val
    if kind == 1:
        return str_val
    raise _Malformed(f"impossible IntOrString type {kind}")


def _quantity(raw: bytes) -> str:
    """resource.Quantity {1 string}; an absent string is the zero quantity "0"."""
    text: str | None = None
    for number, wire, value in _fields(raw):
        if number == 1:
            if wire != _LEN:
                raise _Malformed("Quantity: wrong wire type")
            assert isinstance(value, bytes)
            text = _utf8(value)
    if text is None:
        return "0"
    if not text:
        raise _Malformed("Quantity: empty string")
    return text


def _fields_v1(raw: bytes) -> Any:
    """metav1.FieldsV1 {1 Raw}: JSON renders the raw JSON it carries."""
    data = b""
    for number, wire, value in _fields(raw):
        if number == 1 and wire == _LEN:
            assert isinstance(value, bytes)
            data = value
    if not data:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _Malformed("FieldsV1 does not hold JSON") from exc


def _map(field: Field, entries: list[tuple[int, int | bytes]]) -> dict[str, Any]:
    """A protobuf map: repeated entries {1 key, 2 value}; a later key wins."""
    out: dict[str, Any] = {}
    for wire, entry in entries:
        _expect(field, wire, _LEN)
        assert isinstance(entry, bytes)
        key, value = "", b""
        for number, ewire, evalue in _fields(entry):
            if number in (1, 2):
                _expect(field, ewire, _LEN)
                assert isinstance(evalue, bytes)
                if number == 1:
                    key = _utf8(evalue)
                else:
                    value = evalue
        out[key] = _map_value(field.type, value)
    return out


def _map_value(kind: T, value: bytes) -> str:
    if kind is T.MAP_STRING:
        return _utf8(value)
    if kind is T.MAP_BYTES:
        return base64.b64encode(value).decode("ascii")
    return _quantity(value)


_SPECIAL_DECODERS = {
    T.TIME: _time,
    T.INT_OR_STRING: _int_or_string,
    T.QUANTITY: _quantity,
    T.FIELDS_V1: _fields_v1,
}


def _length_delimited(field: Field, values: list[tuple[int, int | bytes]]) -> list[bytes]:
    chunks: list[bytes] = []
    for wire, value in values:
        _expect(field, wire, _LEN)
        assert isinstance(value, bytes)
        chunks.append(value)
    return chunks


def _field_value(field: Field, values: list[tuple[int, int | bytes]]) -> Any:
    """The JSON value of ``field`` given all its wire occurrences, or ``_OMIT``.

    Repeated fields decode each occurrence; singular scalars take the last occurrence;
    singular messages merge all occurrences (decoding their concatenation, as protobuf
    merge semantics require)."""
    if field.type in (T.MAP_STRING, T.MAP_BYTES, T.MAP_QUANTITY):
        return _map(field, values)
    if field.type in _SCALARS:
        items = [_scalar(field, wire, value) for wire, value in values]
        if field.repeated:
            return items
        last = items[-1]
        return _OMIT if _is_zero(last) and not field.keep else last
    chunks = _length_delimited(field, values)
    decode = _decoder(field)
    if field.repeated:
        return [v for v in map(decode, chunks) if v is not _OMIT]
    return decode(b"".join(chunks))


def _decoder(field: Field) -> Callable[[bytes], Any]:
    """The function turning one encoded value of a message-typed field into JSON."""
    special = _SPECIAL_DECODERS.get(field.type)
    if special is not None:
        return special
    schema = field.schema
    assert schema is not None, f"message field {field.name} has no schema"
    return lambda raw: _message(raw, schema)


def _message(raw: bytes, schema: Schema) -> dict[str, Any]:
    """Decode one message with ``schema`` into its JSON object."""
    grouped = _group(raw)
    out: dict[str, Any] = {}
    for number, field in schema.items():
        values = grouped.get(number)
        if not values:
            continue
        value = _field_value(field, values)
        if value is _OMIT:
            continue
        if field.inline:
            out.update(value)
        else:
            out[field.name] = value
    return out


# --- envelope --------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """A decoded ``runtime.Unknown``: the type and the still-encoded object."""

    api_version: str
    kind: str
    raw: bytes
    content_encoding: str
    content_type: str


def _envelope_field(value: int | bytes, wire: int, what: str) -> bytes:
    if wire != _LEN:
        raise _Malformed(f"runtime.Unknown.{what}: wrong wire type {wire}")
    assert isinstance(value, bytes)
    return value


def read_envelope(body: bytes) -> Envelope:
    """Check the ``k8s\\0`` magic and decode the ``runtime.Unknown`` envelope.

    Raises :class:`APIError` 400 for an empty body, a wrong magic, malformed bytes, or a
    missing kind or apiVersion."""
    if not body:
        raise bad_request("empty protobuf body")
    if not body.startswith(MAGIC):
        raise bad_request("provided data does not appear to be a protobuf message, "
                          "expected prefix [107 56 115 0]")
    if len(body) == len(MAGIC):
        raise bad_request("empty protobuf body after the k8s prefix")
    try:
        return _envelope(bytes(body[len(MAGIC):]))
    except _Malformed as exc:
        raise bad_request(f"malformed protobuf body: {exc}") from None


def _envelope(data: bytes) -> Envelope:
    """Decode ``runtime.Unknown``; repeated typeMeta occurrences merge, scalars: last wins."""
    type_meta: list[bytes] = []
    raw, encoding, ctype = b"", "", ""
    for number, wire, value in _fields(data):
        if number == 1:
            type_meta.append(_envelope_field(value, wire, "typeMeta"))
        elif number == 2:
            raw = _envelope_field(value, wire, "raw")
        elif number == 3:
            encoding = _utf8(_envelope_field(value, wire, "contentEncoding"))
        elif number == 4:
            ctype = _utf8(_envelope_field(value, wire, "contentType"))
    api_version, kind = "", ""
    for number, wire, value in _fields(b"".join(type_meta)):
        if number == 1:
            api_version = _utf8(_envelope_field(value, wire, "typeMeta.apiVersion"))
        elif number == 2:
            kind = _utf8(_envelope_field(value, wire, "typeMeta.kind"))
    return Envelope(api_version, kind, raw, encoding, ctype)


def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    """Decode a Kubernetes protobuf request body into its JSON-equivalent dict.

    The result carries ``apiVersion`` and ``kind`` from the envelope's ``typeMeta`` plus the
    object's fields under the JSON rules in the module docstring (notably: no
    ``creationTimestamp: null``). ``contentEncoding``/``contentType`` of the envelope are
    ignored, as the Kubernetes API server ignores them.

    Raises :class:`APIError` 400 ``BadRequest`` for anything malformed (magic, varints,
    lengths, wire types, UTF-8, times, missing kind/apiVersion) and 415
    ``UnsupportedMediaType`` for a kind this module has no schema for. Never raises any
    other exception type.
    """
    env = read_envelope(bytes(body))
    if not env.kind:
        raise bad_request("Object 'Kind' is missing in protobuf body")
    if not env.api_version:
        raise bad_request("Object 'apiVersion' is missing in protobuf body")
    schema = KINDS.get((env.api_version, env.kind))
    if schema is None:
        raise APIError(
            415, "UnsupportedMediaType",
            f'protobuf bodies are not supported for kind "{env.kind}" in version '
            f'"{env.api_version}"; send the object as application/json',
        )
    try:
        obj = _message(env.raw, schema)
    except _Malformed as exc:
        raise bad_request(f"malformed protobuf {env.kind}: {exc}") from None
    return {"apiVersion": env.api_version, "kind": env.kind, **obj}


def supported_kinds() -> frozenset[tuple[str, str]]:
    """The (apiVersion, kind) pairs :func:`decode_k8s_protobuf` can decode."""
    return frozenset(KINDS)
