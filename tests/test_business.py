"""Business events: the same machinery as prospect events, through client.businesses and pull()."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import hashlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from explorium_events import (
    AwardData,
    BusinessEvent,
    BusinessEventType,
    CheckpointMismatchError,
    ConfigurationError,
    DepartmentChangeData,
    EntityEvents,
    Event,
    EventsClient,
    FetchError,
    FundingRoundData,
    HiringData,
    InvalidBusinessIdError,
    InvalidIdError,
    InvalidProspectIdError,
    PullSummary,
    RetryPolicy,
    pull,
)
from explorium_events._business_models import decode_business_event
from explorium_events._entity import BUSINESS
from explorium_events._ids import BUSINESS_ID_RULE, invalid_reason
from explorium_events._sinks import TABLES, CsvSink, SqliteSink, csv_row
from explorium_events.emulator import (
    Emulator,
    EmulatorConfig,
    expected_business_events,
    expected_events,
)
from tests.conftest import TEST_KEY, ApiServer, FakeClock, Seen, prospect_id

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
CONFIG = EmulatorConfig(rate_limit=None, now=NOW, latency_ms=1)
SIBLINGS = Path(__file__).with_name("openapi-siblings.json")


def business_id(number: int) -> str:
    """A valid, deterministic business ID (32 hex characters)."""
    return hashlib.md5(f"business-{number}".encode()).hexdigest()


def business_ids(count: int, start: int = 0) -> list[str]:
    return [business_id(number) for number in range(start, start + count)]


def expected_ids(ids: list[str], config: EmulatorConfig = CONFIG) -> set[str]:
    return {event["event_id"] for event in expected_business_events(ids, config=config)}


def client_for(url: str, **settings: Any) -> EventsClient:
    settings.setdefault("rate_limit", None)
    return EventsClient(api_key=TEST_KEY, base_url=url, **settings)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(CONFIG) as emu:
        yield emu


def business_event(bid: str, index: int = 0, **data: Any) -> dict[str, Any]:
    return {
        "event_name": data.pop("event_name", "new_office"),
        "event_time": f"2026-10-{1 + index:02d}T00:00:00+00:00",
        "event_id": hashlib.md5(f"{bid}-{index}".encode()).hexdigest(),
        "data": data or {"office_location": "Lisbon", "number_of_employees": 12},
        "business_id": bid,
    }


def body_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "response_context": {
            "correlation_id": "c" * 32,
            "request_status": "success",
            "time_took_in_seconds": 0.01,
        },
        "output_events": events,
    }


# -- 1. the library fetches business events ------------------------------------------------


async def test_business_fetch_returns_every_expected_event_once_newest_first(
    emulator: Emulator,
) -> None:
    """client.businesses.fetch gets exactly the emulator's business events, newest first."""
    ids = business_ids(300)
    async with client_for(emulator.url) as client:
        result = await client.businesses.fetch(ids)
    assert {event.event_id for event in result.events} == expected_ids(ids)
    assert len(result.events) == len({event.event_id for event in result.events})
    assert all(isinstance(event, BusinessEvent) for event in result.events)
    times = [event.event_time for event in result.events]
    assert times == sorted(times, reverse=True)
    assert sorted(result.succeeded) == sorted(ids) and not result.failed


async def test_business_ids_go_to_the_business_endpoint_in_batches_of_40(api: ApiServer) -> None:
    """100 business IDs are three POSTs to /v1/businesses/events with business_ids: 40, 40, 20."""
    ids = business_ids(100)
    api.handler = lambda server, seen: web.json_response(
        body_of([business_event(bid) for bid in seen.ids])
    )
    async with client_for(api.url) as client:
        result = await client.businesses.fetch(ids, event_types=[BusinessEventType.NEW_OFFICE])
    assert sorted(len(seen.ids) for seen in api.requests) == [20, 40, 40]
    assert {seen.path for seen in api.requests} == {"/v1/businesses/events"}
    assert all(set(seen.body) == {"business_ids", "event_types"} for seen in api.requests)
    assert all(seen.body["event_types"] == ["new_office"] for seen in api.requests)
    assert len(result.events) == 100


