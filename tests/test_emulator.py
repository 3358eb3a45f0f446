"""The emulator behaves like ``POST /v1/prospects/events`` as documented, faults included."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import math
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

import explorium_events.emulator as emulator_pkg
from explorium_events.emulator import (
    STATS_KEY,
    Emulator,
    EmulatorConfig,
    EmulatorStats,
    create_app,
    expected_events,
    serve_forever,
)

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
KEY = "test-key"
PATH = "/v1/prospects/events"
ALL_TYPES = ["prospect_changed_role", "prospect_changed_company", "prospect_job_start_anniversary"]
HEX32 = re.compile(r"[a-f0-9]{32}\Z")
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def ids(count: int, start: int = 0) -> list[str]:
    """Return ``count`` distinct, well-formed prospect IDs."""
    return [hashlib.sha1(f"prospect-{i}".encode()).hexdigest() for i in range(start, start + count)]


def body(prospect_ids: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """Return a valid request body, with overrides."""
    return {"prospect_ids": prospect_ids or ids(3), "event_types": ALL_TYPES, **extra}


class FakeClock:
    """A wall clock that moves only when told to."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]
    json: Any
    text: str


Start = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Start emulators (anchored to NOW unless told otherwise) that stop after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def _start(**overrides: Any) -> Emulator:
            config = EmulatorConfig(**{"now": NOW, **overrides})
            return await stack.enter_async_context(Emulator(config))

        yield _start


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client session."""
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession,
    emu: Emulator,
    payload: Any = None,
    *,
    key: str | None = KEY,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """POST to the events endpoint and read the whole answer."""
    all_headers = dict(headers or {})
    if key is not None:
        all_headers.setdefault("api_key", key)
    data = raw
    if raw is None:
        data = json.dumps(body() if payload is None else payload).encode()
        all_headers.setdefault("Content-Type", "application/json")
    async with http.post(emu.url + PATH, data=data, headers=all_headers) as resp:
        text = await resp.text()
        parsed = await resp.json(content_type=None) if text else None
        return Reply(resp.status, dict(resp.headers), parsed, text)


def detail_of(reply: Reply) -> list[tuple[tuple[Any, ...], str]]:
    """Return the 422 details as (loc, type) pairs."""
    assert reply.status == 422, reply.text
    return [(tuple(item["loc"]), item["type"]) for item in reply.json["detail"]]


# --- 1. validation -----------------------------------------------------------------


async def test_valid_request_answers_200_with_exactly_the_expected_events(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """A valid request gets 200 and the events that expected_events predicts."""
    emu = await start()
    reply = await post(http, emu, body(ids(40)))
    assert reply.status == 200
    assert reply.json["output_events"] == expected_events(ids(40), config=emu.config)
    assert reply.json["output_events"]


async def test_unknown_key_is_rejected_as_extra_forbidden(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """A key outside the schema (additionalProperties false) is a 422 naming that key."""
    emu = await start()
    reply = await post(http, emu, body(page=2))
    assert detail_of(reply) == [(("body", "page"), "extra_forbidden")]


async def test_missing_required_fields_are_each_reported(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """An empty object names both required fields as missing."""
    emu = await start()
    reply = await post(http, emu, {})
    assert detail_of(reply) == [
        (("body", "prospect_ids"), "missing"),
        (("body", "event_types"), "missing"),
    ]
    assert all(item["msg"] == "Field required" for item in reply.json["detail"])


@pytest.mark.parametrize(("count", "error"), [(0, "too_short"), (41, "too_long")])
async def test_prospect_id_count_outside_1_to_40_is_rejected(
    start: Start, http: aiohttp.ClientSession, count: int, error: str
) -> None:
    """Zero or 41 prospect IDs is a 422 on the list itself."""
    emu = await start()
    reply = await post(http, emu, {"prospect_ids": ids(count), "event_types": ALL_TYPES})
    assert detail_of(reply) == [(("body", "prospect_ids"), error)]


async def test_forty_prospect_ids_are_accepted(start: Start, http: aiohttp.ClientSession) -> None:
    """Exactly 40 IDs is the documented maximum and is accepted."""
    emu = await start()
    assert (await post(http, emu, body(ids(40)))).status == 200


async def test_duplicate_prospect_id_is_reported_at_its_second_index(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """IDs must be unique: the repeat is named by its own index."""
    emu = await start()
    first, second = ids(2)
    reply = await post(http, emu, body([first, second, first]))
    assert detail_of(reply) == [(("body", "prospect_ids", 2), "unique_items")]


@pytest.mark.parametrize(
    "bad_id",
    [
        "A" * 40,  # uppercase
        "a" * 39,
        "a" * 41,
        "g" * 40,  # not hex
        " " + "a" * 39,
        "a" * 39 + "\n",
        "",
    ],
)
async def test_prospect_id_not_matching_the_pattern_is_rejected(
    start: Start, http: aiohttp.ClientSession, bad_id: str
) -> None:
    """Each ID must match ^[a-f0-9]{40}$ exactly."""
    emu = await start()
    reply = await post(http, emu, body([ids(1)[0], bad_id]))
    assert detail_of(reply) == [(("body", "prospect_ids", 1), "string_pattern_mismatch")]


async def test_unknown_and_empty_event_types_are_rejected(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """An unknown event type is an enum error at its index; an empty list is too short."""
    emu = await start()
    unknown = await post(
        http, emu, {"prospect_ids": ids(1), "event_types": ["prospect_changed_role", "new_office"]}
    )
    assert detail_of(unknown) == [(("body", "event_types", 1), "enum")]
    empty = await post(http, emu, {"prospect_ids": ids(1), "event_types": []})
    assert detail_of(empty) == [(("body", "event_types"), "too_short")]


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "",
        "2024-13-01",
        "2024-02-30",
        "2024/12/01",
        "2024-12-01T25:00:00Z",
        "2024-12-01T10:00:00+25:00",
        "2024-12-01T10:00:00 UTC",
        "20241201",
        "\u0662\u0660\u0662\u0664-12-01",  # Arabic-Indic digits are not ISO 8601
    ],
)
async def test_unparseable_timestamps_are_rejected(
    start: Start, http: aiohttp.ClientSession, value: str
) -> None:
    """timestamp_from and timestamp_to must be an ISO 8601 datetime or YYYY-MM-DD."""
    emu = await start()
    reply = await post(http, emu, body(timestamp_from=value, timestamp_to=value))
    assert detail_of(reply) == [
        (("body", "timestamp_from"), "datetime_parsing"),
        (("body", "timestamp_to"), "datetime_parsing"),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-01T10:03:03.050Z",
        "2024-01-01T10:03:03+00:00",
        "2024-01-01T12:03:03.123456+02:00",
        "2024-01-01T10:03:03-0500",
        "2024-01-01t10:03:03z",
        "2024-01-01 10:03",
        "2024-01-01T10:03:03",
        "2016-12-31T23:59:60Z",
        "2024-01-01",
        None,
    ],
)
async def test_documented_timestamp_forms_and_null_are_accepted(
    start: Start, http: aiohttp.ClientSession, value: str | None
) -> None:
    """ISO 8601 datetimes with Z or an offset, naive ones, dates and null are all valid."""
    emu = await start()
    reply = await post(http, emu, body(timestamp_from=value, timestamp_to=value))
    assert reply.status == 200, reply.text


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"prospect_ids": "a" * 40, "event_types": ALL_TYPES},
            [(("body", "prospect_ids"), "list_type")],
        ),
        (
            {"prospect_ids": [7], "event_types": ALL_TYPES},
            [(("body", "prospect_ids", 0), "string_type")],
        ),
        (
            {"prospect_ids": ids(1), "event_types": {"a": 1}},
            [(("body", "event_types"), "list_type")],
        ),
        ({"prospect_ids": ids(1), "event_types": [None]}, [(("body", "event_types", 0), "enum")]),
        (body(ids(1), timestamp_from=20240101), [(("body", "timestamp_from"), "string_type")]),
        (body(ids(1), timestamp_to=True), [(("body", "timestamp_to"), "string_type")]),
        (body(ids(1), request_context=[1]), [(("body", "request_context"), "dict_type")]),
        (body(ids(1), entity_type="company"), [(("body", "entity_type"), "enum")]),
        (body(ids(1), entity_type=None), [(("body", "entity_type"), "enum")]),
    ],
)
async def test_wrong_json_types_and_entity_types_are_rejected(
    start: Start,
    http: aiohttp.ClientSession,
    payload: dict[str, Any],
    expected: list[tuple[tuple[Any, ...], str]],
) -> None:
    """A field of the wrong JSON type, or an entity_type not prospect/business, is a 422."""
    emu = await start()
    assert detail_of(await post(http, emu, payload)) == expected


@pytest.mark.parametrize("entity_type", ["prospect", "business"])
async def test_both_entity_types_and_an_opaque_request_context_are_accepted(
    start: Start, http: aiohttp.ClientSession, entity_type: str
) -> None:
    """entity_type may be prospect or business; request_context is any object or null."""
    emu = await start()
    reply = await post(
        http, emu, body(entity_type=entity_type, request_context={"anything": [1, {"x": None}]})
    )
    assert reply.status == 200


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"prospect_ids": [', [(("body", 18), "json_invalid")]),
        (b"not json", [(("body", 0), "json_invalid")]),
        (b"", [(("body",), "missing")]),
        (b"null", [(("body",), "missing")]),
        (b'["a"]', [(("body",), "model_attributes_type")]),
        (b'"text"', [(("body",), "model_attributes_type")]),
    ],
)
async def test_body_that_is_not_a_json_object_is_rejected(
    start: Start, http: aiohttp.ClientSession, raw: bytes, expected: list[Any]
) -> None:
    """A body that is not JSON, empty, or not an object is a 422 on the body."""
    emu = await start()
    assert detail_of(await post(http, emu, raw=raw)) == expected


async def test_oversized_body_is_413_with_rate_headers(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """A body over aiohttp's 1 MiB limit is refused with a 413 that still has the headers."""
    emu = await start()
    async with http.post(
        emu.url + PATH, data=io.BytesIO(b" " * (1024 * 1024 + 1)), headers={"api_key": KEY}
    ) as resp:
        reply = Reply(resp.status, dict(resp.headers), await resp.json(), "")
    assert reply.status == 413
    assert set(reply.json) == {"details", "correlation_id"}
    assert all(name in reply.headers for name in RATE_HEADERS)


