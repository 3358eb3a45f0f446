"""Deterministic synthetic events: a pure function of the prospect ID, the seed and ``now``.

Every number comes from a BLAKE2b hash of the seed, the prospect ID and a label,
never from a random generator, so the same ID always has the same events and
``expected_events`` can say exactly what the server will send.

About 35% of prospects have no event; most others have 1 to 3, a few up to 5.
Events fall at whole seconds in the 90 days before ``now`` (anniversaries at
midnight UTC of their day). Event objects keep
the key order of the reference example: ``event_name``, ``event_time``,
``event_id``, ``data``, ``prospect_id``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterable
from typing import Any

from ._config import EmulatorConfig
from ._timestamps import format_event_time, parse_bound, to_micros
from ._validation import EVENT_TYPES

__all__ = [
    "HISTORY_DAYS",
    "events_for_prospect",
    "expected_events",
    "filtered_newest_first",
    "make_prospect_ids",
    "select_events",
]

HISTORY_DAYS = 90


def make_prospect_ids(count: int, seed: int = 0) -> list[str]:
    """``count`` made-up, valid, distinct prospect IDs; the same ones for the same seed.

    Any 40-hex-digit ID is a prospect to the emulator (most have events, about 35% have
    none); these are the IDs ``explorium-events demo`` pulls.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, not {count!r}")
    return [
        hashlib.sha1(f"explorium-events-demo-{seed}-{number}".encode()).hexdigest()
        for number in range(count)
    ]


_HISTORY_SECONDS = HISTORY_DAYS * 86_400

_FIRST_NAMES = (
    "Ava", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kemi", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara",
    "Uma", "Victor", "Wen", "Yara", "Zoe",
)  # fmt: skip
_LAST_NAMES = (
    "Adler", "Brooks", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
    "Ito", "Jensen", "Kowalski", "Levi", "Moreau", "Nakamura", "Okafor", "Patel",
    "Quist", "Rossi", "Silva", "Tanaka", "Ueda", "Varga", "Weber", "Young", "Zhou",
)  # fmt: skip
_COMPANY_STEMS = (
    "Acme", "Blue", "Cedar", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iris",
    "Juniper", "Kite", "Lumen", "Maple", "Nimbus", "Orbit", "Pioneer", "Quartz", "Ridge",
    "Summit", "Tidal", "Umbra", "Vertex", "Willow", "Zenith",
)  # fmt: skip
_COMPANY_TAILS = (
    "Analytics", "Bio", "Capital", "Dynamics", "Foods", "Health", "Labs", "Logistics",
    "Media", "Networks", "Robotics", "Systems", "Technologies", "Ventures",
)  # fmt: skip
_TITLE_TEMPLATES = (
    "{} Manager", "Senior {} Manager", "{} Specialist", "Lead {} Specialist", "Head Of {}",
    "Director Of {}", "Vice President Of {}", "{} Associate",
)  # fmt: skip
_FUNCTIONS = (
    "Business Development", "Customer Success", "Data Science", "Engineering", "Finance",
    "Marketing", "Operations", "Product", "Recruiting", "Sales",
)  # fmt: skip
# Cumulative percentages: 35% of prospects have no event, then 1, 2, 3, 4, 5 events.
_COUNT_THRESHOLDS = (35, 62, 82, 95, 98, 100)
# Cumulative percentages of the three event types among generated events.
_TYPE_THRESHOLDS = ((40, "prospect_changed_company"), (75, "prospect_changed_role"))


def _hash(seed: int, *parts: object) -> bytes:
    text = "|".join(str(part) for part in (seed, *parts))
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _number(seed: int, *parts: object) -> int:
    return int.from_bytes(_hash(seed, *parts), "big")


def _pick(options: tuple[str, ...], seed: int, *parts: object) -> str:
    return options[_number(seed, *parts) % len(options)]


def _company(seed: int, *parts: object) -> tuple[str, str]:
    stem = _pick(_COMPANY_STEMS, seed, *parts, "stem")
    tail = _pick(_COMPANY_TAILS, seed, *parts, "tail")
    name = f"{stem} {tail}"
    # The id follows from the name, so one company always has one id.
    return name, _hash(seed, "company", name).hex()


