"""RFC 3339 timestamps as the Kubernetes API writes them in conditions, events, taints
and heartbeats: UTC with whole seconds (``2026-11-22T10:00:00Z``)."""

from __future__ import annotations

import datetime as dt


def now() -> str:
    """The current time, e.g. ``2026-11-22T10:00:00Z``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_unix(text: object) -> float | None:
    """Unix time of an RFC 3339 timestamp (fractional seconds and offsets accepted; no
    offset means UTC), or ``None`` when it is absent or malformed."""
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()
