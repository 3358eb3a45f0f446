"""Parse the ``timestamp_from`` / ``timestamp_to`` strings into exact bounds.

Bounds are integer microseconds since the Unix epoch, both inclusive, so that
comparisons are exact and no datetime arithmetic can overflow at year 1 or 9999.

Accepted: a date ``YYYY-MM-DD``, or a date and a time (``T``, ``t`` or a space
between them) with optional seconds, fraction and offset (``Z``, ``z``,
``+HH:MM``, ``+HHMM``, ``+HH``), as ISO 8601 and RFC 3339 write them. A datetime
without an offset is taken as UTC. A leap second (``:60``) is read as the first
instant of the next minute.

A date as ``timestamp_from`` means the start of that day (UTC); as
``timestamp_to`` it means the whole of that day, up to its last microsecond.

This is the server's parser, kept apart from the client's (``explorium_events._query``,
which the library and the command line share) on purpose: it mirrors what the real API
accepts (RFC 3339 forms such as a space or ``t`` separator, ``+HHMM``, a leap second)
so that the emulator answers a request as the API would, whatever the client sent.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["TimestampError", "format_event_time", "parse_bound", "to_micros"]

_EPOCH = dt.datetime(1970, 1, 1)
_DAY_US = 86_400_000_000
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})\Z", re.ASCII)
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})"
    r"(?::(\d{2})(?:[.,](\d+))?)?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?\Z",
    re.ASCII,
)


class TimestampError(ValueError):
    """The string is neither an ISO 8601 datetime nor a ``YYYY-MM-DD`` date."""


def to_micros(moment: dt.datetime) -> int:
    """Return an aware datetime (naive: taken as UTC) as microseconds since the epoch."""
    offset = moment.utcoffset() or dt.timedelta(0)
    naive = moment.replace(tzinfo=None)
    return (naive - _EPOCH) // dt.timedelta(microseconds=1) - offset // dt.timedelta(microseconds=1)


def format_event_time(micros: int) -> str:
    """Format epoch microseconds like the API does: ``2024-07-01T00:00:00+00:00``."""
    moment = dt.datetime.fromtimestamp(micros // 1_000_000, dt.UTC)
    return moment.isoformat()


def parse_bound(value: str, *, upper: bool) -> int:
    """Parse a timestamp filter into an inclusive bound in epoch microseconds.

    ``upper`` says whether it is ``timestamp_to``: a bare date then covers its whole day.

    Raises:
        TimestampError: the string is not a datetime or date in a supported format.
    """
    match = _DATE.match(value)
    if match is not None:
        day = _make(match.group(1), match.group(2), match.group(3))
        start = to_micros(day)
        return start + _DAY_US - 1 if upper else start
    match = _DATETIME.match(value)
    if match is None:
        raise TimestampError(value)
    year, month, day_, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    leap = second == "60"
    moment = _make(
        year,
        month,
        day_,
        hour,
        minute,
        "59" if leap else (second or "0"),
        (fraction or "")[:6].ljust(6, "0"),
    )
    micros = to_micros(moment) + (1_000_000 if leap else 0)
    if sign is not None and zulu is None:
        hours, minutes = int(off_h), int(off_m or "0")
        if hours > 23 or minutes > 59:
            raise TimestampError(value)
        offset_us = (hours * 3600 + minutes * 60) * 1_000_000
        micros += -offset_us if sign == "+" else offset_us
    return micros


def _make(
    year: str,
    month: str,
    day: str,
    hour: str = "0",
    minute: str = "0",
    second: str = "0",
    micro: str = "0",
) -> dt.datetime:
    try:
        return dt.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), int(micro)
        )
    except ValueError as exc:
        raise TimestampError(f"{year}-{month}-{day}") from exc