def _title(seed: int, *parts: object) -> str:
    template = _pick(_TITLE_TEMPLATES, seed, *parts, "template")
    return template.format(_pick(_FUNCTIONS, seed, *parts, "function"))


def _person(seed: int, prospect_id: str) -> tuple[str, str]:
    first = _pick(_FIRST_NAMES, seed, prospect_id, "first")
    last = _pick(_LAST_NAMES, seed, prospect_id, "last")
    handle = f"{first}-{last}-{prospect_id[:8]}".lower()
    return f"{first} {last}", f"https://www.linkedin.com/in/{handle}"


def _event_count(seed: int, prospect_id: str) -> int:
    draw = _number(seed, prospect_id, "count") % 100
    return next(count for count, limit in enumerate(_COUNT_THRESHOLDS) if draw < limit)


def _event_type(seed: int, prospect_id: str, index: int) -> str:
    draw = _number(seed, prospect_id, "type", index) % 100
    for limit, name in _TYPE_THRESHOLDS:
        if draw < limit:
            return name
    return "prospect_job_start_anniversary"


def _event_data(
    seed: int, prospect_id: str, event_type: str, index: int, event_time: str
) -> dict[str, Any]:
    key = (prospect_id, event_type, index)
    data: dict[str, Any] = {"event_name": event_type}
    if event_type == "prospect_changed_company":
        current_name, current_id = _company(seed, *key, "current")
        previous_name, previous_id = _company(seed, *key, "previous")
        if previous_name == current_name:
            previous_name, previous_id = _company(seed, *key, "previous", "again")
            if previous_name == current_name:
                previous_name = f"{previous_name} Holdings"
                previous_id = _hash(seed, "company", previous_name).hex()
        current_title = _title(seed, *key, "current")
        # Half the movers keep their title, as in the reference example.
        same_title = _number(seed, *key, "same_title") % 2 == 0
        data |= {
            "current_company_name": current_name,
            "current_company_id": current_id,
            "current_job_title": current_title,
            "previous_company_name": previous_name,
            "previous_company_id": previous_id,
            "previous_job_title": current_title if same_title else _title(seed, *key, "prev"),
        }
    elif event_type == "prospect_changed_role":
        company_name, company_id = _company(seed, *key, "current")
        current_title = _title(seed, *key, "current")
        previous_title = _title(seed, *key, "previous")
        if previous_title == current_title:
            previous_title = _title(seed, *key, "previous", "again")
            if previous_title == current_title:
                previous_title = f"Acting {current_title}"
        data |= {
            "current_job_title": current_title,
            "previous_job_title": previous_title,
            "current_company_name": company_name,
            "current_company_id": company_id,
        }
        # An older real example lacks the previous company: about 1 in 3 lack it here.
        if _number(seed, *key, "has_previous") % 3:
            data |= {"previous_company_name": company_name, "previous_company_id": company_id}
    else:
        full_name, linkedin_url = _person(seed, prospect_id)
        company_name, _ = _company(seed, *key, "current")
        data |= {
            "full_name": full_name,
            "company_name": company_name,
            "job_title": _title(seed, *key, "current"),
            "years_at_company": 1 + _number(seed, *key, "years") % 20,
            "job_anniversary_date": event_time,
            "linkedin_url": linkedin_url,
        }
    return data


def events_for_prospect(
    seed: int, now_us: int, prospect_id: str
) -> list[tuple[int, dict[str, Any]]]:
    """Return every event of one prospect as ``(event_time_us, event)`` pairs, unsorted.

    The events are the caller's own: changing one changes no later answer.
    """
    return [
        (time_us, {**event, "data": dict(event["data"])})
        for time_us, event in _history(seed, now_us, prospect_id)
    ]


# Making a prospect's history takes dozens of BLAKE2b hashes (about 60 us); an emulator
# asked for the same prospects again (a benchmark's rounds, a test's second pull, a
# resumed pull) would spend its time there rather than answering, and on a small machine
# that is the client's time too. The cache holds the events, which nobody outside sees:
# events_for_prospect hands out copies.
_HISTORIES_KEPT = 2**14


