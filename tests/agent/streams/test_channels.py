"""The channel protocol framing and status forms."""

from __future__ import annotations

import json
from typing import Any

import pytest

from svcnet.agent.streams import channels
from svcnet.agent.streams.channels import V1, V3, V4, V5, ProtocolError

DECODE_CASES: list[tuple[str, bytes | str, tuple[int, bytes]]] = [
    ("binary stdin", b"\x00hello", (0, b"hello")),
    ("binary empty payload", b"\x01", (1, b"")),
    ("text frame from the python client", "\x00hi\n", (0, b"hi\n")),
    ("text frame with non-ascii", "\x00h\u00e9", (0, "h\u00e9".encode())),
    ("resize as text", '\x04{"Width":80,"Height":24}', (4, b'{"Width":80,"Height":24}')),
    ("close signal", b"\xff\x00", (255, b"\x00")),
]


@pytest.mark.parametrize(("message", "want"), [c[1:] for c in DECODE_CASES],
                         ids=[c[0] for c in DECODE_CASES])
def test_decode(message: bytes | str, want: tuple[int, bytes]) -> None:
    assert channels.decode(message) == want


@pytest.mark.parametrize("message", [b"", "", "\u0100x"], ids=["empty binary", "empty text",
                                                             "channel above 255"])
def test_decode_rejects(message: bytes | str) -> None:
    with pytest.raises(ProtocolError):
        channels.decode(message)


ROUND_TRIPS = [("stdout", 1, b"out"), ("empty", 2, b""), ("binary", 0, bytes(range(256)))]


@pytest.mark.parametrize(("channel", "payload"), [c[1:] for c in ROUND_TRIPS],
                         ids=[c[0] for c in ROUND_TRIPS])
def test_encode_round_trip(channel: int, payload: bytes) -> None:
    frame = channels.encode(channel, payload)
    assert frame[0] == channel
    assert channels.decode(frame) == (channel, payload)


def test_close_signal_is_255_then_channel() -> None:
    assert channels.close_signal(0) == b"\xff\x00"
    assert channels.closed_channel(channels.decode(channels.close_signal(0))[1]) == 0
    with pytest.raises(ProtocolError):
        channels.closed_channel(b"")


RESIZE_CASES: list[tuple[str, bytes, tuple[int, int] | None]] = [
    ("kubectl form", b'{"Width":120,"Height":40}', (120, 40)),
    ("extra keys ignored", b'{"Width":1,"Height":2,"X":3}', (1, 2)),
    ("lower-case keys rejected", b'{"width":1,"height":2}', None),
    ("not json", b"80x24", None),
    ("negative", b'{"Width":-1,"Height":2}', None),
    ("too large", b'{"Width":70000,"Height":2}', None),
]


@pytest.mark.parametrize(("payload", "want"), [c[1:] for c in RESIZE_CASES],
                         ids=[c[0] for c in RESIZE_CASES])
def test_parse_resize(payload: bytes, want: tuple[int, int] | None) -> None:
    if want is None:
        with pytest.raises(ProtocolError):
            channels.parse_resize(payload)
    else:
        assert channels.parse_resize(payload) == want


def test_resize_message_round_trip() -> None:
    ch, payload = channels.decode(channels.resize_message(100, 30))
    assert ch == channels.RESIZE and channels.parse_resize(payload) == (100, 30)


STATUS_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("success", channels.status_for_exit(0), {"metadata": {}, "status": "Success"}),
    ("exit code cause first", channels.status_for_exit(3), {
        "metadata": {}, "status": "Failure",
        "message": "command terminated with non-zero exit code: exit status 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}),
    ("other failure", channels.status_failure("boom"), {
        "metadata": {}, "status": "Failure", "message": "boom", "reason": "InternalError",
        "code": 500}),
]


@pytest.mark.parametrize(("got", "want"), [c[1:] for c in STATUS_CASES],
                         ids=[c[0] for c in STATUS_CASES])
def test_status_forms(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got == want


ERROR_PAYLOAD_CASES: list[tuple[str, str, dict[str, Any], bytes | None]] = [
    ("v5 success is JSON", V5, channels.status_success(), b'{"metadata":{},"status":"Success"}'),
    ("v4 failure is JSON", V4, channels.status_exit_code(2), None),
    ("v3 success sends nothing", V3, channels.status_success(), None),
    ("v1 failure is the text", V1, channels.status_failure("no"), b"no"),
]


@pytest.mark.parametrize(("protocol", "status", "want"), [c[1:] for c in ERROR_PAYLOAD_CASES],
                         ids=[c[0] for c in ERROR_PAYLOAD_CASES])
def test_error_payload(protocol: str, status: dict[str, Any], want: bytes | None) -> None:
    got = channels.error_payload(protocol, status)
    if protocol in (V4, V5):
        assert got is not None and json.loads(got) == status
        if want is not None:
            assert got == want
    else:
        assert got == want


CHOOSE_CASES: list[tuple[str, list[str], str | None]] = [
    ("kubectl offers v5 only", ["v5.channel.k8s.io"], V5),
    ("python client comma list", ["v5.channel.k8s.io,v4.channel.k8s.io"], V5),
    ("v4 first still picks v5", ["v4.channel.k8s.io", "v5.channel.k8s.io"], V5),
    ("old python client", ["v4.channel.k8s.io"], V4),
    ("legacy", ["channel.k8s.io"], V1),
    ("base64 unsupported", ["base64.channel.k8s.io"], None),
    ("nothing offered", [], None),
]


@pytest.mark.parametrize(("offered", "want"), [c[1:] for c in CHOOSE_CASES],
                         ids=[c[0] for c in CHOOSE_CASES])
def test_choose_protocol(offered: list[str], want: str | None) -> None:
    assert channels.choose_protocol(offered) == want
