"""The command line's live progress line and its end-of-run summary; both go to standard error.

The progress line is redrawn in place with a carriage return, at most ``MAX_REDRAWS``
times a second, and only when asked (the CLI asks when stderr is a terminal). Log
records go through ``ProgressLogHandler``, which wipes the line first, so that a
warning never lands in the middle of a half-drawn bar.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from explorium_events import BatchFailure, FetchStats, RateLimitState

MAX_REDRAWS = 10  # per second
_BAR_WIDTH = 20
_FAILURES_SHOWN = 5


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

    On a narrow terminal the bar goes first, then the counters of requests, so that
    the IDs done, the events, the ETA and a rate-limit wait stay in sight.
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
        if self._width is not None:
            return self._width
        return max(shutil.get_terminal_size((100, 24)).columns - 1, 20)

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        """Redraw with this snapshot, unless the last redraw was under 1/10 s ago."""
        if not self.enabled:
            return
        now = self._clock()
        if not force and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        line = render_line(snapshot, self._columns())
        padding = " " * max(self._shown - len(line), 0)
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


class ProgressLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stderr log handler that wipes the progress line before each record."""

    def __init__(self, stream: TextIO, progress: Progress | None = None) -> None:
        super().__init__(stream)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        if self.progress is not None:
            self.progress.clear()
        super().emit(record)


def pace(
    units: int, limit: int | None, window: float, elapsed: float
) -> tuple[float, float] | None:
    """How close a run came to the rate limit: (the fastest the limit allows, that / elapsed).

    Under a sliding window of ``limit`` units per ``window`` seconds, ``units`` can go
    out in ``ceil(units / limit)`` bursts, one window apart, so no run can take less
    than ``(ceil(units / limit) - 1) * window`` seconds. None when the limit never
    had to hold anything back (``units <= limit``, or no limit).
    """
    if not limit or units <= limit or elapsed <= 0:
        return None
    fastest = (math.ceil(units / limit) - 1) * window
    return fastest, fastest / elapsed


@dataclass(slots=True)
class RunReport:
    """Everything the summary tells about one pull."""

    source: str
    ids_read: int
    ids_done: int
    stats: FetchStats
    output: str
    output_format: str
    elapsed: float
    rate_limit: int | None
    rate_window: float
    rate_cost: str
    units_sent: int = 0
    invalid: int = 0
    invalid_examples: Sequence[str] = ()
    failures: list[BatchFailure] = field(default_factory=list)
    failed_out: str | None = None
    unfinished_ids: int = 0
    key_rejected: str | None = None
    gave_up: str | None = None
    write_failed: str | None = None
    interrupted: bool = False
    entity: str = "prospect"  # whose IDs: prospect or business

    @property
    def failed_ids(self) -> int:
        """Prospect IDs in failed batches (not those left undone by a rejected key)."""
        return sum(len(failure.prospect_ids) for failure in self.failures)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else plural or word + 's'}"


def summary_lines(report: RunReport) -> list[str]:
    """The end-of-run summary, one screen at most."""
    stats = report.stats
    lines: list[str] = []
    if report.interrupted:
        head = f"Interrupted after {report.elapsed:.1f}s"
    elif report.key_rejected:
        head = f"Stopped after {report.elapsed:.1f}s: the API refused the key"
    elif report.gave_up:
        head = f"Stopped after {report.elapsed:.1f}s: the server answered nothing usable"
    elif report.write_failed:
        head = f"Stopped after {report.elapsed:.1f}s: the output could not be written"
    elif report.failures:
        head = f"Finished in {report.elapsed:.1f}s with failed batches"
    else:
        head = f"Done in {report.elapsed:.1f}s"
    lines.append(f"{head}: {report.ids_done:,} of {report.ids_read:,} {report.entity} IDs done.")

    extras = []
    if stats.duplicate_ids:
        extras.append(f"{stats.duplicate_ids:,} repeated")
    if report.invalid:
        extras.append(f"{report.invalid:,} invalid skipped")
    note = f" ({', '.join(extras)})" if extras else ""
    lines.append(f"  input       {report.source}: {_plural(report.ids_read, 'ID')}{note}")
    lines.extend(f"              skipped {example}" for example in report.invalid_examples)
    ok_batches = stats.batches - stats.failed_batches
    lines.append(
        f"  batches     {stats.batches:,} done: {ok_batches:,} ok, {stats.failed_batches:,} failed"
    )
    lines.append(
        f"  requests    {stats.requests:,} ({_plural(stats.retries, 'retry', 'retries')}, "
        f"{stats.rate_limited:,} answered 429)"
    )
    lines.append(
        f"  events      {stats.events:,} written to {report.output} ({report.output_format}); "
        f"{stats.duplicates_dropped:,} duplicates dropped"
    )
    if report.elapsed > 0:
        lines.append(
            f"  throughput  {report.ids_done / report.elapsed:,.0f} IDs/s, "
            f"{stats.requests / report.elapsed:,.1f} requests/s"
        )
    lines.extend(_rate_limit_lines(report))
    lines.extend(_failure_lines(report))
    return lines


def _rate_limit_lines(report: RunReport) -> list[str]:
    if report.rate_limit is None:
        return ["  rate limit  none on the client side (the server's headers still applied)"]
    unit = "requests" if report.rate_cost == "request" else "IDs"
    limit = f"{report.rate_limit:,} {unit} per {report.rate_window:g}s"
    close = pace(report.units_sent, report.rate_limit, report.rate_window, report.elapsed)
    if close is None:
        sent = _plural(report.units_sent, unit.removesuffix("s"))
        return [f"  rate limit  {limit}: never reached ({sent} sent)"]
    fastest, ratio = close
    return [
        f"  rate limit  {limit}: ran at {ratio:.0%} of its pace ({report.units_sent:,} {unit} "
        f"need >= {fastest:.1f}s; took {report.elapsed:.1f}s)"
    ]


def _failure_lines(report: RunReport) -> list[str]:
    lines: list[str] = []
    if report.key_rejected:
        first, *rest = report.key_rejected.splitlines()
        lines.append(f"  KEY REFUSED {first}")
        lines.extend(f"              {line}" for line in rest)
    if report.gave_up:
        lines.append(f"  GAVE UP     {report.gave_up}")
    if report.failures:
        lines.append(
            f"  FAILED      {_plural(len(report.failures), 'batch', 'batches')}"
            f" ({report.failed_ids:,} IDs) after their retries:"
        )
        for failure in report.failures[:_FAILURES_SHOWN]:
            line = f"              {failure.error}"[:300]
            # Batches given up on together share one error: once is enough.
            if line != lines[-1]:
                lines.append(line)
        if len(report.failures) > _FAILURES_SHOWN:
            lines.append(f"              ... and {len(report.failures) - _FAILURES_SHOWN} more")
    if report.unfinished_ids:
        lines.append(f"  NOT DONE    {_plural(report.unfinished_ids, 'ID')} never fetched")
    undone = report.failed_ids + report.unfinished_ids
    if undone:
        if report.failed_out:
            lines.append(
                f"  retry them  {_plural(undone, 'ID')} written to {report.failed_out}; "
                f"run again with --ids {report.failed_out}"
            )
        else:
            lines.append("  retry them  pass --failed-out FILE to get their IDs in a file")
    return lines