@functools.lru_cache(maxsize=_HISTORIES_KEPT)
def _history(seed: int, now_us: int, prospect_id: str) -> tuple[tuple[int, dict[str, Any]], ...]:
    newest_second = now_us // 1_000_000 - 1
    events: list[tuple[int, dict[str, Any]]] = []
    for index in range(_event_count(seed, prospect_id)):
        event_type = _event_type(seed, prospect_id, index)
        age = _number(seed, prospect_id, "age", index) % _HISTORY_SECONDS
        second = newest_second - age
        if event_type == "prospect_job_start_anniversary":
            # An anniversary is a day, not a moment: midnight of it, like the API's
            # dates; the next midnight if that one falls before the 90 days.
            midnight = second - second % 86_400
            second = midnight if midnight > newest_second - _HISTORY_SECONDS else midnight + 86_400
        time_us = second * 1_000_000
        event_time = format_event_time(time_us)
        events.append(
            (
                time_us,
                {
                    "event_name": event_type,
                    "event_time": event_time,
                    "event_id": _hash(seed, prospect_id, event_type, index).hex(),
                    "data": _event_data(seed, prospect_id, event_type, index, event_time),
                    "prospect_id": prospect_id,
                },
            )
        )
    return tuple(events)


def select_events(
    *,
    seed: int,
    now_us: int,
    prospect_ids: Iterable[str],
    event_types: Iterable[str],
    start_us: int | None,
    end_us: int | None,
) -> list[dict[str, Any]]:
    """Return the events of these prospects that pass the filters, newest first.

    Ties in time are broken by ``event_id``, ascending. Bounds are inclusive.
    """
    return filtered_newest_first(
        (
            pair
            for prospect_id in prospect_ids
            for pair in events_for_prospect(seed, now_us, prospect_id)
        ),
        event_types=event_types,
        start_us=start_us,
        end_us=end_us,
    )


def filtered_newest_first(
    pairs: Iterable[tuple[int, dict[str, Any]]],
    *,
    event_types: Iterable[str],
    start_us: int | None,
    end_us: int | None,
) -> list[dict[str, Any]]:
    """The events of ``(event_time_us, event)`` pairs that pass the filters, newest first.

    What every endpoint answers in: ties in time broken by ``event_id``, ascending; bounds
    inclusive.
    """
    wanted = frozenset(event_types)
    selected = [
        (time_us, event)
        for time_us, event in pairs
        if event["event_name"] in wanted
        and (start_us is None or time_us >= start_us)
        and (end_us is None or time_us <= end_us)
    ]
    selected.sort(key=lambda pair: pair[1]["event_id"])
    selected.sort(key=lambda pair: pair[0], reverse=True)
    return [event for _, event in selected]


def _bound(value: str | dt.datetime | dt.date | None, *, upper: bool) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_bound(value, upper=upper)
    if isinstance(value, dt.datetime):
        return to_micros(value)
    return parse_bound(value.isoformat(), upper=upper)


def expected_events(
    prospect_ids: Iterable[str],
    *,
    config: EmulatorConfig,
    event_types: Iterable[str] | None = None,
    timestamp_from: str | dt.datetime | dt.date | None = None,
    timestamp_to: str | dt.datetime | dt.date | None = None,
) -> list[dict[str, Any]]:
    """Return exactly the events the emulator serves for this request, without faults.

    A pure function: the same arguments give the same list, newest first (ties by
    ``event_id``). Filters take what the API takes: a string as on the wire, or a
    ``datetime`` (naive means UTC) or ``date``; a date as ``timestamp_to`` covers
    its whole day. ``event_types=None`` means all three prospect event types.

    With ``config.now=None`` the anchor is midnight UTC today, read at call time:
    set ``now`` explicitly when a test may run across midnight.

    Raises:
        ValueError: an unknown event type or an unparseable timestamp.
    """
    types = tuple(EVENT_TYPES if event_types is None else event_types)
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event types {unknown}; expected some of {list(EVENT_TYPES)}")
    return select_events(
        seed=config.seed,
        now_us=to_micros(config.anchor()),
        prospect_ids=dict.fromkeys(prospect_ids),
        event_types=types,
        start_us=_bound(timestamp_from, upper=False),
        end_us=_bound(timestamp_to, upper=True),
    )
