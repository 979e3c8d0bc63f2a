"""Container logs in the CRI file format (``<RFC3339Nano> <stream> <F|P> <text>``) and
the reading options of ``kubectl logs`` (tail, timestamps, since, limit, follow).

Layout: ``<logs-dir>/<namespace>_<pod>_<uid>/<container>/<restartCount>.log`` — the
current run is the highest number; ``--previous`` reads the one before it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path


def container_log_dir(logs_dir: Path, namespace: str, pod: str, uid: str, container: str
                      ) -> Path:
    return logs_dir / f"{namespace}_{pod}_{uid}" / container


def log_file(logs_dir: Path, namespace: str, pod: str, uid: str, container: str,
             restart_count: int) -> Path:
    return container_log_dir(logs_dir, namespace, pod, uid, container) / f"{restart_count}.log"


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    timestamps: bool = False
    previous: bool = False
    since_seconds: int | None = None
    since_time: str | None = None
    limit_bytes: int | None = None


@dataclass(frozen=True)
class LogLine:
    timestamp: str
    stream: str
    partial: bool
    text: str

    def render(self, timestamps: bool) -> bytes:
        body = self.text + ("" if self.partial else "\n")
        return ((self.timestamp + " ") if timestamps else "").encode() + body.encode()


def parse_line(raw: str) -> LogLine | None:
    """One CRI log line, or None if it is not one."""
    parts = raw.rstrip("\n").split(" ", 3)
    if len(parts) < 3:
        return None
    ts, stream, tag = parts[0], parts[1], parts[2]
    return LogLine(ts, stream, tag == "P", parts[3] if len(parts) == 4 else "")


def _parse_ts(ts: str) -> dt.datetime | None:
    try:
        base, _, frac = ts.rstrip("Z").partition(".")
        t = dt.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
        return t + dt.timedelta(microseconds=int((frac + "000000")[:6]) if frac else 0)
    except ValueError:
        return None


def _since(opts: LogOptions, now: dt.datetime) -> dt.datetime | None:
    if opts.since_seconds is not None:
        return now - dt.timedelta(seconds=opts.since_seconds)
    if opts.since_time:
        return _parse_ts(opts.since_time)
    return None


def select(lines: list[LogLine], opts: LogOptions, now: dt.datetime) -> list[LogLine]:
    """Apply since and tail to the lines read so far."""
    since = _since(opts, now)
    if since is not None:
        lines = [ln for ln in lines if (t := _parse_ts(ln.timestamp)) is None or t >= since]
    if opts.tail_lines is not None:
        lines = lines[-opts.tail_lines:] if opts.tail_lines > 0 else []
    return lines


def read_lines(path: Path) -> tuple[list[LogLine], int]:
    """Every line of a log file and the byte offset read up to."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    out = [ln for raw in data[:end].decode(errors="replace").splitlines()
           if (ln := parse_line(raw)) is not None]
    return out, end


async def stream_log(path: Path, opts: LogOptions, still_running: Callable[[], bool]
                     ) -> AsyncIterator[bytes]:
    """The log as ``kubectl logs`` wants it; with ``follow`` keeps reading new lines until
    ``still_running()`` says the container has stopped and the file is drained."""
    lines, offset = read_lines(path)
    sent = 0
    for ln in select(lines, opts, dt.datetime.now(dt.UTC)):
        chunk = ln.render(opts.timestamps)
        if opts.limit_bytes is not None:
            chunk = chunk[: max(0, opts.limit_bytes - sent)]
        if not chunk:
            return
        sent += len(chunk)
        yield chunk
    if not opts.follow:
        return
    while True:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size > offset:
            with path.open("rb") as fh:
                fh.seek(offset)
                data = fh.read(size - offset)
            end = data.rfind(b"\n") + 1
            offset += end
            for raw in data[:end].decode(errors="replace").splitlines():
                parsed = parse_line(raw)
                if parsed is None:
                    continue
                chunk = parsed.render(opts.timestamps)
                if opts.limit_bytes is not None:
                    chunk = chunk[: max(0, opts.limit_bytes - sent)]
                    if not chunk:
                        return
                sent += len(chunk)
                yield chunk
            continue
        if not still_running():
            return
        await asyncio.sleep(0.1)