async def test_every_problem_is_reported_in_one_answer(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """Validation collects all problems instead of stopping at the first."""
    emu = await start()
    good = ids(1)[0]
    payload = {
        "prospect_ids": [good, good.upper(), good, 3],
        "event_types": ["prospect_changed_role", "nope"],
        "timestamp_from": "soon",
        "entity_type": "person",
        "limit": 10,
    }
    reply = await post(http, emu, payload)
    assert set(detail_of(reply)) == {
        (("body", "limit"), "extra_forbidden"),
        (("body", "prospect_ids", 1), "string_pattern_mismatch"),
        (("body", "prospect_ids", 2), "unique_items"),
        (("body", "prospect_ids", 3), "string_type"),
        (("body", "event_types", 1), "enum"),
        (("body", "timestamp_from"), "datetime_parsing"),
        (("body", "entity_type"), "enum"),
    }
    assert all(isinstance(item["msg"], str) and item["msg"] for item in reply.json["detail"])


async def test_rejected_request_counts_nothing_as_fetched_or_against_the_window(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """A 422 adds no IDs to the stats and leaves the rate window untouched."""
    emu = await start(rate_limit=5, clock=FakeClock())
    reply = await post(http, emu, body(ids(40) + ids(1, start=99)))
    assert reply.status == 422
    assert reply.headers["X-RateLimit-Remaining"] == "5"
    assert (emu.stats.ids_seen, emu.stats.unique_ids_seen) == (0, 0)


# --- 2. auth -----------------------------------------------------------------------


async def test_missing_key_is_401_with_details_and_correlation_id(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """Without the api_key header the answer is 401 with details and a correlation id."""
    emu = await start()
    reply = await post(http, emu, key=None)
    assert reply.status == 401
    assert set(reply.json) == {"details", "correlation_id"}
    assert HEX32.match(reply.json["correlation_id"])


async def test_empty_key_is_401(start: Start, http: aiohttp.ClientSession) -> None:
    """An empty api_key header counts as no key."""
    emu = await start()
    assert (await post(http, emu, key="")).status == 401


async def test_only_the_configured_key_is_accepted(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """With api_key configured, another key is 401 and that key is 200."""
    emu = await start(api_key="right-key")
    assert (await post(http, emu, key="wrong-key")).status == 401
    assert (await post(http, emu, key="right-key")).status == 200


async def test_any_non_empty_key_is_accepted_when_none_is_configured(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """With api_key=None every non-empty key works."""
    emu = await start()
    assert (await post(http, emu, key="whatever")).status == 200


@pytest.mark.parametrize("header", ["api_key", "API_KEY", "Api_Key"])
async def test_api_key_header_name_is_case_insensitive(
    start: Start, http: aiohttp.ClientSession, header: str
) -> None:
    """The header name matches in any case, as HTTP says."""
    emu = await start(api_key="k1")
    assert (await post(http, emu, key=None, headers={header: "k1"})).status == 200


async def test_auth_is_checked_before_validation(start: Start, http: aiohttp.ClientSession) -> None:
    """A bad body without a key is a 401, not a 422."""
    emu = await start()
    assert (await post(http, emu, raw=b"not json", key=None)).status == 401


async def test_api_key_is_never_logged_echoed_or_shown(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the configured key nor a wrong one appears in logs, answers or reprs."""
    secret, wrong = "sekrit-key-0123456789", "wrong-key-9876543210"
    caplog.set_level(logging.DEBUG)
    config = EmulatorConfig(api_key=secret, rate_limit=1, now=NOW, clock=FakeClock())
    seen: list[str] = [repr(config)]
    async with Emulator(config, access_log=True) as emu:
        replies = [
            await post(http, emu, key=secret),
            await post(http, emu, key=secret),  # 429
            await post(http, emu, key=wrong),
            await post(http, emu, raw=b"{", key=secret),
        ]
        seen.append(repr(emu))
    assert [reply.status for reply in replies] == [200, 429, 401, 422]
    seen += [reply.text + repr(reply.headers) for reply in replies]
    seen.append(caplog.text)
    assert caplog.records, "the access log should have logged something"
    for text in seen:
        assert secret not in text
        assert wrong not in text


# --- 3. rate limit -----------------------------------------------------------------


async def test_rate_limit_headers_are_on_every_answer_of_the_endpoint(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """200, 401, 422, 429 and 5xx answers all carry the X-RateLimit-* headers."""
    clock = FakeClock()
    ok = await start(rate_limit=1, clock=clock)
    failing = await start(error_rate=1.0, clock=clock)
    replies = [
        await post(http, ok),
        await post(http, ok),  # over the limit
        await post(http, ok, key=None),
        await post(http, ok, raw=b"[]"),
        await post(http, failing),
    ]
    assert [reply.status // 100 for reply in replies] == [2, 4, 4, 4, 5]
    assert [reply.status for reply in replies[1:4]] == [429, 401, 422]
    for reply in replies:
        assert all(re.fullmatch(r"[0-9]+", reply.headers[name]) for name in RATE_HEADERS)


async def test_over_the_limit_is_429_with_retry_after_and_documented_body(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """Past the limit the answer is 429 with an integer Retry-After and the error body."""
    clock = FakeClock(1_000.0)
    emu = await start(rate_limit=2, rate_window=60.0, clock=clock)
    first = await post(http, emu)
    clock.now = 1_010.0
    second = await post(http, emu)
    clock.now = 1_030.5
    third = await post(http, emu)
    assert [first.status, second.status, third.status] == [200, 200, 429]
    assert [first.headers["X-RateLimit-Remaining"], second.headers["X-RateLimit-Remaining"]] == [
        "1",
        "0",
    ]
    assert third.headers["Retry-After"] == "30"  # ceil(1060 - 1030.5)
    assert third.json == {
        "error": "rate_limit_exceeded",
        "message": third.json["message"],
        "retry_after": 30,
    }
    assert third.headers["X-RateLimit-Limit"] == "2"
    assert third.headers["X-RateLimit-Remaining"] == "0"
    assert third.headers["X-RateLimit-Reset"] == "1060"


async def test_window_slides_and_rejected_requests_do_not_consume_it(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """Units leave the window one by one at stamp + window; 429s never take a slot."""
    clock = FakeClock(1_000.0)
    emu = await start(rate_limit=3, rate_window=60.0, clock=clock)
    for now in (1_000.0, 1_010.0, 1_020.5):
        clock.now = now
        assert (await post(http, emu)).status == 200
    for now in (1_030.0, 1_059.9):
        clock.now = now
        rejected = await post(http, emu)
        assert rejected.status == 429
        assert rejected.headers["Retry-After"] == str(math.ceil(1_060.0 - now))
    clock.now = 1_060.0  # the first unit leaves: exactly one slot opens
    admitted = await post(http, emu)
    assert admitted.status == 200
    assert admitted.headers["X-RateLimit-Remaining"] == "0"
    assert admitted.headers["X-RateLimit-Reset"] == "1070"
    again = await post(http, emu)
    assert again.status == 429
    assert again.headers["Retry-After"] == "10"
    assert emu.stats.requests_by_status == {200: 4, 429: 3}


async def test_cost_per_id_charges_each_prospect_id(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """With rate_limit_cost='id' a request costs as many units as it has IDs."""
    clock = FakeClock(500.0)
    emu = await start(rate_limit=10, rate_limit_cost="id", clock=clock)
    first = await post(http, emu, body(ids(4)))
    assert first.headers["X-RateLimit-Remaining"] == "6"
    clock.now = 510.0
    assert (await post(http, emu, body(ids(5)))).headers["X-RateLimit-Remaining"] == "1"
    too_many = await post(http, emu, body(ids(2)))
    assert too_many.status == 429
    assert too_many.headers["Retry-After"] == "50"  # when the first 4 units leave
    assert (await post(http, emu, body(ids(1)))).headers["X-RateLimit-Remaining"] == "0"


async def test_request_costlier_than_the_whole_limit_gets_429_for_a_full_window(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """A request that can never fit is refused with Retry-After of one window."""
    emu = await start(rate_limit=5, rate_limit_cost="id", clock=FakeClock())
    reply = await post(http, emu, body(ids(6)))
    assert (reply.status, reply.headers["Retry-After"]) == (429, "60")


async def test_each_key_has_its_own_window(start: Start, http: aiohttp.ClientSession) -> None:
    """Spending one key's window leaves another key's untouched."""
    emu = await start(rate_limit=1, clock=FakeClock())
    assert (await post(http, emu, key="key-a")).status == 200
    assert (await post(http, emu, key="key-a")).status == 429
    assert (await post(http, emu, key="key-b")).status == 200


@pytest.mark.parametrize("rate_limit", [None, 0])
async def test_rate_limit_none_or_zero_disables_limit_and_headers(
    start: Start, http: aiohttp.ClientSession, rate_limit: int | None
) -> None:
    """With the limit off nothing is ever 429 and no X-RateLimit header is sent."""
    emu = await start(rate_limit=rate_limit)
    replies = [await post(http, emu) for _ in range(5)]
    assert {reply.status for reply in replies} == {200}
    assert not any(name in reply.headers for name in RATE_HEADERS for reply in replies)


async def test_reset_endpoint_empties_the_window_and_the_counters(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """POST /_emulator/reset zeroes the stats and frees the rate window."""
    emu = await start(rate_limit=1, clock=FakeClock())
    await post(http, emu)
    assert (await post(http, emu)).status == 429
    async with http.post(emu.url + "/_emulator/reset") as resp:
        assert resp.status == 200
    assert emu.stats.as_dict()["requests"] == 0
    assert (await post(http, emu)).status == 200


# --- 4. data -----------------------------------------------------------------------


def test_events_are_a_pure_function_of_ids_seed_and_now() -> None:
    """Same inputs give the same events; another seed or another now gives others."""
    config = EmulatorConfig(now=NOW, seed=7)
    first = expected_events(ids(50), config=config)
    assert first == expected_events(ids(50), config=EmulatorConfig(now=NOW, seed=7))
    assert first != expected_events(ids(50), config=EmulatorConfig(now=NOW, seed=8))
    later = EmulatorConfig(now=NOW + dt.timedelta(days=3), seed=7)
    assert first != expected_events(ids(50), config=later)


def test_about_a_third_of_prospects_have_no_events_and_most_have_at_most_three() -> None:
    """Counts per prospect: about 35% none, most 0 to 3, never more than 5."""
    config = EmulatorConfig(now=NOW)
    counts = Counter(len(expected_events([pid], config=config)) for pid in ids(2000))
    assert 0.30 < counts[0] / 2000 < 0.40
    assert sum(counts[n] for n in range(4)) / 2000 > 0.9
    assert max(counts) <= 5


def test_events_fall_within_the_90_days_before_now() -> None:
    """Every event time is in [now - 90 days, now) and formatted like the API's."""
    events = expected_events(ids(400), config=EmulatorConfig(now=NOW))
    for event in events:
        moment = dt.datetime.fromisoformat(event["event_time"])
        assert NOW - dt.timedelta(days=90) <= moment < NOW
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", event["event_time"])


def test_event_objects_follow_the_reference_shape() -> None:
    """Keys in reference order, 32-hex unique event ids, data.event_name repeated."""
    events = expected_events(ids(200), config=EmulatorConfig(now=NOW))
    assert {event["event_name"] for event in events} == set(ALL_TYPES)
    for event in events:
        assert list(event) == ["event_name", "event_time", "event_id", "data", "prospect_id"]
        assert HEX32.match(event["event_id"])
        assert event["data"]["event_name"] == event["event_name"]
    assert len({event["event_id"] for event in events}) == len(events)


def test_company_change_data_has_different_previous_and_current_companies() -> None:
    """prospect_changed_company carries exactly its six fields and two distinct company ids."""
    events = expected_events(
        ids(200), config=EmulatorConfig(now=NOW), event_types=["prospect_changed_company"]
    )
    assert events
    for event in events:
        data = event["data"]
        assert list(data) == [
            "event_name",
            "current_company_name",
            "current_company_id",
            "current_job_title",
            "previous_company_name",
            "previous_company_id",
            "previous_job_title",
        ]
        assert HEX32.match(data["current_company_id"]) and HEX32.match(data["previous_company_id"])
        assert data["current_company_id"] != data["previous_company_id"]
        assert data["current_company_name"] != data["previous_company_name"]


def test_role_change_data_sometimes_lacks_the_previous_company() -> None:
    """prospect_changed_role has new and old titles; the previous company is optional."""
    events = expected_events(
        ids(300), config=EmulatorConfig(now=NOW), event_types=["prospect_changed_role"]
    )
    required = {
        "event_name",
        "current_job_title",
        "previous_job_title",
        "current_company_name",
        "current_company_id",
    }
    optional = {"previous_company_name", "previous_company_id"}
    shapes = {frozenset(event["data"]) for event in events}
    assert shapes == {frozenset(required), frozenset(required | optional)}
    for event in events:
        data = event["data"]
        assert data["current_job_title"] != data["previous_job_title"]
        assert HEX32.match(data["current_company_id"])


def test_anniversary_data_has_the_documented_fields_and_types() -> None:
    """prospect_job_start_anniversary has name, company, title, integer years, date, URL."""
    events = expected_events(
        ids(300), config=EmulatorConfig(now=NOW), event_types=["prospect_job_start_anniversary"]
    )
    assert events
    for event in events:
        data = event["data"]
        assert list(data) == [
            "event_name",
            "full_name",
            "company_name",
            "job_title",
            "years_at_company",
            "job_anniversary_date",
            "linkedin_url",
        ]
        assert type(data["years_at_company"]) is int and data["years_at_company"] >= 1
        assert dt.datetime.fromisoformat(data["job_anniversary_date"]).tzinfo is not None
        assert data["linkedin_url"].startswith("https://www.linkedin.com/in/")


def _sort_keys(events: list[dict[str, Any]]) -> list[tuple[float, str]]:
    return [
        (-dt.datetime.fromisoformat(e["event_time"]).timestamp(), e["event_id"]) for e in events
    ]


async def test_events_are_newest_first(start: Start, http: aiohttp.ClientSession) -> None:
    """Served events are sorted by event_time, newest first, across all prospects."""
    emu = await start()
    events = (await post(http, emu, body(ids(40, start=1000)))).json["output_events"]
    keys = _sort_keys(events)
    assert len(events) > 20
    assert keys == sorted(keys)


def test_events_at_the_same_time_are_ordered_by_event_id() -> None:
    """Ties in event_time (anniversaries share midnights) are broken by event_id, ascending."""
    events = expected_events(ids(1000), config=EmulatorConfig(now=NOW))
    keys = _sort_keys(events)
    assert len({time for time, _ in keys}) < len(keys), "expected some ties to check"
    assert keys == sorted(keys)


async def test_event_types_filter_returns_only_those_types(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """Only the requested event types come back."""
    emu = await start()
    reply = await post(http, emu, body(ids(40), event_types=["prospect_changed_role"]))
    names = {event["event_name"] for event in reply.json["output_events"]}
    assert names == {"prospect_changed_role"}


def _some_event(config: EmulatorConfig) -> dict[str, Any]:
    return next(
        event
        for event in expected_events(ids(100), config=config)
        if not event["event_time"].endswith("T00:00:00+00:00")
    )


async def test_timestamp_bounds_are_inclusive_to_the_second(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """An event at exactly timestamp_from or timestamp_to is returned; one second off is not."""
    emu = await start()
    event = _some_event(emu.config)
    moment = dt.datetime.fromisoformat(event["event_time"])
    second = dt.timedelta(seconds=1)

    async def found(**bounds: str) -> bool:
        reply = await post(http, emu, body([event["prospect_id"]], **bounds))
        return event in reply.json["output_events"]

    assert await found(timestamp_from=moment.isoformat(), timestamp_to=moment.isoformat())
    assert not await found(timestamp_from=(moment + second).isoformat())
    assert not await found(timestamp_to=(moment - second).isoformat())
    shifted = moment.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert await found(timestamp_from=shifted.isoformat(), timestamp_to=shifted.isoformat())


async def test_a_date_as_timestamp_to_covers_that_whole_day(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """timestamp_to=YYYY-MM-DD includes the day's last second; as timestamp_from its first."""
    emu = await start()
    event = _some_event(emu.config)
    day = dt.datetime.fromisoformat(event["event_time"]).date()
    reply = await post(
        http,
        emu,
        body([event["prospect_id"]], timestamp_from=day.isoformat(), timestamp_to=day.isoformat()),
    )
    assert event in reply.json["output_events"]
    before = await post(
        http, emu, body([event["prospect_id"]], timestamp_to=str(day - dt.timedelta(days=1)))
    )
    assert event not in before.json["output_events"]
    after = await post(
        http, emu, body([event["prospect_id"]], timestamp_from=str(day + dt.timedelta(days=1)))
    )
    assert event not in after.json["output_events"]


async def test_old_window_returns_nothing_and_status_miss(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """A window before the 90 days is a 200 with no events and request_status 'miss'."""
    emu = await start()
    reply = await post(http, emu, body(ids(40), timestamp_to="2024-01-01"))
    assert reply.status == 200
    assert reply.json["output_events"] == []
    assert reply.json["response_context"]["request_status"] == "miss"


async def test_response_context_has_fresh_correlation_id_status_and_timing(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """Each answer has its own 32-hex correlation id, 'success' when events, and a duration."""
    emu = await start()
    replies = [await post(http, emu, body(ids(40))) for _ in range(2)]
    contexts = [reply.json["response_context"] for reply in replies]
    assert list(replies[0].json) == ["response_context", "output_events"]
    assert contexts[0]["correlation_id"] != contexts[1]["correlation_id"]
    for context in contexts:
        assert HEX32.match(context["correlation_id"])
        assert context["request_status"] == "success"
        assert isinstance(context["time_took_in_seconds"], float)
    assert replies[0].headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("event_types", "timestamp_from", "timestamp_to"),
    [
        (None, None, None),
        (["prospect_changed_company"], "2024-11-15", None),
        (["prospect_changed_role", "prospect_job_start_anniversary"], None, "2024-12-10T12:00:00Z"),
        (ALL_TYPES, "2024-10-20T00:00:00+02:00", "2024-12-20"),
    ],
)
async def test_expected_events_predicts_what_is_served_for_any_filter(
    start: Start,
    http: aiohttp.ClientSession,
    event_types: list[str] | None,
    timestamp_from: str | None,
    timestamp_to: str | None,
) -> None:
    """expected_events equals the served events for the same IDs and filters."""
    emu = await start(seed=3)
    prospect_ids = ids(40, start=500)
    payload = body(
        prospect_ids,
        event_types=event_types or ALL_TYPES,
        timestamp_from=timestamp_from,
        timestamp_to=timestamp_to,
    )
    served = (await post(http, emu, payload)).json["output_events"]
    assert served == expected_events(
        prospect_ids,
        config=emu.config,
        event_types=event_types,
        timestamp_from=timestamp_from,
        timestamp_to=timestamp_to,
    )


def test_expected_events_takes_datetimes_and_dates_like_their_strings() -> None:
    """A datetime or date filter selects the same events as its ISO string."""
    config = EmulatorConfig(now=NOW)
    start, end = dt.datetime(2024, 11, 1, 6, tzinfo=dt.UTC), dt.date(2024, 12, 1)
    assert expected_events(
        ids(100), config=config, timestamp_from=start, timestamp_to=end
    ) == expected_events(
        ids(100), config=config, timestamp_from=start.isoformat(), timestamp_to=end.isoformat()
    )


def test_expected_events_rejects_unknown_types_and_bad_timestamps() -> None:
    """Inputs the server would 422 raise ValueError."""
    config = EmulatorConfig(now=NOW)
    with pytest.raises(ValueError, match="unknown event types"):
        expected_events(ids(1), config=config, event_types=["new_office"])
    with pytest.raises(ValueError, match="soon"):
        expected_events(ids(1), config=config, timestamp_from="soon")


async def test_now_none_anchors_data_to_midnight_utc_today(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """Without now, events end before today's midnight UTC and match expected_events."""
    today = dt.datetime.now(dt.UTC).date()
    emu = await start(now=None)
    served = (await post(http, emu, body(ids(40)))).json["output_events"]
    expected = expected_events(ids(40), config=emu.config)
    if dt.datetime.now(dt.UTC).date() != today:
        pytest.skip("the UTC day changed during the test")
    midnight = dt.datetime.combine(today, dt.time(), dt.UTC)
    assert served
    assert all(
        midnight - dt.timedelta(days=90) <= dt.datetime.fromisoformat(e["event_time"]) < midnight
        for e in served
    )
    assert served == expected


# --- 5. faults ---------------------------------------------------------------------


async def test_latency_delays_every_answer(start: Start, http: aiohttp.ClientSession) -> None:
    """latency_ms with jitter holds each answer for at least latency - jitter."""
    emu = await start(latency_ms=40.0, latency_jitter_ms=10.0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    statuses = [(await post(http, emu)).status, (await post(http, emu, key=None)).status]
    assert statuses == [200, 401]
    assert loop.time() - began >= 2 * 0.030


async def test_latency_counts_from_the_arrival_not_after_building_the_answer(
    start: Start, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose answer took 30 ms to build waits only latency - 30 ms more."""
    from explorium_events.emulator import _app

    readings = iter([10.000, 10.030, 10.031])  # arrival, answer built, time_took
    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)

    monkeypatch.setattr(_app, "time", SimpleNamespace(perf_counter=lambda: next(readings)))
    monkeypatch.setattr(_app, "asyncio", SimpleNamespace(sleep=record))
    emu = await start(latency_ms=100.0, rate_limit=None)
    reply = await post(http, emu)
    assert reply.status == 200
    assert waits == [pytest.approx(0.070)]
    assert emu.stats.latency_seconds == pytest.approx(0.100)
    assert reply.json["response_context"]["time_took_in_seconds"] == 0.031


def test_served_events_are_the_callers_own_and_cost_one_generation() -> None:
    """A changed served event changes no later answer; a prospect's history is made once."""
    from explorium_events.emulator import _data

    config = EmulatorConfig(now=NOW)
    prospect = ids(1)[0]
    _data._history.cache_clear()
    first = expected_events([prospect], config=config)
    assert first
    first[0]["data"]["event_name"] = "changed"
    first[0]["event_id"] = "changed"
    again = expected_events([prospect], config=config)
    assert again[0]["data"]["event_name"] == again[0]["event_name"] != "changed"
    assert again[0]["event_id"] != "changed"
    assert _data._history.cache_info().misses == 1


async def test_error_rate_gives_all_5xx_codes_and_both_documented_bodies(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """error_rate=1 answers 500/502/503/504 with the {details, correlation_id} or {error} body."""
    emu = await start(error_rate=1.0, rate_limit=None)
    replies = [await post(http, emu) for _ in range(40)]
    assert {reply.status for reply in replies} == {500, 502, 503, 504}
    shapes = {frozenset(reply.json) for reply in replies}
    assert shapes == {frozenset({"details", "correlation_id"}), frozenset({"error"})}
    for reply in replies:
        if "correlation_id" in reply.json:
            assert HEX32.match(reply.json["correlation_id"])
        assert reply.headers["Content-Type"] == "application/json"


async def test_faults_are_drawn_only_after_auth_and_validation(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """With every fault certain, a missing key is still 401 and a bad body still 422."""
    emu = await start(error_rate=1.0, rate_limit_error_rate=1.0)
    assert (await post(http, emu, key=None)).status == 401
    assert (await post(http, emu, raw=b"[]")).status == 422


async def test_injected_429_carries_retry_after_and_consumes_nothing(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """rate_limit_error_rate gives a 429 with Retry-After rounded up, no unit spent."""
    emu = await start(rate_limit_error_rate=1.0, retry_after_seconds=2.5, clock=FakeClock())
    reply = await post(http, emu)
    assert reply.status == 429
    assert reply.headers["Retry-After"] == "3"
    assert reply.json["retry_after"] == 3
    assert reply.json["error"] == "rate_limit_exceeded"
    assert reply.headers["X-RateLimit-Remaining"] == "200"
    assert emu.stats.ids_seen == 0


async def test_dropped_connection_gets_no_answer(start: Start, http: aiohttp.ClientSession) -> None:
    """drop_rate=1 closes the connection without a response and counts it."""
    emu = await start(drop_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(http, emu)
    assert emu.stats.dropped == 1
    assert emu.stats.requests_by_status == {}


async def test_truncated_body_is_shorter_than_its_content_length(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """truncate_rate=1 sends a 200 whose body stops before Content-Length, then closes."""
    emu = await start(truncate_rate=1.0)
    async with http.post(emu.url + PATH, json=body(ids(40)), headers={"api_key": KEY}) as resp:
        assert resp.status == 200
        assert int(resp.headers["Content-Length"]) > 0
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert (emu.stats.truncated, emu.stats.requests_by_status) == (1, {200: 1})


async def test_duplicate_rate_sends_events_twice(start: Start, http: aiohttp.ClientSession) -> None:
    """duplicate_rate=1 repeats each event right after itself and counts the copies."""
    emu = await start(duplicate_rate=1.0)
    events = (await post(http, emu, body(ids(40)))).json["output_events"]
    originals = expected_events(ids(40), config=emu.config)
    assert events == [event for event in originals for _ in range(2)]
    assert emu.stats.duplicated_events == len(originals)


async def test_slow_spike_outlasts_a_client_timeout(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """slow_rate=1 with slow_ms delays the answer past a short client timeout."""
    emu = await start(slow_rate=1.0, slow_ms=300.0)
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            emu.url + PATH,
            json=body(),
            headers={"api_key": KEY},
            timeout=aiohttp.ClientTimeout(total=0.05),
        ):
            pass


async def test_same_seed_gives_the_same_faults(start: Start, http: aiohttp.ClientSession) -> None:
    """Fault draws come from the app's own Random(seed): same seed, same sequence."""

    async def statuses(seed: int) -> list[int]:
        emu = await start(seed=seed, error_rate=0.5, rate_limit=None)
        return [(await post(http, emu)).status for _ in range(24)]

    first, again, other = await statuses(1), await statuses(1), await statuses(2)
    assert first == again
    assert first != other
    assert 200 in first and any(status >= 500 for status in first)


# --- stats -------------------------------------------------------------------------


async def test_stats_count_requests_statuses_and_ids(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """Requests, statuses, IDs and distinct IDs are counted as documented."""
    emu = await start(rate_limit=2, clock=FakeClock())
    await post(http, emu, body(ids(3)))
    await post(http, emu, body(ids(3, start=2)))  # one ID seen before
    await post(http, emu, body(ids(3)))  # 429: not counted as fetched
    await post(http, emu, key=None)
    stats = emu.stats
    assert stats.requests == 4
    assert stats.requests_by_status == {200: 2, 429: 1, 401: 1}
    assert (stats.ids_seen, stats.unique_ids_seen) == (6, 5)
    assert (stats.in_flight, stats.peak_in_flight) == (0, 1)


async def test_stats_over_http_equal_as_dict_and_need_no_key(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """GET /_emulator/stats answers stats.as_dict() without auth."""
    emu = await start()
    await post(http, emu)
    async with http.get(emu.url + "/_emulator/stats") as resp:
        assert resp.status == 200
        assert await resp.json() == emu.stats.as_dict()
    assert emu.stats.as_dict()["requests_by_status"] == {"200": 1}


async def test_peak_in_flight_counts_concurrent_requests(
    start: Start, http: aiohttp.ClientSession
) -> None:
    """Requests handled at the same time raise peak_in_flight; in_flight returns to 0."""
    emu = await start(latency_ms=100.0, rate_limit=None)
    replies = await asyncio.gather(*(post(http, emu) for _ in range(6)))
    assert {reply.status for reply in replies} == {200}
    assert (emu.stats.in_flight, emu.stats.peak_in_flight) == (0, 6)


def test_stats_reset_zeroes_everything_but_in_flight() -> None:
    """reset() clears counters and distinct IDs; in-flight requests stay counted."""
    stats = EmulatorStats()
    stats.enter()
    stats.enter()
    stats.answered(200)
    stats.fetched(ids(2))
    stats.latency_seconds = 0.25
    stats.leave()
    stats.reset()
    assert stats.as_dict() == {
        "requests": 0,
        "requests_by_status": {},
        "in_flight": 1,
        "peak_in_flight": 1,
        "ids_seen": 0,
        "unique_ids_seen": 0,
        "dropped": 0,
        "truncated": 0,
        "duplicated_events": 0,
        "latency_seconds": 0.0,
    }


def test_create_app_exposes_stats_through_the_typed_app_key() -> None:
    """create_app returns an aiohttp app whose stats live at app[STATS_KEY]."""
    app = create_app(EmulatorConfig(now=NOW))
    assert isinstance(app[STATS_KEY], EmulatorStats)
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
    assert {("POST", PATH), ("GET", "/_emulator/stats"), ("POST", "/_emulator/reset")} <= routes


# --- running it --------------------------------------------------------------------


async def test_emulator_serves_on_a_loopback_ephemeral_port_and_runs_once() -> None:
    """url is http://127.0.0.1:PORT while running; an Emulator cannot be reused."""
    emu = Emulator(EmulatorConfig(now=NOW))
    async with emu:
        assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+", emu.url)
        assert int(emu.url.rsplit(":", 1)[1]) > 0
        assert "url=" in repr(emu)
    with pytest.raises(RuntimeError):
        _ = emu.url
    await emu.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="runs once"):
        await emu.start()


async def test_serve_forever_serves_until_sigterm_then_restores_signals() -> None:
    """serve_forever answers requests, stops on SIGTERM and puts the old handlers back."""
    before = signal.getsignal(signal.SIGTERM)
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_forever(EmulatorConfig(now=NOW), port=0, on_ready=ready.set_result)
    )
    async with asyncio.timeout(5):
        url = await ready
    async with aiohttp.ClientSession() as session, session.get(url + "/_emulator/stats") as resp:
        assert resp.status == 200
    signal.raise_signal(signal.SIGTERM)
    async with asyncio.timeout(5):
        await task
    assert signal.getsignal(signal.SIGTERM) == before
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(url + "/_emulator/stats")


# --- configuration and public surface ----------------------------------------------


def test_config_is_frozen_and_keyword_only() -> None:
    """EmulatorConfig takes keywords only and cannot be changed after creation."""
    config = EmulatorConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        EmulatorConfig("key")  # type: ignore[call-arg]
    assert (config.rate_limit, config.rate_window, config.rate_limit_cost) == (200, 60.0, "request")


@pytest.mark.parametrize(
    "bad",
    [
        {"error_rate": 1.5},
        {"drop_rate": -0.1},
        {"drop_rate": 0.6, "error_rate": 0.6},
        {"rate_limit_cost": "byte"},
        {"rate_limit": -1},
        {"rate_window": 0.0},
        {"latency_ms": -1.0},
        {"api_key": ""},
        {"now": dt.datetime(2025, 1, 1)},  # naive
    ],
)
def test_config_rejects_impossible_values(bad: dict[str, Any]) -> None:
    """Out-of-range probabilities, costs, windows, empty keys and naive now are refused."""
    with pytest.raises(ValueError):  # noqa: PT011 - the messages differ per field
        EmulatorConfig(**bad)


def test_public_names_are_exactly_the_sorted_all() -> None:
    """__all__ is sorted, names only real exports, and each has a docstring."""
    names = emulator_pkg.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    assert set(names) == {
        "PUSH_KEY",
        "STATS_KEY",
        "DeliveryOptions",
        "DeliveryReport",
        "PushStats",
        "deliver",
        "Emulator",
        "EmulatorClock",
        "EmulatorConfig",
        "EmulatorStats",
        "create_app",
        "expected_business_events",
        "expected_events",
        "expected_events_at",
        "make_business_ids",
        "make_prospect_ids",
        "parse_duration",
        "serve_forever",
    }
    for name in names:
        if not name.endswith("_KEY"):
            assert getattr(emulator_pkg, name).__doc__, name


# --- the seed and the push side ----------------------------------------------------------


async def _one_push_round(seed: int, reseed: int | None) -> list[tuple[Any, ...]]:
    """Everything one deliver() round POSTs, sorted: each event's id, name, entity, data
    and whether its signature was good; the emulator built with ``seed``, reseeded first
    with ``configure(seed=reseed)`` unless None."""
    from aiohttp import web

    from explorium_events import EventsClient, sign_webhook
    from explorium_events.emulator import DeliveryOptions

    received: list[tuple[Any, ...]] = []
    secret: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        event = json.loads(body)
        stamp = int(request.headers["X-Timestamp"])
        good = request.headers["X-Signature"] == sign_webhook(body, stamp, secret[0])
        received.append(
            (event["event_id"], event["event_name"], event["entity_id"], event["data"], good)
        )
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    config = EmulatorConfig(now=NOW, seed=seed, rate_limit=None, clock=FakeClock(1.8e9))
    try:
        async with Emulator(config) as emu:
            if reseed is not None:
                emu.configure(seed=reseed)
            async with EventsClient(api_key=KEY * 2, base_url=emu.url) as client:
                await client.enrollments.add(ids(4), key="crm-2026", event_types=None)
                hook_ = await client.webhooks.register("ExpTest", f"http://127.0.0.1:{port}/hook")
                secret.append(hook_.secret.reveal())
            options = DeliveryOptions(events_per_prospect=3, bad_signature_rate=0.5)
            report = await emu.deliver(options)
    finally:
        await runner.cleanup()
    assert report.generated == 12
    return sorted(received, key=repr)


async def test_configure_seed_drives_the_push_side_as_a_new_emulator_with_that_seed() -> None:
    """configure(seed=7) before any push call pushes exactly what an emulator built with
    seed 7 pushes (event ids, types, data, signature faults), and not what seed 0 does."""
    reseeded = await _one_push_round(0, reseed=7)
    built_with_7 = await _one_push_round(7, reseed=None)
    built_with_0 = await _one_push_round(0, reseed=None)
    assert reseeded == built_with_7
    assert {event[0] for event in reseeded}.isdisjoint(event[0] for event in built_with_0)
    assert any(not event[-1] for event in reseeded)  # some first attempts were forged
