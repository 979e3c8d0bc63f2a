"""ClientIP session affinity for one service port (kube-proxy userspace semantics).

A table maps a client IP to the endpoint (``"ip:port"``) it was last sent to and when. An
entry is valid while the whole seconds elapsed since its last use are fewer than the
timeout; using it refreshes that time. Since the timeout is a whole number of seconds, an
entry set at ``t`` is valid for any lookup strictly before ``t + timeout`` and expired from
``t + timeout`` on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from svcnet.proxy.types import DEFAULT_AFFINITY_TIMEOUT

__all__ = ["AffinityTable"]


class AffinityTable:
    """ClientIP session affinity: client IP -> (destination address, last used).

    ``timeout`` is in seconds; 0 means the Kubernetes default of 10800. ``clock`` returns
    seconds (monotonic by default) and is injectable for tests. Not thread-safe.
    """

    __slots__ = ("_clock", "_entries", "_timeout")

    def __init__(self, timeout: int, clock: Callable[[], float] = time.monotonic) -> None:
        if timeout < 0:
            raise ValueError(f"affinity timeout must be >= 0 seconds, got {timeout}")
        self._timeout = timeout or DEFAULT_AFFINITY_TIMEOUT
        self._clock = clock
        self._entries: dict[str, tuple[str, float]] = {}

    @property
    def timeout(self) -> int:
        """The effective timeout in seconds (never 0)."""
        return self._timeout

    def _expired(self, last_used: float, now: float) -> bool:
        # Whole seconds, truncated toward zero like Go's int(duration.Seconds()).
        return int(now - last_used) >= self._timeout

    def get(self, client_ip: str) -> str | None:
        """The address ``client_ip`` is stuck to, refreshing its last use; ``None`` if there is
        no entry or it has expired (an expired entry is removed)."""
        entry = self._entries.get(client_ip)
        if entry is None:
            return None
        now = self._clock()
        if self._expired(entry[1], now):
            del self._entries[client_ip]
            return None
        self._entries[client_ip] = (entry[0], now)
        return entry[0]

    def set(self, client_ip: str, address: str) -> None:
        """Stick ``client_ip`` to ``address`` (``"ip:port"``) as of now, replacing any entry."""
        self._entries[client_ip] = (address, self._clock())

    def forget_missing(self, valid: Collection[str]) -> None:
        """Drop entries whose address is not in ``valid`` (the current endpoint addresses)."""
        keep = valid if isinstance(valid, set | frozenset) else frozenset(valid)
        stale = [ip for ip, (addr, _) in self._entries.items() if addr not in keep]
        for ip in stale:
            del self._entries[ip]

    def sweep(self) -> int:
        """Remove expired entries; returns how many were removed."""
        now = self._clock()
        stale = [ip for ip, (_, used) in self._entries.items() if self._expired(used, now)]
        for ip in stale:
            del self._entries[ip]
        return len(stale)

    def __len__(self) -> int:
        """Number of entries, including expired ones not yet removed by get() or sweep()."""
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<AffinityTable timeout={self._timeout}s entries={len(self._entries)}>"
