"""IPVS schedulers: which backend of a virtual service gets a new connection.

Each scheduler follows the selection rules of the Linux IPVS scheduler of the same name
(``net/netfilter/ipvs/ip_vs_<name>.c``):

* A destination is *unavailable* when its weight is ``<= 0``; unavailable destinations are
  never returned. (IPVS's OVERLOAD flag has no counterpart here.)
* ``lc``/``wlc`` use the connection overhead ``256 * active + inactive``; ``sed``/``nq`` use
  ``active + 1``. Ratios are compared by integer cross-multiplication and ties keep the
  destination that comes first in list order.
* ``rr`` and ``wrr`` keep their position across :meth:`Scheduler.update` calls the way the
  kernel does when real servers are added, removed or reweighted.
* ``sh`` and ``dh`` use the kernel's 256-bucket tables and hash functions bit for bit;
  ``mh`` builds the kernel's Maglev table but with a keyed BLAKE2b hash in place of the
  kernel's hsiphash, so the table layout (not its properties) differs from Linux.

Call :meth:`Scheduler.update` whenever the destination list or any weight changes; the
connection counters (``active``/``inactive``) and weights are read live by :meth:`pick`, but
hash tables and the ``wrr`` step sizes are computed from the weights seen by ``update``, as
in the kernel. :meth:`pick` is the per-connection hot path: hash tables are precomputed.
"""

from __future__ import annotations

import hashlib
import math
import re
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from svcnet.proxy.types import WEIGHTS_ANNOTATION

__all__ = [
    "MAX_WEIGHT",
    "SCHEDULERS",
    "Destination",
    "DestinationHash",
    "LeastConnection",
    "MaglevHash",
    "NeverQueue",
    "RoundRobin",
    "Scheduler",
    "ShortestExpectedDelay",
    "SourceHash",
    "WeightedLeastConnection",
    "WeightedRoundRobin",
    "make_scheduler",
    "parse_weights",
]

SCHEDULERS: tuple[str, ...] = ("rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "mh")

MAX_WEIGHT = 65535  # ipvsadm's accepted range for a real-server weight is 0..65535

_HASH_TAB_BITS = 8  # IP_VS_SH_TAB_BITS / IP_VS_DH_TAB_BITS
_HASH_TAB_SIZE = 1 << _HASH_TAB_BITS
_GOLDEN_RATIO_32 = 0x61C88647  # hash_32() multiplier (include/linux/hash.h)
_KNUTH_MULT = 2654435761  # multiplier of the dh hash key
_U32 = 0xFFFFFFFF

_MH_MAX_TABLE_SIZE = 131071  # largest table size the kernel offers
_MH_KEY_OFFSET = b"svcnet.io/ipvs/mh/offset"  # keys of the two Maglev hash functions
_MH_KEY_SKIP = b"svcnet.io/ipvs/mh/skip"

_IPV4 = struct.Struct("!I")
# (address, weight) of each destination, in list order, as of an update.
_Snapshot = tuple[tuple[str, int], ...]
_IPV6 = struct.Struct("!4I")


@dataclass(eq=False)
class Destination:
    """One backend of a virtual service, with the live counters schedulers read.

    Compared by identity. ``active`` counts established connections and ``inactive`` all
    other connections and UDP flows; the proxy maintains both. ``weight <= 0`` makes the
    destination unavailable for new connections (graceful termination uses weight 0).
    """

    ip: str
    port: int
    weight: int = 1
    active: int = 0
    inactive: int = 0

    @property
    def address(self) -> str:
        """``ip:port``, IPv6 in brackets."""
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


class Scheduler(Protocol):
    """Chooses the destination of each new connection of one virtual service."""

    name: str

    def update(self, dests: Sequence[Destination]) -> None:
        """Replace the destination list (order matters: it is the IPVS list order). State such as
        the rr position is kept when the list changes if possible, like the kernel does."""
        ...

    def pick(self, src_ip: str, src_port: int, dst_ip: str) -> Destination | None:
        """The destination for a new connection/flow from src to the virtual IP dst_ip, or None
        if no destination is available (weight <= 0 everywhere, or the hashing scheduler's bucket
        owner is unavailable)."""
        ...


# --------------------------------------------------------------------------- address helpers


def _packed(ip: str) -> bytes:
    """The 4- or 16-byte network form of an IP address string (a ``%zone`` suffix is ignored)."""
    try:
        if ":" in ip:
            if "%" in ip:
                ip = ip.partition("%")[0]
            return socket.inet_pton(socket.AF_INET6, ip)
        return socket.inet_pton(socket.AF_INET, ip)
    except OSError:
        raise ValueError(f"invalid IP address {ip!r}") from None


def _addr_fold(ip: str) -> int:
    """The kernel's ``ntohl(addr_fold)``: the IPv4 address, or the XOR of an IPv6 address's four
    32-bit words, as a host-order integer."""
    raw = _packed(ip)
    if len(raw) == 4:
        return int(_IPV4.unpack(raw)[0])
    a, b, c, d = _IPV6.unpack(raw)
    return int(a ^ b ^ c ^ d)


def _port_bytes(port: int) -> bytes:
    return (port & 0xFFFF).to_bytes(2, "big")


def _mh_hash(data: bytes, key: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, key=key).digest(), "little")


