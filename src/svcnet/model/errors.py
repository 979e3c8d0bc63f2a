"""The one error tree for Kubernetes API errors.

Every error the API reports is an :class:`APIError`; :meth:`APIError.status` renders it as
the ``kind: Status`` object Kubernetes clients expect (kubectl prints
``Error from server (<reason>): <message>`` from it, and builds the multi-line
``The X "n" is invalid:`` text from ``details.causes`` for 422).

Constructors mirror apimachinery's ``k8s.io/apimachinery/pkg/api/errors`` helpers so that
messages read exactly like a real API server's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldCause:
    """One field-level problem: ``reason`` is e.g. ``FieldValueInvalid``; ``field`` a path
    such as ``spec.ports[0].port``; ``message`` the full text kubectl prints after the path."""

    reason: str
    message: str
    field: str

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


# --- FieldCause builders (apimachinery field.Error types) -------------------------------


def _fmt_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def required(path: str, detail: str = "") -> FieldCause:
    return FieldCause("FieldValueRequired", "Required value" + (": " + detail if detail else ""), path)


def invalid(path: str, value: Any, detail: str) -> FieldCause:
    return FieldCause("FieldValueInvalid", f"Invalid value: {_fmt_value(value)}: {detail}", path)


def not_supported(path: str, value: Any, valid: list[str]) -> FieldCause:
    opts = ", ".join('"' + v + '"' for v in valid)
    return FieldCause(
        "FieldValueNotSupported", f"Unsupported value: {_fmt_value(value)}: supported values: {opts}", path
    )


def duplicate(path: str, value: Any) -> FieldCause:
    return FieldCause("FieldValueDuplicate", f"Duplicate value: {_fmt_value(value)}", path)


def forbidden(path: str, detail: str) -> FieldCause:
    return FieldCause("FieldValueForbidden", "Forbidden: " + detail, path)


def too_long(path: str, value: Any, limit: int) -> FieldCause:
    return FieldCause(
        "FieldValueTooLong", f"Too long: may not be more than {limit} bytes", path
    )


# --- APIError ---------------------------------------------------------------------------


@dataclass
class APIError(Exception):
    """An error carried to the client as a ``Status`` with HTTP status ``code``."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            st["details"] = self.details
        return st


def qualified(resource: str, group: str) -> str:
    """``deployments.apps`` / ``services``: how apimachinery names a resource in messages."""
    return f"{resource}.{group}" if group else resource


def _details(name: str, group: str, kind: str) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = kind
    return d


def not_found(resource: str, group: str, name: str) -> APIError:
    return APIError(404, "NotFound", f'{qualified(resource, group)} "{name}" not found',
                    _details(name, group, resource))


def already_exists(resource: str, group: str, name: str) -> APIError:
    return APIError(409, "AlreadyExists", f'{qualified(resource, group)} "{name}" already exists',
                    _details(name, group, resource))


def conflict(resource: str, group: str, name: str, detail: str) -> APIError:
    return APIError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {detail}',
        _details(name, group, resource),
    )


OPTIMISTIC_LOCK_MSG = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def stale(resource: str, group: str, name: str) -> APIError:
    return conflict(resource, group, name, OPTIMISTIC_LOCK_MSG)


def invalid_object(kind: str, group: str, name: str, causes: list[FieldCause]) -> APIError:
    """422 Invalid: ``<Kind>.<group> "name" is invalid: [cause, cause]`` like apimachinery."""
    parts = [f"{c.field}: {c.message}" for c in causes]
    agg = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    qk = f"{kind}.{group}" if group else kind
    details = _details(name, group, kind)
    details["causes"] = [c.to_dict() for c in causes]
    return APIError(422, "Invalid", f'{qk} "{name}" is invalid: {agg}', details)


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def method_not_allowed(message: str) -> APIError:
    return APIError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> APIError:
    return APIError(
        415, "UnsupportedMediaType",
        f'the body of the request was in an unknown format - accepted media types include: '
        f'application/json, application/yaml, application/vnd.kubernetes.protobuf '
        f'(got "{content_type}")',
    )


def not_acceptable(message: str) -> APIError:
    return APIError(406, "NotAcceptable", message)


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


def forbidden_error(message: str) -> APIError:
    return APIError(403, "Forbidden", message)


def expired(message: str) -> APIError:
    return APIError(410, "Expired", message)


def gone_too_old(requested: int, oldest: int) -> APIError:
    return expired(f"too old resource version: {requested} ({oldest})")


def internal(message: str) -> APIError:
    return APIError(500, "InternalError", f"Internal error occurred: {message}",
                    {"causes": [{"message": message}]})


def timeout(message: str) -> APIError:
    return APIError(504, "Timeout", message)