async def test_the_top_level_calls_are_still_the_prospect_calls(api: ApiServer) -> None:
    """client.fetch, client.stream and client.events_for ask /v1/prospects/events, as before."""
    ids = [prospect_id(number) for number in range(3)]
    async with client_for(api.url, batch_window=0.0) as client:
        fetched = await client.fetch(ids)
        async with client.stream(ids) as batches:
            streamed = [batch async for batch in batches]
        one = await client.events_for(ids[0])
        assert client.entity("prospect") is client.prospects
        assert client.entity("business") is client.businesses
        assert isinstance(client.businesses, EntityEvents)
    assert {seen.path for seen in api.requests} == {"/v1/prospects/events"}
    assert all(isinstance(event, Event) for event in fetched.events)
    assert len(streamed) == 1 and len(one) == 1


def test_an_unknown_entity_name_is_a_configuration_error() -> None:
    """entity="company" names the two entities there are."""
    client = client_for("http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="'prospect' and 'business'"):
        client.entity("company")


async def test_invalid_business_ids_are_refused_before_any_request(api: ApiServer) -> None:
    """A 40-hex prospect ID or a short value in a list raises InvalidBusinessIdError, no request."""
    bad = [business_id(1), prospect_id(1), "abc"]
    async with client_for(api.url) as client:
        with pytest.raises(InvalidBusinessIdError) as caught:
            await client.businesses.fetch(bad)
    assert not api.requests
    assert isinstance(caught.value, InvalidIdError)
    assert not isinstance(caught.value, InvalidProspectIdError)
    assert caught.value.count == 2 and BUSINESS_ID_RULE in str(caught.value)
    assert "2 invalid business IDs" in str(caught.value)
    assert invalid_reason(prospect_id(1), entity=BUSINESS) == "40 characters, not 32"


async def test_prospect_fetch_refuses_business_ids_as_before(api: ApiServer) -> None:
    """The prospect rule is unchanged: a 32-hex value is not a prospect ID."""
    async with client_for(api.url) as client:
        with pytest.raises(InvalidProspectIdError, match="invalid prospect ID"):
            await client.fetch([business_id(1)])


async def test_an_invalid_id_in_an_iterator_ends_the_business_stream_after_the_ids_before_it(
    api: ApiServer,
) -> None:
    """A generator is checked as read: the 45 IDs before the bad one are fetched, then it raises."""
    ids = business_ids(45)
    api.handler = lambda server, seen: web.json_response(
        body_of([business_event(bid) for bid in seen.ids])
    )

    def values() -> Iterator[str]:
        yield from ids
        yield "not-a-business"
        yield from business_ids(40, start=100)

    async with client_for(api.url) as client:
        with pytest.raises(InvalidBusinessIdError) as caught:
            await client.businesses.fetch(values())
    result = caught.value.result
    assert result is not None and sorted(result.succeeded) == sorted(ids)
    assert [item.value for item in result.invalid] == ["not-a-business"]
    assert len(api.ids_requested) == 45


async def test_skip_invalid_lists_the_bad_business_values_and_fetches_the_rest(
    api: ApiServer,
) -> None:
    """skip_invalid=True fetches the valid IDs once each and lists the rest with a reason."""
    ids = business_ids(3)
    api.handler = lambda server, seen: web.json_response(body_of([]))
    async with client_for(api.url) as client:
        result = await client.businesses.fetch([*ids, ids[0].upper(), " x "], skip_invalid=True)
    assert sorted(api.ids_requested) == sorted(ids)
    assert [item.reason for item in result.invalid] == ["1 characters, not 32"]
    assert result.stats.duplicate_ids == 1


async def test_a_business_generator_is_pulled_lazily(api: ApiServer) -> None:
    """The first request leaves with at most a few batches of a million-ID generator read."""
    pulled = [0]

    def counting() -> Iterator[str]:
        for number in range(1_000_000):
            pulled[0] += 1
            yield f"{number:032x}"

    at_first: list[int] = []

    def handler(server: ApiServer, seen: Seen) -> web.Response:
        at_first.append(pulled[0])
        return web.json_response(body_of([]))

    api.handler = handler
    async with (
        client_for(api.url, max_concurrency=2) as client,
        client.businesses.stream(counting()) as batches,
    ):
        async for _batch in batches:
            break
    assert at_first and at_first[0] <= 4 * 40


async def test_business_event_types_are_checked_against_the_business_enum(
    api: ApiServer,
) -> None:
    """A prospect type asked of businesses is a ConfigurationError naming the business types."""
    async with client_for(api.url) as client:
        with pytest.raises(ConfigurationError, match="known business event types are ipo"):
            await client.businesses.fetch(business_ids(1), event_types=["prospect_changed_role"])
        with pytest.raises(ConfigurationError, match="unknown event type 'new_office'"):
            await client.fetch([prospect_id(1)], event_types=["new_office"])
    assert not api.requests


async def test_the_default_business_query_asks_for_all_39_types(api: ApiServer) -> None:
    """Without event_types, a business request names every business type, in spec order."""
    api.handler = lambda server, seen: web.json_response(body_of([]))
    async with client_for(api.url) as client:
        await client.businesses.fetch(business_ids(1))
    assert api.requests[0].body["event_types"] == [kind.value for kind in BusinessEventType]


async def test_business_batches_retry_server_errors_and_dedupe_repeats() -> None:
    """With 5xx answers and duplicated events, every expected event still arrives exactly once."""
    config = EmulatorConfig(
        rate_limit=None, now=NOW, error_rate=0.3, duplicate_rate=0.5, seed=7, latency_ms=0
    )
    ids = business_ids(400)
    async with Emulator(config) as emu:
        policy = RetryPolicy(max_attempts=10)
        async with client_for(emu.url, clock=FakeClock(), retry=policy) as client:
            result = await client.businesses.fetch(ids)
        server = emu.stats
    assert sum(count for status, count in server.requests_by_status.items() if status >= 500)
    assert result.stats.retries > 0 and server.duplicated_events > 0
    got = [event.event_id for event in result.events]
    assert len(got) == len(set(got)) and set(got) == expected_ids(ids, config)
    assert result.stats.duplicates_dropped > 0


async def test_a_business_batch_that_fails_for_good_is_accounted_for(api: ApiServer) -> None:
    """A batch answered 500 for good fails: FetchError names business IDs; each ID in one place."""
    ids = business_ids(80)

    def handler(server: ApiServer, seen: Seen) -> web.Response:
        if ids[0] in seen.ids:
            return web.json_response({"details": "boom"}, status=500)
        return web.json_response(body_of([business_event(bid) for bid in seen.ids]))

    api.handler = handler
    async with client_for(api.url, clock=FakeClock(), retry=RetryPolicy(max_attempts=2)) as c:
        with pytest.raises(FetchError) as caught:
            await c.businesses.fetch(ids)
    result = caught.value.result
    assert "40 business IDs" in str(caught.value)
    assert sorted(result.failed_ids) == sorted(ids[:40]) == sorted(result.failed[0].ids)
    assert sorted(result.succeeded) == sorted(ids[40:])
    assert {event.business_id for event in result.events} == set(ids[40:])


async def test_business_stream_yields_batches_of_business_events(emulator: Emulator) -> None:
    """client.businesses.stream hands out BatchResults whose events are BusinessEvents."""
    ids = business_ids(120)
    seen: list[str] = []
    async with client_for(emulator.url) as client, client.businesses.stream(ids) as batches:
        async for batch in batches:
            assert batch.ok and len(batch.ids) == 40
            seen.extend(event.event_id for event in batch.events)
            assert all(event.business_id in batch.ids for event in batch.events)
    assert set(seen) == expected_ids(ids)


async def test_business_events_for_calls_share_one_request_and_never_mix_with_prospects(
    api: ApiServer,
) -> None:
    """30 business and 30 prospect events_for calls at once: one request to each endpoint."""
    bids = business_ids(30)
    pids = [prospect_id(number) for number in range(30)]

    def handler(server: ApiServer, seen: Seen) -> web.Response:
        if seen.path == "/v1/businesses/events":
            return web.json_response(body_of([business_event(bid) for bid in seen.ids]))
        from tests.conftest import events_body

        return web.json_response(events_body(seen.ids))

    api.handler = handler
    async with client_for(api.url, batch_window=0.01) as client:
        answers = await asyncio.gather(
            *(client.businesses.events_for(bid) for bid in bids),
            *(client.events_for(pid) for pid in pids),
        )
    assert sorted(seen.path for seen in api.requests) == [
        "/v1/businesses/events",
        "/v1/prospects/events",
    ]
    business_answers = answers[:30]
    assert all(
        len(events) == 1 and isinstance(events[0], BusinessEvent) and events[0].business_id == bid
        for bid, events in zip(bids, business_answers, strict=True)
    )
    with pytest.raises(InvalidBusinessIdError):
        async with client_for(api.url) as other:
            await other.businesses.events_for(pids[0])


async def test_both_entities_spend_the_one_limiter_of_the_client(api: ApiServer) -> None:
    """Prospect and business batches are counted in one window: 3 + 2 requests use 5 of 5."""
    api.handler = lambda server, seen: web.json_response(body_of([]))
    clock = FakeClock()
    async with client_for(api.url, rate_limit=5, rate_window=60.0, clock=clock) as client:
        assert client.prospects._runner is client.businesses._runner is client._runner
        await asyncio.gather(
            client.fetch([prospect_id(number) for number in range(120)]),
            client.businesses.fetch(business_ids(80)),
        )
        state = client.rate_limit_state()
        assert state.used == 5
        # A sixth request of either kind waits for the window: the fake clock moves on.
        before = clock.now
        await client.businesses.fetch(business_ids(1, start=500))
        assert clock.now - before >= 59.0


async def test_the_emulator_keeps_one_window_per_key_across_both_endpoints() -> None:
    """Limit 3: two prospect and one business request fill the window; the next of either is 429."""
    config = EmulatorConfig(rate_limit=3, rate_window=60.0, now=NOW)
    headers = {"api_key": TEST_KEY}
    prospects = {"prospect_ids": [prospect_id(1)], "event_types": ["prospect_changed_role"]}
    businesses = {"business_ids": [business_id(1)], "event_types": ["new_office"]}
    async with Emulator(config) as emu, aiohttp.ClientSession(headers=headers) as http:
        statuses = []
        for path, body in [
            ("/v1/prospects/events", prospects),
            ("/v1/prospects/events", prospects),
            ("/v1/businesses/events", businesses),
            ("/v1/businesses/events", businesses),
            ("/v1/prospects/events", prospects),
        ]:
            async with http.post(emu.url + path, json=body) as answer:
                statuses.append((answer.status, answer.headers.get("X-RateLimit-Remaining")))
        async with http.post(
            emu.url + "/v1/businesses/events", json=businesses, headers={"api_key": "other-key"}
        ) as answer:
            other = answer.status
    assert statuses == [(200, "2"), (200, "1"), (200, "0"), (429, "0"), (429, "0")]
    assert other == 200  # another key has a window of its own


# -- 3. typed where the docs define the data -------------------------------------------------


def test_the_business_enum_is_the_spec_s_39_identifiers_in_order() -> None:
    """BusinessEventType lists BusinessesEventIdentifier exactly, in the spec's order."""
    spec = json.loads(SIBLINGS.read_text())
    identifiers = spec["components"]["schemas"]["BusinessesEventIdentifier"]["enum"]
    assert [kind.value for kind in BusinessEventType] == identifiers
    assert len(identifiers) == 39


def test_documented_types_decode_to_their_structs_and_the_rest_to_a_mapping() -> None:
    """Funding, hiring, trends get Structs; an unknown new type keeps a dict and its raw JSON."""
    bid = business_id(1)
    hiring = decode_business_event(
        json.dumps(
            business_event(
                bid,
                event_name="hiring_in_legal_department",
                job_count=3,
                job_titles=["Counsel"],
                surprise="kept",
            )
        ).encode()
    )
    assert isinstance(hiring.data, HiringData) and hiring.data.job_count == 3
    assert hiring.event_type is BusinessEventType.HIRING_IN_LEGAL_DEPARTMENT
    trend = decode_business_event(
        json.dumps(
            business_event(bid, event_name="decrease_in_sales_department", department_change=80)
        ).encode()
    )
    assert isinstance(trend.data, DepartmentChangeData) and trend.data.department_change == 80
    raw = json.dumps(business_event(bid, event_name="new_subsidiary", name="Acme EU")).encode()
    unknown = decode_business_event(raw)
    assert unknown.event_type is None and unknown.data == {"name": "Acme EU"}
    assert unknown.to_json() == raw


@pytest.mark.parametrize(
    ("fields", "date", "stage"),
    [
        ({"founding_date": "2026-10-01", "founding_stage": "Seed", "investors": "A, B"},
         "founding_date", "founding_stage"),
        ({"funding_date": "2026-10-01", "funding_stage": "Seed", "investors": ["A", "B"]},
         "funding_date", "funding_stage"),
    ],
)  # fmt: skip
def test_a_funding_round_decodes_under_either_documented_spelling(
    fields: dict[str, Any], date: str, stage: str
) -> None:
    """founding_* (the type page) and funding_* (the data reference) are both typed fields."""
    raw = business_event(
        business_id(2), event_name="new_funding_round", amount_raised=5e6, **fields
    )
    event = decode_business_event(json.dumps(raw).encode())
    assert isinstance(event.data, FundingRoundData)
    assert getattr(event.data, date) == "2026-10-01" and getattr(event.data, stage) == "Seed"
    assert event.data.investors == fields["investors"] and event.data.amount_raised == 5e6


def test_business_data_that_does_not_fit_is_delivered_raw_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """job_count as text: the event arrives with data as the mapping sent, and a warning."""
    raw = json.dumps(
        business_event(business_id(3), event_name="hiring_in_sales_department", job_count="many")
    ).encode()
    with caplog.at_level(logging.WARNING, logger="explorium_events"):
        event = decode_business_event(raw)
    assert event.data == {"job_count": "many"}
    assert event.to_json() == raw
    assert "does not fit the model" in caplog.text


async def test_every_business_type_the_emulator_serves_decodes_typed(emulator: Emulator) -> None:
    """Across 600 businesses all 39 types occur, each with its Struct: no warning, no dict."""
    ids = business_ids(600)
    async with client_for(emulator.url) as client:
        result = await client.businesses.fetch(ids)
    assert {event.event_name for event in result.events} == {k.value for k in BusinessEventType}
    assert not [event for event in result.events if isinstance(event.data, dict)]
    awards = [event for event in result.events if event.event_name == "company_award"]
    assert awards and all(isinstance(event.data, AwardData) for event in awards)


# -- pull, checkpoint, resume, outputs -------------------------------------------------------


def stop_after(batches: int) -> tuple[asyncio.Event, Any]:
    stop = asyncio.Event()

    def progress(summary: PullSummary) -> None:
        if summary.batches_run >= batches:
            stop.set()

    return stop, progress


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "db"])
async def test_a_stopped_business_pull_resumes_to_each_event_once(
    emulator: Emulator, tmp_path: Path, fmt: str
) -> None:
    """pull(entity="business"), stopped twice and resumed, ends with each expected event once."""
    ids = business_ids(1_000)
    source = tmp_path / "accounts.txt"
    source.write_text("".join(f"{bid}\n" for bid in ids))
    out = tmp_path / f"accounts.{fmt}"
    checkpoint = tmp_path / "accounts.ckpt"
    async with client_for(emulator.url) as client:
        for batches in (4, 11):
            stop, progress = stop_after(batches)
            summary = await pull(
                client, source, out, checkpoint, entity="business", progress=progress, stop=stop
            )
            assert summary.interrupted and summary.not_tried > 0
        final = await pull(client, source, out, checkpoint, entity="business")
        again = await pull(client, source, out, checkpoint, entity="business")
    assert final.complete and again.batches_run == 0
    if fmt == "jsonl":
        written = [json.loads(line)["event_id"] for line in out.read_text().splitlines()]
    elif fmt == "csv":
        with out.open(newline="") as rows:
            table = list(csv.reader(rows))
        assert tuple(table[0]) == TABLES["business"].csv_columns
        written = [row[0] for row in table[1:]]
    else:
        with contextlib.closing(sqlite3.connect(out)) as db:
            written = [row[0] for row in db.execute("SELECT event_id FROM business_events")]
    assert len(written) == len(set(written)) and set(written) == expected_ids(ids)
    assert final.events_total == len(written)


