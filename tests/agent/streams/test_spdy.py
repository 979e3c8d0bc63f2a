"""SPDY/3.1 framing: builders, incremental parsing and header compression."""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable

import pytest

from svcnet.agent.streams import spdy
from svcnet.agent.streams.spdy import FrameEncoder, FrameParser

PF_HEADERS = {"streamtype": "data", "port": "80", "requestid": "0"}

# (name, build frame bytes with an encoder, expected parsed frame)
FRAME_CASES: list[tuple[str, Callable[[FrameEncoder], bytes], spdy.Frame]] = [
    ("syn_stream", lambda e: e.syn_stream(3, PF_HEADERS),
     spdy.SynStream(3, PF_HEADERS)),
    ("syn_stream fin priority", lambda e: e.syn_stream(1, {"a": "b"}, fin=True, priority=7),
     spdy.SynStream(1, {"a": "b"}, spdy.FLAG_FIN, 0, 7)),
    ("syn_reply empty", lambda e: e.syn_reply(1), spdy.SynReply(1, {})),
    ("syn_reply fin", lambda e: e.syn_reply(5, {"x": "y"}, fin=True),
     spdy.SynReply(5, {"x": "y"}, spdy.FLAG_FIN)),
    ("headers", lambda e: e.headers(7, {"k": "v\0w"}), spdy.HeadersFrame(7, {"k": "v\0w"})),
    ("data", lambda e: e.data(3, b"payload"), spdy.Data(3, b"payload")),
    ("data fin empty", lambda e: e.data(1, b"", fin=True), spdy.Data(1, b"", spdy.FLAG_FIN)),
    ("rst cancel", lambda e: e.rst_stream(3, spdy.CANCEL), spdy.RstStream(3, 5)),
    ("ping", lambda e: e.ping(0xFFFFFFFF), spdy.Ping(0xFFFFFFFF)),
    ("goaway", lambda e: e.goaway(9, 1), spdy.GoAway(9, 1)),
    ("window update", lambda e: e.window_update(3, 1000), spdy.WindowUpdate(3, 1000)),
    ("settings", lambda e: e.settings({7: 65536}),
     spdy.Settings(struct.pack("!III", 1, 7, 65536))),
]


@pytest.mark.parametrize(("build", "want"), [c[1:] for c in FRAME_CASES],
                         ids=[c[0] for c in FRAME_CASES])
def test_frame_round_trip(build: Callable[[FrameEncoder], bytes], want: spdy.Frame) -> None:
    assert FrameParser().feed(build(FrameEncoder())) == [want]


def test_control_header_layout() -> None:
    frame = FrameEncoder.ping(1)
    assert frame[:4] == b"\x80\x03\x00\x06"  # control bit, version 3, type PING
    assert frame[4:8] == b"\x00\x00\x00\x04"  # flags 0, length 4
    data = FrameEncoder.data(3, b"ab", fin=True)
    assert data[:8] == b"\x00\x00\x00\x03\x01\x00\x00\x02"


def test_unknown_control_type_is_kept() -> None:
    raw = b"\x80\x03\x00\x0a\x00\x00\x00\x02hi"
    assert FrameParser().feed(raw) == [spdy.UnknownControl(10, 0, b"hi")]


