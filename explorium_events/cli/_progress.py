"""The command line's live progress line, redrawn in place on standard error.

The line is redrawn in place with a carriage return, at most ``MAX_REDRAWS``
times a second, and only when asked (the CLI asks when stderr is a terminal). It is
never wider than the terminal it is drawn on, measured on that stream at each redraw:
a line that wraps is not redrawn in place (the carriage return goes back only to the
start of its last row), so it would scroll away as broken rows instead of updating. Log
records go through ``ProgressLogHandler``, which wipes the line first, so that a
warning never lands in the middle of a half-drawn bar.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

from .._ratelimit import RateLimitState
from ._common import descriptor, is_terminal

MAX_REDRAWS = 10  # per second
_BAR_WIDTH = 20


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the progress line shows, read at one moment.

    ``ids_at_start``: IDs already done when this run began (a resumed pull), left out of
    the rate. ``batch_size``: IDs per request, for an ETA that counts the rate limit.
    ``held_for``: seconds since the last request went out, shown while the limiter waits.
    """

    ids_done: int
    ids_total: int
    events: int
    requests: int
    retries: int
    rate_limited: int
    elapsed: float
    limiter: RateLimitState | None = None
    ids_at_start: int = 0
    batch_size: int | None = None
    held_for: float = 0.0


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _status(snapshot: Snapshot, *, short: bool = False) -> list[str]:
    limiter = snapshot.limiter
    if limiter is None:
        return []
    if limiter.paused_for > 0:
        if short:
            return [f"paused {limiter.paused_for:.0f}s (Retry-After)"]
        return [f"paused {limiter.paused_for:.0f}s: the server said Retry-After"]
    if limiter.waiting and limiter.limit is not None:
        if short:
            return ["waiting on rate limit"]
        unit = "requests" if limiter.cost == "request" else "IDs"
        used = f"{limiter.used}/{limiter.limit} {unit} per {limiter.window:g}s"
        held = f", {snapshot.held_for:.0f}s so far" if snapshot.held_for >= 1 else ""
        return [f"waiting on the rate limit: {used}{held}"]
    return []


def _limit_eta(snapshot: Snapshot, remaining: int) -> float:
    """The least time the rate limit leaves for the rest: a burst now, then a window per limit.

    The early average rate includes the first window's burst and promises too much.
    """
    limiter = snapshot.limiter
    if limiter is None or limiter.limit is None or not snapshot.batch_size or not remaining:
        return 0.0
    units = math.ceil(remaining / snapshot.batch_size) if limiter.cost == "request" else remaining
    free_now = max(limiter.limit - limiter.used, 0)
    return max(units - free_now, 0) / limiter.limit * limiter.window


def render_line(snapshot: Snapshot, width: int = 1_000) -> str:
    """The progress line for a snapshot (no carriage return), at most ``width`` characters.

    On a narrow terminal the bar goes first, then the counters of requests, then the
    events, so that the IDs done, the ETA and a rate-limit wait stay in sight; only a
    terminal narrower than those is cut.
    """
    total = max(snapshot.ids_total, 1)
    fraction = min(snapshot.ids_done / total, 1.0)
    filled = round(fraction * _BAR_WIDTH)
    bar = "[" + "#" * filled + "." * (_BAR_WIDTH - filled) + "] "
    done_here = snapshot.ids_done - snapshot.ids_at_start
    rate = done_here / snapshot.elapsed if snapshot.elapsed > 0 else 0.0
    remaining = max(snapshot.ids_total - snapshot.ids_done, 0)
    eta = _duration(max(remaining / rate, _limit_eta(snapshot, remaining))) if rate > 0 else "--"
    head = f"{snapshot.ids_done:,}/{snapshot.ids_total:,} IDs {fraction:.0%}"
    counters = (
        f"{snapshot.requests:,} requests, {snapshot.retries:,} retries, "
        f"{snapshot.rate_limited:,} x 429"
    )
    short_counters = (
        f"{snapshot.requests:,} req {snapshot.retries:,} retr {snapshot.rate_limited:,} x 429"
    )
    events = f"{snapshot.events:,} events"
    speed = f"{rate:,.0f} IDs/s, ETA {eta}"
    status = _status(snapshot)
    short_status = _status(snapshot, short=True)
    for line in (
        " | ".join([bar + head, events, speed, counters, *status]),
        " | ".join([head, events, speed, counters, *status]),
        " | ".join([head, events, speed, short_counters, *short_status]),
        " | ".join([head, events, f"ETA {eta}", short_counters, *short_status]),
        " | ".join([head, events, f"ETA {eta}", *short_status]),
        " | ".join([head, f"ETA {eta}", *short_status]),
    ):
        if len(line) <= width:
            return line
    return line[:width]