async def test_a_checkpoint_of_one_entity_refuses_the_other(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A business pull's checkpoint refuses a prospect pull (and says the entity differs)."""
    out = tmp_path / "out.jsonl"
    checkpoint = tmp_path / "pull.ckpt"
    ids = [prospect_id(number) for number in range(40)]
    async with client_for(emulator.url) as client:
        await pull(client, ids, out, checkpoint)
        with pytest.raises(CheckpointMismatchError, match="the entity: prospect in the checkpoint"):
            await pull(client, business_ids(40), out, checkpoint, entity="business")


async def test_a_business_pull_without_a_checkpoint_reads_a_generator_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    """checkpoint=None pulls a one-shot iterable of business IDs, deduplicated, once."""
    ids = business_ids(100)
    out = tmp_path / "once.jsonl"
    async with client_for(emulator.url) as client:
        summary = await pull(client, iter(ids + ids[:5]), out, None, entity="business")
    written = [json.loads(line)["event_id"] for line in out.read_text().splitlines()]
    assert set(written) == expected_ids(ids) and summary.duplicates == 5


async def test_a_business_pull_with_invalid_ids_raises_before_any_request(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Prospect IDs given to a business pull: InvalidBusinessIdError, nothing sent."""
    async with client_for(emulator.url) as client:
        with pytest.raises(InvalidBusinessIdError, match="32 hexadecimal"):
            await pull(
                client,
                [prospect_id(1)],
                tmp_path / "o.jsonl",
                tmp_path / "o.ckpt",
                entity="business",
            )
    assert emulator.stats.requests == 0


def test_old_checkpoints_without_an_entity_read_as_prospect_pulls() -> None:
    """A PullSpec stored before businesses came (no entity key) is a prospect pull."""
    from explorium_events._checkpoint import PullSpec

    stored = {
        "input_fingerprint": "f",
        "unique_ids": 1,
        "event_types": ["prospect_changed_role"],
        "timestamp_from": None,
        "timestamp_to": None,
        "batch_size": 40,
        "output": "/o",
        "output_format": "jsonl",
    }
    assert PullSpec.from_json(json.dumps(stored)).entity == "prospect"


def test_one_sqlite_file_holds_both_kinds_and_keeps_the_prospect_table_as_it_was(
    tmp_path: Path,
) -> None:
    """Business rows go to business_events; the events table of a prospect DB is untouched."""
    path = tmp_path / "both.db"
    prospect = json.dumps(
        {
            "event_name": "prospect_changed_role",
            "event_time": "2026-10-01T00:00:00+00:00",
            "event_id": "a" * 32,
            "data": {"current_job_title": "CTO"},
            "prospect_id": prospect_id(1),
        }
    ).encode()
    from explorium_events._models import decode_event

    with SqliteSink(path) as sink:
        sink.write([decode_event(prospect)])
    with contextlib.closing(sqlite3.connect(path)) as db:
        before = db.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()
    raw = business_event(business_id(1), event_name="hiring_in_legal_department", job_count=4)
    with SqliteSink(path, entity="business") as sink:
        sink.write([decode_business_event(json.dumps(raw).encode())])
        sink.write([decode_business_event(json.dumps(raw).encode())])  # upserted, not doubled
    with contextlib.closing(sqlite3.connect(path)) as db:
        after = db.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()
        row = db.execute(
            "SELECT business_id, event_name, job_count, raw_json FROM business_events"
        ).fetchall()
        assert db.execute("SELECT COUNT(*) FROM events").fetchone() == (1,)
    assert before == after
    assert row == [(business_id(1), "hiring_in_legal_department", 4, json.dumps(raw))]


def test_the_business_csv_row_carries_the_common_columns_and_all_data_in_data_json(
    tmp_path: Path,
) -> None:
    """A business CSV has business_id and the common data columns; data_json keeps the rest."""
    raw = business_event(
        business_id(1),
        event_name="new_office",
        title="=HYPERLINK(1)",
        office_location="Lisbon",
        purpose_of_new_office="expansion",
    )
    event = decode_business_event(json.dumps(raw).encode())
    table = TABLES["business"]
    row = dict(zip(table.csv_columns, csv_row(event, table=table), strict=True))
    assert row["business_id"] == business_id(1) and row["office_location"] == "Lisbon"
    assert row["title"] == "'=HYPERLINK(1)"
    assert json.loads(row["data_json"])["purpose_of_new_office"] == "expansion"
    with CsvSink(str(tmp_path / "b.csv"), append=False, entity="business") as sink:
        sink.write([event])
    header = (tmp_path / "b.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == table.csv_columns and "prospect_id" not in header


async def test_a_mixed_concurrent_pull_matches_both_expectations(emulator: Emulator) -> None:
    """Prospects and businesses fetched concurrently by one client both come back whole."""
    pids = [prospect_id(number) for number in range(200)]
    bids = business_ids(200)
    async with client_for(emulator.url) as client:
        prospects, businesses = await asyncio.gather(
            client.fetch(pids), client.businesses.fetch(bids)
        )
    assert {e.event_id for e in prospects.events} == {
        event["event_id"] for event in expected_events(pids, config=CONFIG)
    }
    assert {e.event_id for e in businesses.events} == expected_ids(bids)


# -- hostile answers -------------------------------------------------------------------------


async def test_prospect_shaped_events_from_the_business_endpoint_fail_the_batch_not_the_pull(
    api: ApiServer,
) -> None:
    """A 200 whose events lack business_id (a misrouted answer) is a MalformedResponse failure."""
    from explorium_events import MalformedResponse
    from tests.conftest import events_body

    api.handler = lambda server, seen: web.json_response(events_body([prospect_id(1)]))
    policy = RetryPolicy(max_attempts=2)
    async with client_for(api.url, clock=FakeClock(), retry=policy) as client:
        result = await client.businesses.fetch(business_ids(3), raise_on_error=False)
    assert len(api.requests) == 2 and not result.events
    assert isinstance(result.failed[0].error, MalformedResponse)
    assert sorted(result.failed_ids) == sorted(business_ids(3))


async def test_a_business_event_with_null_data_is_delivered_with_data_none(
    api: ApiServer,
) -> None:
    """data: null costs nothing but the data: the event arrives, its raw JSON intact."""
    bid = business_id(1)
    raw = {**business_event(bid), "data": None, "added_later": [1, 2]}
    api.handler = lambda server, seen: web.json_response(body_of([raw]))
    async with client_for(api.url) as client:
        (event,) = (await client.businesses.fetch([bid])).events
    assert event.data is None and event.to_dict() == raw