def test_wrong_version_rejected() -> None:
    with pytest.raises(spdy.SpdyError):
        FrameParser().feed(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")


def _stream() -> tuple[bytes, list[spdy.Frame]]:
    """A client-like sequence: several header blocks sharing one compression context."""
    e = FrameEncoder()
    parts = [
        (e.syn_stream(1, {"streamtype": "error", "port": "80", "requestid": "0"}),
         spdy.SynStream(1, {"streamtype": "error", "port": "80", "requestid": "0"})),
        (e.data(1, b"", fin=True), spdy.Data(1, b"", spdy.FLAG_FIN)),
        (e.syn_stream(3, PF_HEADERS), spdy.SynStream(3, PF_HEADERS)),
        (e.data(3, b"GET / HTTP/1.1\r\n\r\n"), spdy.Data(3, b"GET / HTTP/1.1\r\n\r\n")),
        (e.ping(1), spdy.Ping(1)),
        (e.syn_stream(5, {"streamtype": "error", "port": "80", "requestid": "1"}),
         spdy.SynStream(5, {"streamtype": "error", "port": "80", "requestid": "1"})),
        (e.rst_stream(3, spdy.CANCEL), spdy.RstStream(3, spdy.CANCEL)),
    ]
    return b"".join(p[0] for p in parts), [p[1] for p in parts]


CHUNKINGS: list[tuple[str, Callable[[int], list[int]]]] = [
    ("whole", lambda n: [n]),
    ("byte by byte", lambda n: [1] * n),
    ("sevens", lambda n: [7] * (n // 7 + 1)),
    ("random seed 1", lambda n: [random.Random(1).randint(1, 40) for _ in range(n)]),
    ("random seed 2", lambda n: [random.Random(2).randint(1, 9) for _ in range(n)]),
]


@pytest.mark.parametrize("sizes", [c[1] for c in CHUNKINGS], ids=[c[0] for c in CHUNKINGS])
def test_incremental_parse_any_chunking(sizes: Callable[[int], list[int]]) -> None:
    raw, want = _stream()
    parser, got, pos = FrameParser(), [], 0
    for size in sizes(len(raw)):
        got += parser.feed(raw[pos:pos + size])
        pos += size
        if pos >= len(raw):
            break
    assert got == want


def test_header_blocks_share_one_context() -> None:
    e = FrameEncoder()
    first, second = e.syn_stream(1, PF_HEADERS), e.syn_stream(3, PF_HEADERS)
    assert len(second) < len(first)  # the second block refers back into the first
    with pytest.raises(spdy.SpdyError):
        FrameParser().feed(second)  # undecodable without the first block's context


def test_dictionary_is_the_spdy3_one() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"utf-,*,enq=0.")
    comp = spdy.HeaderCompressor().compress(PF_HEADERS)
    assert comp[:2] in (b"\x78\xbb", b"\x78\xf9", b"\x78\x3f", b"\x78\x7d")  # FDICT set
    assert struct.unpack("!I", comp[2:6])[0] == zlib.adler32(spdy.DICTIONARY)
    d = zlib.decompressobj(zdict=spdy.DICTIONARY)
    assert spdy.unpack_header_block(d.decompress(comp)) == PF_HEADERS


HEADER_BLOCKS: list[tuple[str, dict[str, str]]] = [
    ("empty", {}),
    ("port-forward", PF_HEADERS),
    ("exec", {"streamtype": "stdin"}),
    ("upper-case name lowered", {"StreamType": "error"}),
    ("unicode value", {"x": "\u00e9"}),
]


@pytest.mark.parametrize("headers", [c[1] for c in HEADER_BLOCKS],
                         ids=[c[0] for c in HEADER_BLOCKS])
def test_header_block_round_trip(headers: dict[str, str]) -> None:
    c, d = spdy.HeaderCompressor(), spdy.HeaderDecompressor()
    want = {k.lower(): v for k, v in headers.items()}
    for _ in range(3):
        assert d.decompress(c.compress(headers)) == want


def test_truncated_header_block_rejected() -> None:
    with pytest.raises(spdy.SpdyError):
        spdy.unpack_header_block(spdy.pack_header_block(PF_HEADERS)[:-2])


DATA_SPLITS = [("empty fin", 0, True, 1), ("one", 10, False, 1), ("exact", 64, True, 1),
               ("split", 150, True, 3)]


@pytest.mark.parametrize(("size", "fin", "count"), [c[1:] for c in DATA_SPLITS],
                         ids=[c[0] for c in DATA_SPLITS])
def test_data_frames_split(size: int, fin: bool, count: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    frames = FrameParser().feed(b"".join(spdy.data_frames(3, payload, fin, max_size=64)))
    assert len(frames) == count
    assert b"".join(f.data for f in frames if isinstance(f, spdy.Data)) == payload
    assert [isinstance(f, spdy.Data) and f.fin for f in frames] == [False] * (count - 1) + [fin]
