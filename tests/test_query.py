"""Event types and time windows are checked and normalised before any request."""

from __future__ import annotations

import datetime as dt

import pytest

from explorium_events import ConfigurationError, EventType
from explorium_events._query import build_query, older_than_retention


def test_default_is_all_three_types() -> None:
    """No event_types means every known type."""
    assert build_query(None, None, None).event_types == tuple(kind.value for kind in EventType)


def test_types_accept_enum_and_strings_and_dedupe() -> None:
    """EventType members and their string values mix, repeats go."""
    query = build_query(
        [EventType.PROSPECT_CHANGED_ROLE, "prospect_changed_role", " PROSPECT_CHANGED_COMPANY "],
        None,
        None,
    )
    assert query.event_types == ("prospect_changed_role", "prospect_changed_company")


@pytest.mark.parametrize(
    ("types", "match"), [(["prospect_got_lunch"], "unknown event type"), ([], "empty")]
)
def test_bad_types_are_named(types: list[str], match: str) -> None:
    """An unknown or empty event type list is an error naming the problem."""
    with pytest.raises(ConfigurationError, match=match):
        build_query(types, None, None)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("2026-09-01", "2026-09-01"),
        (dt.date(2026, 9, 1), "2026-09-01"),
        ("2026-09-01T10:03:03.050Z", "2026-09-01T10:03:03.050000+00:00"),
        (
            dt.datetime(2026, 9, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2026-09-01T10:00:00+00:00",
        ),
        (dt.datetime(2026, 9, 1, 12), "2026-09-01T12:00:00+00:00"),
    ],
)
def test_timestamps_accept_str_date_and_datetime(value: object, wire: str) -> None:
    """Dates stay dates; datetimes go out in UTC; naive ones are read as UTC."""
    assert build_query(None, value, None).timestamp_from == wire  # type: ignore[arg-type]


def test_unparseable_date_and_reversed_window_are_errors() -> None:
    """A bad date names the value; from after to is refused."""
    with pytest.raises(ConfigurationError, match="'yesterday'"):
        build_query(None, "yesterday", None)
    with pytest.raises(ConfigurationError, match="after"):
        build_query(None, "2026-10-02", "2026-10-01")


def test_window_older_than_three_months_is_detected() -> None:
    """A window that ends before the API's 3 months of retention is flagged."""
    now = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    assert older_than_retention(build_query(None, None, "2026-08-01"), now=now)
    assert not older_than_retention(build_query(None, None, "2026-11-01"), now=now)
    assert not older_than_retention(build_query(None, "2020-01-01", None), now=now)
