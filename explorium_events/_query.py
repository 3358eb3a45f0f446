"""What is asked of every ID in a pull: event types and time window, checked up front."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ._entity import PROSPECT, Entity
from ._errors import ConfigurationError

Timestamp = str | dt.date | dt.datetime
RETENTION = dt.timedelta(days=90)


@dataclass(frozen=True, slots=True)
class Query:
    """Event types and window, normalised; hashable, so equal queries can share a request."""

    event_types: tuple[str, ...]
    timestamp_from: str | None = None
    timestamp_to: str | None = None


def _parse_event_types(
    event_types: Iterable[StrEnum | str] | None, entity: Entity[Any]
) -> tuple[str, ...]:
    if event_types is None:
        return entity.event_types
    if isinstance(event_types, str):
        event_types = [event_types]
    chosen: list[str] = []
    for kind in event_types:
        name = kind.value if isinstance(kind, StrEnum) else str(kind).strip().lower()
        if name not in entity.event_types:
            known = ", ".join(entity.event_types)
            raise ConfigurationError(
                f"unknown event type {kind!r}; the known {entity.name} event types are {known}"
            )
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise ConfigurationError("event_types is empty: name at least one event type")
    return tuple(chosen)


UTC_RANGE = "0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z"


def utc_range_problem(moment: dt.datetime) -> str | None:
    """None when an aware ``moment`` can be written in UTC, else the rule it breaks.

    The request carries UTC times; near the ends of the calendar a UTC offset pushes a
    time past year 9999 or before year 1, where Python raises OverflowError.
    """
    try:
        moment.astimezone(dt.UTC)
    except OverflowError:
        return f"is outside the range a time in UTC can take ({UTC_RANGE})"
    return None


def parse_timestamp(value: Timestamp | None, *, name: str | None) -> dt.datetime | dt.date | None:
    """A date or an aware datetime (naive times are read as UTC), or a clear error.

    The error names the value as ``name=value`` (``timestamp_from='...'``), or as the
    value alone when ``name`` is None (the command line, where argparse names the flag).
    """
    if value is None:
        return None
    label = "" if name is None else f"{name}="
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return dt.date.fromisoformat(text)
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ConfigurationError(
                f"{label}{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 datetime "
                "(e.g. 2026-09-01T00:00:00Z)"
            ) from None
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        problem = utc_range_problem(moment)
        if problem is not None:
            raise ConfigurationError(f"{label}{value.isoformat()!r} {problem}")
        return moment
    if isinstance(value, dt.date):
        return value
    raise ConfigurationError(f"{name}={value!r}: expected a str, date or datetime")


def _as_wire(value: dt.datetime | dt.date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value.isoformat()


def start_of(value: dt.datetime | dt.date) -> dt.datetime:
    """When a date or datetime begins, as an aware datetime (a date: its midnight in UTC)."""
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def build_query(
    event_types: Iterable[StrEnum | str] | None,
    timestamp_from: Timestamp | None,
    timestamp_to: Timestamp | None,
    *,
    entity: Entity[Any] = PROSPECT,
) -> Query:
    """The normalised query, or a ConfigurationError naming the bad value.

    Event types are checked against ``entity``'s (a prospect's by default); None means
    all of them.
    """
    start = parse_timestamp(timestamp_from, name="timestamp_from")
    end = parse_timestamp(timestamp_to, name="timestamp_to")
    if start is not None and end is not None and start_of(start) > start_of(end):
        raise ConfigurationError(
            f"timestamp_from ({_as_wire(start)}) is after timestamp_to ({_as_wire(end)})"
        )
    return Query(
        event_types=_parse_event_types(event_types, entity),
        timestamp_from=_as_wire(start),
        timestamp_to=_as_wire(end),
    )


def older_than_retention(query: Query, *, now: dt.datetime) -> bool:
    """Whether the whole window lies before the 3 months the API keeps."""
    if query.timestamp_to is None:
        return False
    end = parse_timestamp(query.timestamp_to, name="timestamp_to")
    assert end is not None
    # A date as the end means that whole day. The day is taken off the other side, so that
    # the last date of the calendar (9999-12-31) does not overflow.
    whole_day = dt.timedelta(days=1) if not isinstance(end, dt.datetime) else dt.timedelta(0)
    return start_of(end) < now - RETENTION - whole_day
