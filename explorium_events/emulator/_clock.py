"""The emulator's clock, and the events that appear for each prospect as it moves.

The clock starts at the emulator's anchor (``config.now``, or midnight UTC of the day
the app was made): its *origin*. Until it is moved the emulator serves exactly what
it always did (``_data.events_for_prospect``: a history dated in the 90 days before
the origin). Once it is set or advanced, ``now`` is a fixed moment and the events
served are those a real service would hold at ``now``:

- the history, minus what fell out of the 3-month retention (``event_time`` before
  ``now - 90 days``);
- plus a *timeline*: events that became visible after the origin, up to ``now``. Time
  is cut into absolute 7-day periods; each period of each prospect holds 0, 1 or 2
  events, every number drawn from a hash of (seed, prospect ID, period), so the same
  prospect has the same timeline in every emulator with that seed. Like the real
  API's (FACTS.md), these are awkward on purpose: most job changes are dated the 1st
  of their month (a coarse ``event_time`` up to a month before they become visible,
  plus up to 3 days of delay), and anniversaries are visible up to 7 days before
  their date (an ``event_time`` in the future).

The clock moves from Python (``Emulator.clock``, the pytest plugin's
``RunningEmulator.advance``), from ``serve --start-time``, and over
``POST /_emulator/clock`` with ``{"advance": "7d"}`` or ``{"set": "2026-08-01T00:00:00Z"}``
(``GET`` reads it). Like the other ``/_emulator`` routes it needs no key and is served
only where the emulator listens. It is the emulator's one clock: however far it moves
forward (``skipped``), the rate windows age by as much, so ``advance(61s)`` also ends a
60-second window (the windows otherwise run on the wall clock, ``config.clock``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from typing import Any

from ._config import EmulatorConfig
from ._data import (
    _HISTORY_SECONDS,
    _event_data,
    _hash,
    _number,
    events_for_prospect,
    filtered_newest_first,
)
from ._timestamps import format_event_time, parse_bound, to_micros
from ._validation import EVENT_TYPES

__all__ = [
    "MAX_LATE_SECONDS",
    "PERIOD_SECONDS",
    "RETENTION_SECONDS",
    "EmulatorClock",
    "expected_events_at",
    "parse_duration",
    "served_events",
]

RETENTION_SECONDS = _HISTORY_SECONDS  # 90 days: what the service keeps, by event_time
PERIOD_SECONDS = 7 * 86_400
_DAY = 86_400
_REPORT_DELAY = 3 * _DAY  # a change is visible up to 3 days after it happened
_ANNOUNCED = 7 * _DAY  # an anniversary is visible up to 7 days before its date
# The most a visible event's event_time lags behind the moment it became visible: a
# change on the 31st dated the 1st of its month, seen 3 days later.
MAX_LATE_SECONDS = 31 * _DAY + _REPORT_DELAY
_US = 1_000_000
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*\Z", re.ASCII | re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": _DAY, "w": 7 * _DAY}


def parse_duration(text: str) -> dt.timedelta:
    """``"7d"``, ``"6h"``, ``"30m"``, ``"90s"``, ``"2w"`` as a timedelta.

    Raises:
        ValueError: anything else, naming the value and the rule.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 90s, 30m, 6h, 7d or 2w")
    return dt.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])


class EmulatorClock:
    """The emulator's "now": the origin until moved, then wherever it was set or advanced."""

    def __init__(self, origin: dt.datetime) -> None:
        self._origin_us = to_micros(origin)
        self._now_us: int | None = None  # None: never moved
        self._skipped_us = 0  # every forward move, summed: what the rate windows skip

    @property
    def moved(self) -> bool:
        """Whether the clock was ever set or advanced."""
        return self._now_us is not None

    @property
    def origin(self) -> dt.datetime:
        """Where the clock started: the anchor of the emulator's history."""
        return _datetime(self._origin_us)

    @property
    def now(self) -> dt.datetime:
        """The emulator's present moment."""
        return _datetime(self.now_us)

    @property
    def skipped(self) -> float:
        """Seconds the clock was moved forward in all (a move back or a restart takes
        none off): the rate windows, which run on the wall clock, skip as much."""
        return self._skipped_us / _US

    @property
    def origin_us(self) -> int:
        return self._origin_us

    @property
    def now_us(self) -> int:
        return self._origin_us if self._now_us is None else self._now_us

    def set(self, moment: dt.datetime) -> None:
        """Move the clock to ``moment`` (aware; not before the origin).

        Raises:
            ValueError: a naive moment, or one before the origin.
        """
        if moment.utcoffset() is None:
            raise ValueError("the clock takes an aware datetime (for example tzinfo=datetime.UTC)")
        micros = to_micros(moment)
        if micros < self._origin_us:
            raise ValueError(
                f"{moment.isoformat()} is before the clock's origin {self.origin.isoformat()}: "
                "start the emulator earlier (serve --start-time) to go there"
            )
        self._move_to(micros)

    def _move_to(self, micros: int) -> None:
        self._skipped_us += max(0, micros - self.now_us)
        self._now_us = micros

    def restart(self, origin: dt.datetime) -> None:
        """Start again at ``origin``, never moved (``Emulator.configure(now=...)``)."""
        self._origin_us = to_micros(origin)
        self._now_us = None

    def advance(self, by: dt.timedelta) -> None:
        """Move the clock forward by ``by`` (not backward).

        Raises:
            ValueError: a negative duration.
        """
        if by < dt.timedelta(0):
            raise ValueError(f"the clock only moves forward, not by {by}")
        self._move_to(self.now_us + by // dt.timedelta(microseconds=1))

    def as_dict(self) -> dict[str, Any]:
        """What ``GET /_emulator/clock`` answers."""
        return {
            "now": self.now.isoformat(),
            "origin": self.origin.isoformat(),
            "moved": self.moved,
        }

    def apply(self, body: object) -> None:
        """Apply a ``POST /_emulator/clock`` body: ``{"advance": "7d"}`` or ``{"set": "..."}``.

        Raises:
            ValueError: any other body, naming what is expected.
        """
        if isinstance(body, dict) and set(body) == {"advance"} and isinstance(body["advance"], str):
            self.advance(parse_duration(body["advance"]))
        elif isinstance(body, dict) and set(body) == {"set"} and isinstance(body["set"], str):
            try:
                micros = parse_bound(body["set"], upper=False)
            except ValueError:
                raise ValueError(f"{body['set']!r} is not an ISO 8601 datetime") from None
            self.set(_datetime(micros))
        else:
            raise ValueError(
                'send {"advance": "7d"} (s, m, h, d or w) or {"set": "2026-08-01T00:00:00Z"}'
            )

    def __repr__(self) -> str:
        return f"<EmulatorClock now={self.now.isoformat()} origin={self.origin.isoformat()}>"


def _datetime(micros: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)


def _first_of_month(second: int) -> int:
    day = dt.datetime.fromtimestamp(second, dt.UTC)
    return int(dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC).timestamp())