class Progress:
    """A progress line on ``stream``, redrawn in place; does nothing unless ``enabled``."""

    def __init__(
        self,
        stream: TextIO,
        *,
        enabled: bool,
        clock: Callable[[], float] = time.monotonic,
        width: int | None = None,
    ) -> None:
        self.enabled = enabled
        self.interval = 1.0 / MAX_REDRAWS
        self._stream = stream
        self._clock = clock
        self._width = width
        self._last_draw = -math.inf
        self._shown = 0  # characters of the line on screen now
        self.draws = 0

    def _columns(self) -> int:
        """The widest line that fits: one less than the terminal's columns (no wrap)."""
        if self._width is not None:
            return self._width
        return max(terminal_columns(self._stream) - 1, 1)

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        """Redraw with this snapshot, unless the last redraw was under 1/10 s ago."""
        if not self.enabled:
            return
        now = self._clock()
        if not force and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        width = self._columns()
        line = render_line(snapshot, width)
        # Wipe what is left of a longer line, but never past the edge (a narrowed terminal).
        padding = " " * max(min(self._shown, width) - len(line), 0)
        self._stream.write("\r" + line + padding)
        self._stream.flush()
        self._shown = len(line)
        self.draws += 1

    def clear(self) -> None:
        """Wipe the line, leaving the cursor at its start (before a log line or the summary)."""
        if self.enabled and self._shown:
            self._stream.write("\r" + " " * self._shown + "\r")
            self._stream.flush()
            self._shown = 0


def terminal_columns(stream: object) -> int:
    """The columns of the terminal ``stream`` is on; else $COLUMNS, stdout's terminal or 100.

    The progress line goes to standard error: measuring standard output instead (as
    ``shutil.get_terminal_size`` does) gives 100 when the data is piped (``| jq``) or
    redirected to a file, a line wider than an 80-column terminal.
    """
    fd = descriptor(stream)
    if fd is not None:
        try:
            columns = os.get_terminal_size(fd).columns
        except OSError:  # not a terminal
            columns = 0
        if columns > 0:
            return columns
    return shutil.get_terminal_size((100, 24)).columns


class ProgressLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stderr log handler that wipes the progress line before each record."""

    def __init__(self, stream: TextIO, progress: Progress | None = None) -> None:
        super().__init__(stream)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        if self.progress is not None:
            self.progress.clear()
        super().emit(record)


def progress_enabled(flag: bool | None, *, quiet: bool = False) -> bool:
    """-q: never; else --progress / --no-progress; else whether standard error is a terminal."""
    if quiet:
        return False
    return flag if flag is not None else is_terminal(sys.stderr)


@contextlib.contextmanager
def logs_around(progress: Progress) -> Iterator[None]:
    """While the block runs, the package's log lines wipe ``progress`` before they print."""
    handlers = [
        handler
        for handler in logging.getLogger("explorium_events").handlers
        if isinstance(handler, ProgressLogHandler)
    ]
    for handler in handlers:
        handler.progress = progress
    try:
        yield
    finally:
        for handler in handlers:
            handler.progress = None
