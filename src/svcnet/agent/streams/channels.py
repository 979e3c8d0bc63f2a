"""The Kubernetes WebSocket channel protocols (``channel.k8s.io`` .. ``v5.channel.k8s.io``).

Every message is one frame: byte 0 is the channel, the rest is the payload. Channels for exec:
0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize (``v3`` and later). ``v4`` and later send
a JSON ``Status`` on channel 3 when the command ends (``v1``..``v3`` send plain error text,
nothing on success). ``v5`` adds the close signal ``[255, ch]`` that half-closes channel
``ch`` (e.g. stdin EOF).
"""

from __future__ import annotations

import json
from typing import Any

V1 = "channel.k8s.io"
V2 = "v2.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"

#: Protocols this package serves, most preferred first.
SUPPORTED: tuple[str, ...] = (V5, V4, V3, V2, V1)

STDIN = 0
STDOUT = 1
STDERR = 2
ERROR = 3
RESIZE = 4
CLOSE = 255


class ProtocolError(ValueError):
    """A frame that does not follow the channel protocol."""


def choose_protocol(offered: list[str], supported: tuple[str, ...] = SUPPORTED) -> str | None:
    """Pick the protocol to answer with: the first of ``supported`` (server preference, newest
    first) that the client ``offered`` (entries may be comma-separated header values), or None
    when nothing matches."""
    names = {p.strip() for item in offered for p in item.split(",") if p.strip()}
    for proto in supported:
        if proto in names:
            return proto
    return None


def has_close_signal(protocol: str) -> bool:
    """True when the protocol knows the ``[255, ch]`` half-close message (v5 only)."""
    return protocol == V5


def has_status(protocol: str) -> bool:
    """True when channel 3 carries a JSON ``Status`` (v4 and later) rather than plain text."""
    return protocol in (V4, V5)


def encode(channel: int, payload: bytes = b"") -> bytes:
    """One frame: the channel byte followed by the payload."""
    if not 0 <= channel <= 255:
        raise ProtocolError(f"channel {channel} out of range")
    return bytes((channel,)) + payload


def decode(message: bytes | str) -> tuple[int, bytes]:
    """Split a received message into ``(channel, payload)``. Binary messages carry the channel
    in byte 0; text messages (the Python client sends ``str`` data as text) carry it as the
    first character, the rest being UTF-8 text. An empty message is a protocol error."""
    if isinstance(message, str):
        if not message:
            raise ProtocolError("empty text frame")
        channel = ord(message[0])
        if channel > 255:
            raise ProtocolError(f"channel {channel} out of range")
        return channel, message[1:].encode("utf-8")
    if not message:
        raise ProtocolError("empty binary frame")
    return message[0], bytes(message[1:])


def close_signal(channel: int) -> bytes:
    """The v5 message half-closing ``channel``: ``[255, channel]``."""
    return encode(CLOSE, bytes((channel,)))


def closed_channel(payload: bytes) -> int:
    """The channel named by a close-signal payload (the bytes after the 255 channel byte)."""
    if len(payload) != 1:
        raise ProtocolError(f"close signal payload must be 1 byte, got {len(payload)}")
    return payload[0]


def parse_resize(payload: bytes) -> tuple[int, int]:
    """``(width, height)`` from a resize payload ``{"Width": cols, "Height": rows}``."""
    try:
        obj = json.loads(payload)
        width, height = int(obj["Width"]), int(obj["Height"])
    except (ValueError, KeyError, TypeError) as e:
        raise ProtocolError(f"bad resize message: {payload!r}") from e
    if not (0 <= width <= 0xFFFF and 0 <= height <= 0xFFFF):
        raise ProtocolError(f"terminal size out of range: {width}x{height}")
    return width, height


def resize_message(width: int, height: int) -> bytes:
    """A resize frame (channel 4) as a client sends it."""
    return encode(RESIZE, json.dumps({"Width": width, "Height": height}).encode())


def status_success() -> dict[str, Any]:
    """The channel-3 ``Status`` for a command that exited 0."""
    return {"metadata": {}, "status": "Success"}


def status_exit_code(code: int) -> dict[str, Any]:
    """The channel-3 ``Status`` for a non-zero exit; the ``ExitCode`` cause comes first (the
    Python client reads ``causes[0].message`` as the exit code)."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def status_failure(message: str) -> dict[str, Any]:
    """The channel-3 ``Status`` for a failure other than an exit code (e.g. cannot start)."""
    return {"metadata": {}, "status": "Failure", "message": message,
            "reason": "InternalError", "code": 500}


def status_for_exit(code: int) -> dict[str, Any]:
    """Success for 0, NonZeroExitCode otherwise."""
    return status_success() if code == 0 else status_exit_code(code)


def error_payload(protocol: str, status: dict[str, Any]) -> bytes | None:
    """What to send on channel 3 for ``status`` under ``protocol``: the JSON Status for v4/v5;
    for older protocols the plain message text, or None on success (nothing is sent)."""
    if has_status(protocol):
        return json.dumps(status, separators=(",", ":")).encode()
    if status.get("status") == "Success":
        return None
    return str(status.get("message", "error")).encode()