def timeline_events(
    seed: int, prospect_id: str, start_s: int, end_s: int
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """``(event_time_s, visible_s, event)`` of the prospect's timeline visible in (start, end]."""
    first = (start_s - _REPORT_DELAY) // PERIOD_SECONDS
    last = (end_s + _ANNOUNCED) // PERIOD_SECONDS
    for period in range(first, last + 1):
        draw = _number(seed, prospect_id, "timeline-count", period) % 100
        count = 0 if draw < 78 else 1 if draw < 96 else 2
        for index in range(count):
            key = (prospect_id, "timeline", period, index)
            happened = period * PERIOD_SECONDS + _number(seed, *key, "at") % PERIOD_SECONDS
            kind = _number(seed, *key, "type") % 100
            if kind < 75:
                event_type = "prospect_changed_company" if kind < 40 else "prospect_changed_role"
                coarse = _number(seed, *key, "coarse") % 100 < 60
                event_time = _first_of_month(happened) if coarse else happened
                visible = happened + _number(seed, *key, "delay") % (_REPORT_DELAY + 1)
            else:
                event_type = "prospect_job_start_anniversary"
                event_time = happened - happened % _DAY
                visible = event_time - _number(seed, *key, "announced") % (_ANNOUNCED + 1)
            if not start_s < visible <= end_s:
                continue
            text = format_event_time(event_time * _US)
            # A number unlike any history index (0 to 4), so the data differs from those.
            data_index = 1000 + period * 4 + index
            yield (
                event_time,
                visible,
                {
                    "event_name": event_type,
                    "event_time": text,
                    "event_id": _hash(seed, *key).hex(),
                    "data": _event_data(seed, prospect_id, event_type, data_index, text),
                    "prospect_id": prospect_id,
                },
            )


def served_events(
    *,
    seed: int,
    clock: EmulatorClock,
    prospect_ids: Iterable[str],
    event_types: Iterable[str],
    start_us: int | None,
    end_us: int | None,
) -> list[dict[str, Any]]:
    """The events the emulator serves at the clock's ``now``, filtered, newest first."""
    now_us = clock.now_us
    oldest_us = now_us - RETENTION_SECONDS * _US
    moved = clock.moved
    found: list[tuple[int, dict[str, Any]]] = []
    for prospect_id in prospect_ids:
        history = events_for_prospect(seed, clock.origin_us, prospect_id)
        if not moved:
            found.extend(history)
            continue
        found.extend(pair for pair in history if oldest_us <= pair[0] <= now_us)
        found.extend(
            (time_s * _US, event)
            for time_s, _, event in timeline_events(
                seed, prospect_id, clock.origin_us // _US, now_us // _US
            )
            if time_s * _US >= oldest_us
        )
    return filtered_newest_first(found, event_types=event_types, start_us=start_us, end_us=end_us)


def expected_events_at(
    prospect_ids: Iterable[str],
    *,
    config: EmulatorConfig,
    at: dt.datetime,
    event_types: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Exactly what an emulator made with ``config`` serves once its clock reads ``at``.

    A pure function, newest first: the history (anchored at ``config.anchor()``) still
    within retention, plus the timeline visible by ``at``. ``at`` equal to the anchor
    gives what ``expected_events`` gives.
    """
    clock = EmulatorClock(config.anchor())
    if to_micros(at) != clock.origin_us:
        clock.set(at)
    return served_events(
        seed=config.seed,
        clock=clock,
        prospect_ids=dict.fromkeys(prospect_ids),
        event_types=tuple(EVENT_TYPES if event_types is None else event_types),
        start_us=None,
        end_us=None,
    )