# --------------------------------------------------------------------------- schedulers


class _Base:
    """Holds the destination list; subclasses react to real changes in :meth:`_changed`."""

    name: str = ""

    def __init__(self) -> None:
        self._dests: list[Destination] = []
        # (address, weight) per destination as of the last update: the change detector.
        self._snapshot: _Snapshot = ()

    def update(self, dests: Sequence[Destination]) -> None:
        """Replace the destination list.

        When addresses, order and weights are all unchanged, scheduler state is kept as is
        (only the objects are rebound, so new counter objects are read from then on);
        otherwise :meth:`_changed` recomputes what the kernel recomputes on add/del/update.
        """
        new = list(dests)
        snapshot = tuple((d.address, d.weight) for d in new)
        old = self._snapshot
        self._dests = new
        self._snapshot = snapshot
        if snapshot != old:
            self._changed(old, snapshot)

    def _changed(self, old: _Snapshot, new: _Snapshot) -> None:
        """Hook run after the list changed; ``self._dests`` already holds the new list."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} dests={[a for a, _ in self._snapshot]}>"


class RoundRobin(_Base):
    """``rr``: scan forward circularly from the last chosen destination for an available one.

    Across updates the position stays on the last chosen destination; if it was removed, on
    the nearest earlier destination of the old list that remains (the kernel's ``del_dest``),
    or at the start of the list if none does.
    """

    name = "rr"

    def __init__(self) -> None:
        super().__init__()
        self._pos = -1  # index of the last chosen destination; -1 = list head

    def _changed(self, old: _Snapshot, new: _Snapshot) -> None:
        if self._pos < 0:
            return
        index: dict[str, int] = {}
        for i, (addr, _) in enumerate(new):
            index.setdefault(addr, i)
        pos = -1
        for j in range(min(self._pos, len(old) - 1), -1, -1):
            found = index.get(old[j][0])
            if found is not None:
                pos = found
                break
        self._pos = pos

    def pick(self, src_ip: str, src_port: int, dst_ip: str) -> Destination | None:
        """The next available destination after the last chosen one, or ``None``."""
        dests = self._dests
        n = len(dests)
        pos = self._pos
        for k in range(1, n + 1):
            i = (pos + k) % n
            d = dests[i]
            if d.weight > 0:
                self._pos = i
                return d
        return None


class WeightedRoundRobin(_Base):
    """``wrr``: interleaved weighted round robin exactly as ``ip_vs_wrr.c``.

    State: position ``cl``, current weight ``cw``, step ``di`` = gcd of the positive weights,
    ``mw`` = max weight - (di - 1). Scanning forward picks the next destination with
    ``weight >= cw``; each wrap past the end lowers ``cw`` by ``di`` and resets it to ``mw``
    when it drops to 0. A list change rewinds the position to the head and keeps ``cw``
    (clamped to ``mw``, aligned to ``di``).
    """

    name = "wrr"

    def __init__(self) -> None:
        super().__init__()
        self._cl = -1  # -1 = list head
        self._cw = 0
        self._mw = 0
        self._di = 1

    def _changed(self, old: _Snapshot, new: _Snapshot) -> None:
        g = 0
        mx = 0
        for _, w in new:
            if w > 0:
                g = math.gcd(g, w)
            mx = max(mx, w)
        di = g or 1
        self._cl = -1
        self._di = di
        self._mw = mx - (di - 1)
        if self._cw > self._mw or self._cw == 0:
            self._cw = self._mw
        elif di > 1:
            self._cw = (self._cw // di) * di + 1

    def pick(self, src_ip: str, src_port: int, dst_ip: str) -> Destination | None:
        """The next destination in the weighted interleaving, or ``None`` if none has a
        positive weight (the position is then left where the scan stopped, as in the kernel)."""
        if self._mw == 0:
            return None
        dests = self._dests
        n = len(dests)
        di = self._di
        mw = self._mw
        cw = self._cw
        last = self._cl
        i = last
        stop = -2  # index at which the final pass ends; -2 = none
        last_pass = False
        restarted = False
        while True:
            for j in range(i + 1, n):
                if dests[j].weight >= cw:
                    self._cl = j
                    self._cw = cw
                    return dests[j]
                if j == stop:
                    self._cl = j
                    self._cw = cw
                    return None
            cw -= di
            if cw <= 0:
                cw = mw
                if last_pass or last < 0:
                    self._cl = -1
                    self._cw = cw
                    return None
                restarted = True
            last_pass = cw <= di
            if last_pass and restarted and last >= 0:
                stop = last
            i = -1


def _overhead(d: Destination) -> int:
    """lc/wlc's connection overhead: ``256 * active + inactive``."""
    return (d.active << 8) + d.inactive


def _expected_delay(d: Destination) -> int:
    """sed/nq's cost: ``active + 1``."""
    return d.active + 1


def _least(dests: Sequence[Destination], cost: Callable[[Destination], int],
           weighted: bool = True, idle_first: bool = False) -> Destination | None:
    """The available destination (weight > 0) with the least ``cost / weight`` (or least
    ``cost`` when not ``weighted``), compared by integer cross-multiplication as the kernel
    does; ties keep the earlier destination. With ``idle_first`` the first available
    destination without active connections wins at once (nq)."""
    least: Destination | None = None
    lcost = 0
    lw = 1
    for d in dests:
        w = d.weight
        if w <= 0:
            continue
        if idle_first and d.active == 0:
            return d
        if not weighted:
            w = 1
        dcost = cost(d)
        if least is None or lcost * w > dcost * lw:
            least, lcost, lw = d, dcost, w
    return least


class LeastConnection(_Base):
    """``lc``: the available destination with the least ``256 * active + inactive``."""

    name = "lc"

    def pick(self, src_ip: str, src_port: int, dst_ip: str) -> Destination | None:
        """The least-loaded available destination (first one on ties), or ``None``."""
        return _least(self._dests, _overhead, weighted=False)


class WeightedLeastConnection(_Base):
    """``wlc``: the available destination with the least ``(256 * active + inactive) / weight``."""

    name = "wlc"

    def pick(self, src_ip: str, src_port: int, dst_ip: str) -> Destination | None:
        """The destination with the lowest overhead per weight (first one on ties), or ``None``."""
        return _least(self._dests, _overhead)


class ShortestExpectedDelay(_Base):
    """``sed``: the available destination with the least ``(active + 1) / weight``."""

    name = "sed"

    def pick(self, src_ip: str, src_port: int, dst_ip: str) -> Destination | None:
        """The destination with the shortest expected delay (first one on ties), or ``None``."""
        return _least(self._dests, _expected_delay)


class NeverQueue(_Base):
    """``nq``: the first available destination with no active connection, else as ``sed``."""

    name = "nq"

    def pick(self, src_ip: str, src_port: int, dst_ip: str) -> Destination | None:
        """The first idle available destination, else the ``sed`` choice, or ``None``."""
        return _least(self._dests, _expected_delay, idle_first=True)


def _fill_buckets(weights: Sequence[int], use_weights: bool) -> list[int]:
    """The kernel's 256-bucket fill: walk the list repeatedly, each destination taking
    ``weight`` consecutive buckets (at least one) when ``use_weights``, else exactly one."""
    n = len(weights)
    if n == 0:
        return []
    table: list[int] = []
    i = 0
    count = 0
    for _ in range(_HASH_TAB_SIZE):
        table.append(i)
        count += 1
        if not use_weights or count >= weights[i]:
            i = (i + 1) % n
            count = 0
    return table


class SourceHash(_Base):
    """``sh``: a 256-bucket table filled by weight, indexed by ``hash_32`` of the source.

    Bucket = top 8 bits of ``((src_port if sh_port else 0) + ntohl(addr_fold(src))) *
    0x61C88647 mod 2**32``. An unavailable bucket owner yields ``None`` (no ``sh-fallback``).
    """

    name = "sh"

    def __init__(self, *, port: bool = False) -> None:
        super().__init__()
        self._port = port
        self._table: list[int] = []

    def _changed(self, old: _Snapshot, new: _Snapshot) -> None:
        self._table = _fill_buckets([w for _, w in new], use_weights=True)

    def pick(self, src_ip: str, src_port: int, dst_ip: str) -> Destination | None:
        """The owner of the source's bucket if it is available, else ``None``."""
        table = self._table
        if not table:
            return None
        key = (_addr_fold(src_ip) + (src_port if self._port else 0)) & _U32
        d = self._dests[table[((key * _GOLDEN_RATIO_32) & _U32) >> (32 - _HASH_TAB_BITS)]]
        return d if d.weight > 0 else None


class DestinationHash(_Base):
    """``dh``: a 256-bucket table, one bucket per destination cycling through the list (weights
    unused), indexed by ``ntohl(addr_fold(dst)) * 2654435761 & 255``. An unavailable bucket
    owner yields ``None``."""

    name = "dh"

    def __init__(self) -> None:
        super().__init__()
        self._table: list[int] = []

    def _changed(self, old: _Snapshot, new: _Snapshot) -> None:
        self._table = _fill_buckets([w for _, w in new], use_weights=False)

    def pick(self, src_ip: str, src_port: int, dst_ip: str) -> Destination | None:
        """The owner of the virtual IP's bucket if it is available, else ``None``."""
        table = self._table
        if not table:
            return None
        d = self._dests[table[(_addr_fold(dst_ip) * _KNUTH_MULT) & (_HASH_TAB_SIZE - 1)]]
        return d if d.weight > 0 else None


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


class MaglevHash(_Base):
    """``mh``: Maglev consistent hashing over a prime-sized lookup table (``ip_vs_mh.c``).

    Each destination gets ``offset = H1(addr, port) mod M`` and ``skip = H2(addr, port) mod
    (M - 1) + 1`` and claims the free slots of its permutation ``offset + j * skip mod M`` in
    turns: per round, each destination takes ``(W / gcd) >> rshift`` slots (at least one if
    ``W > 0``), where ``rshift`` keeps the largest ``W / gcd`` within ``M.bit_length() // 2``
    bits. ``W`` is the destination's latest non-zero weight (its weight when it was added), so a
    destination drained to weight 0 keeps its slots: sources mapped to it get ``None``
    rather than being reshuffled (no ``mh-fallback``). Lookup: ``H1(src addr, src port if
    mh_port else 0) mod M``. H1/H2 are keyed BLAKE2b hashes of the packed address and port.
    """

    name = "mh"

    def __init__(self, *, port: bool = True, table_size: int = 4093) -> None:
        super().__init__()
        if not _is_prime(table_size) or table_size > _MH_MAX_TABLE_SIZE:
            raise ValueError(
                f"mh table size must be a prime between 2 and {_MH_MAX_TABLE_SIZE}, "
                f"got {table_size}"
            )
        self._port = port
        self._size = table_size
        self._bits = table_size.bit_length() // 2
        self._table: list[int] = []
        self._last_weight: dict[str, int] = {}

    def update(self, dests: Sequence[Destination]) -> None:
        """As :meth:`Scheduler.update`; ValueError if there are more destinations than slots."""
        if len(dests) > self._size:
            raise ValueError(
                f"mh: {len(dests)} destinations do not fit a table of size {self._size}"
            )
        super().update(dests)

    def _changed(self, old: _Snapshot, new: _Snapshot) -> None:
        previous = self._last_weight
        last: dict[str, int] = {}
        for addr, w in new:
            if addr not in previous or w != 0:
                last[addr] = w
            else:
                last[addr] = previous[addr]
        self._last_weight = last
        self._table = self._populate([last[addr] for addr, _ in new])

    def _populate(self, weights: list[int]) -> list[int]:
        size = self._size
        g = 0
        mx = 0
        for w in weights:
            if w > 0:
                g = math.gcd(g, w)
                mx = max(mx, w)
        if g < 1:
            return []
        rshift = max((mx // g).bit_length() - self._bits, 0)
        perm: list[int] = []
        skip: list[int] = []
        turns: list[int] = []
        for d, w in zip(self._dests, weights, strict=True):
            key = _packed(d.ip) + _port_bytes(d.port)
            perm.append(_mh_hash(key, _MH_KEY_OFFSET) % size)
            skip.append(_mh_hash(key, _MH_KEY_SKIP) % (size - 1) + 1)
            turns.append(max((w // g) >> rshift, 1) if w > 0 else 0)
        order = [i for i, t in enumerate(turns) if t > 0]
        taken = bytearray(size)
        table = [0] * size
        filled = 0
        while True:
            for i in order:
                c = perm[i]
                s = skip[i]
                for _ in range(turns[i]):
                    while taken[c]:
                        c += s
                        if c >= size:
                            c -= size
                    taken[c] = 1
                    table[c] = i
                    filled += 1
                    if filled == size:
                        return table
                perm[i] = c

    def pick(self, src_ip: str, src_port: int, dst_ip: str) -> Destination | None:
        """The owner of the source's lookup slot if it is available, else ``None``."""
        table = self._table
        if not table:
            return None
        key = _packed(src_ip) + _port_bytes(src_port if self._port else 0)
        d = self._dests[table[_mh_hash(key, _MH_KEY_OFFSET) % self._size]]
        return d if d.weight > 0 else None


def make_scheduler(
    name: str, *, sh_port: bool = False, mh_port: bool = True, mh_table_size: int = 4093
) -> Scheduler:
    """A new, empty scheduler named ``name`` (one of :data:`SCHEDULERS`).

    ``sh_port`` adds the source port to the ``sh`` hash (IPVS flag ``sh-port``; kube-proxy
    leaves it off). ``mh_port`` does the same for ``mh`` (``mh-port``; kube-proxy sets it).
    ``mh_table_size`` must be a prime. ValueError naming the known schedulers for an unknown
    name.
    """
    if name == "rr":
        return RoundRobin()
    if name == "wrr":
        return WeightedRoundRobin()
    if name == "lc":
        return LeastConnection()
    if name == "wlc":
        return WeightedLeastConnection()
    if name == "sed":
        return ShortestExpectedDelay()
    if name == "nq":
        return NeverQueue()
    if name == "sh":
        return SourceHash(port=sh_port)
    if name == "dh":
        return DestinationHash()
    if name == "mh":
        return MaglevHash(port=mh_port, table_size=mh_table_size)
    raise ValueError(f"unknown IPVS scheduler {name!r}; known schedulers: {', '.join(SCHEDULERS)}")


_WEIGHT_RE = re.compile(r"[0-9]+")
_NEGATIVE_RE = re.compile(r"-[0-9]+")


def parse_weights(text: str) -> tuple[tuple[str, int], ...]:
    """Parse the ``svcnet.io/ipvs-weights`` annotation: ``"<pod name or IP>=<int>,..."``.

    Whitespace around names, values and commas is ignored, as are empty items (so a trailing
    comma is fine); an empty or blank string gives ``()``. Entries keep their order. Weights
    are decimal integers from 0 to 65535 (ipvsadm's range). ValueError with a message naming
    the offending item for a missing ``=``, an empty or blank-containing name, a duplicate
    name, a negative, non-integer or too large weight.
    """
    result: list[tuple[str, int]] = []
    seen: set[str] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = name.strip()
        value = value.strip()
        where = f"in {WEIGHTS_ANNOTATION} item {item!r}"
        if not eq:
            raise ValueError(f"missing '=' {where}: expected <pod name or IP>=<weight>")
        if not name:
            raise ValueError(f"empty pod name or IP {where}")
        if any(ch.isspace() for ch in name):
            raise ValueError(f"pod name or IP {name!r} contains whitespace {where}")
        if name in seen:
            raise ValueError(f"duplicate entry for {name!r} {where}")
        if _NEGATIVE_RE.fullmatch(value):
            raise ValueError(f"negative weight {value} {where}: weights must be >= 0")
        if not _WEIGHT_RE.fullmatch(value):
            raise ValueError(f"weight {value!r} is not an integer {where}")
        if len(value.lstrip("0")) > len(str(MAX_WEIGHT)) or int(value) > MAX_WEIGHT:
            raise ValueError(f"weight {value} exceeds {MAX_WEIGHT} {where}")
        weight = int(value)
        seen.add(name)
        result.append((name, weight))
    return tuple(result)
