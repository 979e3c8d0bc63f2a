"""SPDY/3.1 framing, as far as Kubernetes port-forward (and exec fallback) needs it.

- :class:`FrameParser` is incremental: ``feed(bytes)`` returns the frames completed so far,
  whatever the chunk boundaries; it owns the header-block decompressor of its direction.
- :class:`FrameEncoder` builds frames; it owns the header-block compressor of its direction.
- Header blocks: a 32-bit pair count, then per pair 32-bit length + name and 32-bit length +
  value (multiple values NUL-separated), zlib-compressed with :data:`DICTIONARY`, one context
  per direction for the whole connection and a sync flush after each block.

Control frame header: bit 0 = 1, 15-bit version (3), 16-bit type, 8-bit flags, 24-bit length.
Data frame header: bit 0 = 0, 31-bit stream id, 8-bit flags, 24-bit length.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes.
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
INTERNAL_ERROR = 6
CANCEL = 5

MAX_LENGTH = 0xFFFFFF
HEADER_SIZE = 8

# The header-compression dictionary is a protocol constant defined by the SPDY/3 draft
# specification ("SPDY Protocol - Draft 3", section 2.6.10.1 Compression): a run of header
# words, each preceded by its 32-bit big-endian length, followed by common value fragments.
_DICTIONARY_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type",
    "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
    "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK",
    "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00"
    " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY: bytes = b"".join(
    struct.pack("!I", len(w)) + w.encode("ascii") for w in _DICTIONARY_WORDS
) + _DICTIONARY_TAIL.encode("ascii")


class SpdyError(ValueError):
    """Malformed SPDY input."""


Headers = dict[str, str]


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    flags: int = 0
    associated_id: int = 0
    priority: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    payload: bytes
    flags: int = 0


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True)
class UnknownControl:
    type: int
    flags: int
    payload: bytes


Frame = (Data | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame
         | WindowUpdate | UnknownControl)


def pack_header_block(headers: Headers) -> bytes:
    """The uncompressed header block for ``headers`` (names lower-cased)."""
    out = [struct.pack("!I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out.append(struct.pack("!I", len(n)) + n + struct.pack("!I", len(v)) + v)
    return b"".join(out)


def unpack_header_block(raw: bytes) -> Headers:
    """Headers from an uncompressed header block; multiple values stay NUL-separated."""
    try:
        (count,), pos = struct.unpack_from("!I", raw, 0), 4
        headers: Headers = {}
        for _ in range(count):
            (n,) = struct.unpack_from("!I", raw, pos)
            name = raw[pos + 4:pos + 4 + n]
            pos += 4 + n
            (m,) = struct.unpack_from("!I", raw, pos)
            value = raw[pos + 4:pos + 4 + m]
            pos += 4 + m
            if len(name) != n or len(value) != m:
                raise SpdyError("truncated header block")
            headers[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    except struct.error as e:
        raise SpdyError(f"truncated header block: {e}") from e
    return headers


class HeaderCompressor:
    """One direction's header compression context (shared by all blocks on a connection)."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8,
                                   zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        """The compressed block, ending in a sync flush so the peer can decode it at once."""
        return self._z.compress(pack_header_block(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """One direction's header decompression context."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(15, DICTIONARY)

    def decompress(self, block: bytes) -> Headers:
        if not block:
            return {}
        try:
            raw = self._z.decompress(block)
        except zlib.error as e:
            raise SpdyError(f"bad header block: {e}") from e
        return unpack_header_block(raw)


def _control(ftype: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise SpdyError("control frame too long")
    return struct.pack("!HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


@dataclass
class FrameEncoder:
    """Builds frames for one direction of a connection (owns its header compressor)."""

    compressor: HeaderCompressor = field(default_factory=HeaderCompressor)

    def syn_stream(self, stream_id: int, headers: Headers, fin: bool = False,
                   associated_id: int = 0, priority: int = 0) -> bytes:
        block = self.compressor.compress(headers)
        payload = struct.pack("!IIBB", stream_id & 0x7FFFFFFF, associated_id & 0x7FFFFFFF,
                              (priority & 0x7) << 5, 0) + block
        return _control(SYN_STREAM, FLAG_FIN if fin else 0, payload)

    def syn_reply(self, stream_id: int, headers: Headers | None = None,
                  fin: bool = False) -> bytes:
        block = self.compressor.compress(headers or {})
        return _control(SYN_REPLY, FLAG_FIN if fin else 0,
                        struct.pack("!I", stream_id & 0x7FFFFFFF) + block)

    def headers(self, stream_id: int, headers: Headers, fin: bool = False) -> bytes:
        block = self.compressor.compress(headers)
        return _control(HEADERS, FLAG_FIN if fin else 0,
                        struct.pack("!I", stream_id & 0x7FFFFFFF) + block)

    @staticmethod
    def data(stream_id: int, data: bytes, fin: bool = False) -> bytes:
        """One DATA frame; ``data`` must fit in 24 bits (see :func:`data_frames`)."""
        if len(data) > MAX_LENGTH:
            raise SpdyError("data frame too long")
        flags = FLAG_FIN if fin else 0
        return struct.pack("!II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data

    @staticmethod
    def rst_stream(stream_id: int, status: int) -> bytes:
        return _control(RST_STREAM, 0, struct.pack("!II", stream_id & 0x7FFFFFFF, status))

    @staticmethod
    def ping(ping_id: int) -> bytes:
        return _control(PING, 0, struct.pack("!I", ping_id))

    @staticmethod
    def goaway(last_good_stream_id: int, status: int = 0) -> bytes:
        return _control(GOAWAY, 0, struct.pack("!II", last_good_stream_id & 0x7FFFFFFF, status))

    @staticmethod
    def settings(entries: dict[int, int] | None = None) -> bytes:
        entries = entries or {}
        payload = struct.pack("!I", len(entries)) + b"".join(
            struct.pack("!II", k & 0xFFFFFF, v) for k, v in entries.items())
        return _control(SETTINGS, 0, payload)

    @staticmethod
    def window_update(stream_id: int, delta: int) -> bytes:
        return _control(WINDOW_UPDATE, 0,
                        struct.pack("!II", stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF))


class FrameParser:
    """Incremental parser for one direction of a connection (owns its decompressor)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._headers = HeaderDecompressor()

    def feed(self, chunk: bytes) -> list[Frame]:
        """Append ``chunk`` and return every frame now complete, in order."""
        self._buf += chunk
        frames: list[Frame] = []
        while len(self._buf) >= HEADER_SIZE:
            word, flags_len = struct.unpack_from("!II", self._buf, 0)
            length = flags_len & 0xFFFFFF
            if len(self._buf) < HEADER_SIZE + length:
                break
            payload = bytes(self._buf[HEADER_SIZE:HEADER_SIZE + length])
            del self._buf[:HEADER_SIZE + length]
            flags = flags_len >> 24
            if word & 0x80000000:
                version, ftype = (word >> 16) & 0x7FFF, word & 0xFFFF
                if version != VERSION:
                    raise SpdyError(f"unsupported SPDY version {version}")
                frames.append(self._control(ftype, flags, payload))
            else:
                frames.append(Data(word & 0x7FFFFFFF, payload, flags))
        return frames

    def _control(self, ftype: int, flags: int, p: bytes) -> Frame:
        try:
            if ftype == SYN_STREAM:
                sid, assoc, prio = struct.unpack_from("!IIB", p, 0)
                return SynStream(sid & 0x7FFFFFFF, self._headers.decompress(p[10:]), flags,
                                 assoc & 0x7FFFFFFF, prio >> 5)
            if ftype == SYN_REPLY:
                (sid,) = struct.unpack_from("!I", p, 0)
                return SynReply(sid & 0x7FFFFFFF, self._headers.decompress(p[4:]), flags)
            if ftype == HEADERS:
                (sid,) = struct.unpack_from("!I", p, 0)
                return HeadersFrame(sid & 0x7FFFFFFF, self._headers.decompress(p[4:]), flags)
            if ftype == RST_STREAM:
                sid, status = struct.unpack_from("!II", p, 0)
                return RstStream(sid & 0x7FFFFFFF, status)
            if ftype == PING:
                return Ping(struct.unpack_from("!I", p, 0)[0])
            if ftype == GOAWAY:
                last = struct.unpack_from("!I", p, 0)[0] & 0x7FFFFFFF
                status = struct.unpack_from("!I", p, 4)[0] if len(p) >= 8 else 0
                return GoAway(last, status)
            if ftype == WINDOW_UPDATE:
                sid, delta = struct.unpack_from("!II", p, 0)
                return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
            if ftype == SETTINGS:
                return Settings(p, flags)
        except struct.error as e:
            raise SpdyError(f"truncated control frame type {ftype}: {e}") from e
        return UnknownControl(ftype, flags, p)


def data_frames(stream_id: int, data: bytes, fin: bool = False,
                max_size: int = 64 * 1024) -> list[bytes]:
    """``data`` split into DATA frames of at most ``max_size`` bytes; FIN on the last one
    (an empty data with ``fin`` gives one empty FIN frame)."""
    chunks = [data[i:i + max_size] for i in range(0, len(data), max_size)] or [b""]
    return [FrameEncoder.data(stream_id, c, fin and i == len(chunks) - 1)
            for i, c in enumerate(chunks)]
