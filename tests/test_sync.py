"""sync(): incremental runs against the emulator, whose clock moves with the client's."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from explorium_events import (
    DEFAULT_LOOKBACK,
    ConfigurationError,
    EventsClient,
    InvalidProspectIdError,
    RetryPolicy,
    sync,
)
from explorium_events.emulator import Emulator, EmulatorConfig, expected_events_at
from tests.conftest import TEST_KEY, ApiServer, FakeClock, Seen, event_for, prospect_id

ORIGIN = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
CONFIG = EmulatorConfig(now=ORIGIN, rate_limit=None)
DAY = 86_400


class World:
    """An emulator and a client whose clocks agree, and move together."""

    def __init__(self, emulator: Emulator, clock: FakeClock) -> None:
        self.emulator = emulator
        self.clock = clock

    def advance(self, days: float) -> None:
        self.clock.wall_start += days * DAY
        self.emulator.clock.advance(dt.timedelta(days=days))

    @property
    def now(self) -> dt.datetime:
        return self.emulator.clock.now

    def client(self, **options: Any) -> EventsClient:
        return EventsClient(
            api_key=TEST_KEY,
            base_url=self.emulator.url,
            rate_limit=None,
            clock=self.clock,
            **options,
        )

    def truth(self, ids: list[str]) -> set[str]:
        """The event ids the emulator serves for these IDs now."""
        return {event["event_id"] for event in expected_events_at(ids, config=CONFIG, at=self.now)}


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with Emulator(CONFIG) as emulator:
        yield World(emulator, FakeClock(wall_start=ORIGIN.timestamp()))


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(f"{pid}\n" for pid in ids))
    return path


def jsonl_ids(path: Path) -> list[str]:
    return [json.loads(line)["event_id"] for line in path.read_text().splitlines()]


def listing(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern))


def state_rows(state: Path, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(state)) as db:
        return list(db.execute(query))


async def test_first_run_brings_the_whole_window_and_a_rerun_brings_nothing(
    world: World, tmp_path: Path
) -> None:
    """Run one writes every event the emulator holds; run two, with no time passed, none."""
    ids = [prospect_id(n) for n in range(120)]
    source, out, state = write_ids(tmp_path / "ids.txt", ids), tmp_path / "e.jsonl", tmp_path / "s"
    async with world.client() as client:
        first = await sync(client, source, out, state)
        again = await sync(client, source, out, state)
    assert set(jsonl_ids(out)) == world.truth(ids) and len(jsonl_ids(out)) == first.new_events
    assert first.since is None and first.new_ids == 120 and first.complete
    assert again.new_events == 0 and again.events_seen > 0
    assert again.since == ORIGIN and again.previous_run == ORIGIN


async def test_after_time_passes_only_the_new_events_arrive_each_once(
    world: World, tmp_path: Path
) -> None:
    """Sync, a week passes, sync: the second run writes exactly the events new that week."""
    ids = [prospect_id(n) for n in range(200)]
    source, out, state = write_ids(tmp_path / "ids.txt", ids), tmp_path / "e.jsonl", tmp_path / "s"
    before = world.truth(ids)
    async with world.client() as client:
        await sync(client, source, out, state)
        world.advance(7)
        second = await sync(client, source, out, state)
    after = world.truth(ids)
    written = jsonl_ids(out)
    assert len(written) == len(set(written))
    assert set(written) == before | after
    assert second.new_events == len(after - before) > 0


async def test_an_unchanged_list_costs_one_request_per_40_ids(world: World, tmp_path: Path) -> None:
    """200 IDs synced daily for a week: 5 requests a run, counted by the emulator."""
    ids = [prospect_id(n) for n in range(200)]
    source, out, state = write_ids(tmp_path / "ids.txt", ids), tmp_path / "e.db", tmp_path / "s"
    async with world.client() as client:
        for _ in range(7):
            before = world.emulator.stats.requests
            summary = await sync(client, source, out, state)
            assert world.emulator.stats.requests - before == 5 == summary.requests
            world.advance(1)


async def test_later_runs_ask_from_the_cursor_minus_the_lookback(
    api: ApiServer, clock: FakeClock, tmp_path: Path
) -> None:
    """Run one asks no window; run two asks from run one's start minus the lookback."""
    source = write_ids(tmp_path / "ids.txt", [prospect_id(n) for n in range(3)])
    async with EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock) as client:
        started = clock.time()
        await sync(client, source, tmp_path / "e.jsonl", tmp_path / "s")
        clock.wall_start += DAY
        await sync(
            client, source, tmp_path / "e.jsonl", tmp_path / "s", lookback=dt.timedelta(days=30)
        )
    first, second = api.requests
    assert "timestamp_from" not in first.body or first.body["timestamp_from"] is None
    asked = dt.datetime.fromisoformat(second.body["timestamp_from"].replace("Z", "+00:00"))
    assert asked == dt.datetime.fromtimestamp(started, dt.UTC) - dt.timedelta(days=30)
    assert dt.timedelta(days=35) == DEFAULT_LOOKBACK


async def test_a_failed_batch_keeps_its_cursor_and_is_asked_again_from_it(
    api: ApiServer, clock: FakeClock, tmp_path: Path
) -> None:
    """IDs whose batch failed keep no new cursor: the next run asks them their whole window."""
    ids = sorted(prospect_id(n) for n in range(80))  # a group is asked in ID order
    bad = set(ids[40:])

    async def handler(server: ApiServer, seen: Seen) -> web.StreamResponse:
        if bad & set(seen.ids):
            return web.json_response({"error": "boom"}, status=500)
        return web.json_response({"output_events": [event_for(pid) for pid in seen.ids]})

    api.handler = handler
    source, out, state = write_ids(tmp_path / "ids.txt", ids), tmp_path / "e.jsonl", tmp_path / "s"
    options = {"retry": RetryPolicy(max_attempts=1), "give_up_after": None}
    async with EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock, **options) as client:
        first = await sync(client, source, out, state)
        assert first.failed == 40 and first.synced == 40 and not first.complete
        cursors = dict(state_rows(state, "SELECT prospect_id, cursor FROM prospects"))
        assert set(cursors) == set(ids[:40])
        bad.clear()
        api.requests.clear()
        clock.wall_start += DAY
        second = await sync(client, source, out, state)
    assert second.complete and second.new_events == 40
    windows = {tuple(sorted(seen.ids)): seen.body.get("timestamp_from") for seen in api.requests}
    assert windows[tuple(sorted(ids[40:]))] is None  # never fetched: the whole window
    assert windows[tuple(sorted(ids[:40]))] is not None
    assert sorted(jsonl_ids(out)) == sorted({event_for(pid)["event_id"] for pid in ids})


async def test_an_event_dated_in_the_future_never_moves_a_cursor_past_the_run(
    api: ApiServer, clock: FakeClock, tmp_path: Path
) -> None:
    """An anniversary dated years ahead: the cursor is still the run's start."""
    future = {**event_for(prospect_id(1)), "event_time": "2031-01-01T00:00:00+00:00"}
    api.handler = lambda server, seen: web.json_response({"output_events": [future]})
    source = write_ids(tmp_path / "ids.txt", [prospect_id(1)])
    async with EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock) as client:
        started = int(clock.time())
        await sync(client, source, tmp_path / "e.jsonl", tmp_path / "s")
        clock.wall_start += DAY
        again = await sync(client, source, tmp_path / "e.jsonl", tmp_path / "s")
    assert state_rows(tmp_path / "s", "SELECT cursor FROM prospects") == [(started + DAY,)]
    assert again.new_events == 0 and len(jsonl_ids(tmp_path / "e.jsonl")) == 1


async def test_added_ids_get_their_whole_window_and_removed_ids_leave_the_state(
    world: World, tmp_path: Path
) -> None:
    """The list changes between runs: new IDs are asked everything, gone IDs nothing."""
    old, added = [prospect_id(n) for n in range(40)], [prospect_id(n) for n in range(40, 50)]
    out, state = tmp_path / "e.jsonl", tmp_path / "s"
    async with world.client() as client:
        await sync(client, write_ids(tmp_path / "a.txt", old), out, state)
        world.advance(1)
        summary = await sync(client, write_ids(tmp_path / "b.txt", old[10:] + added), out, state)
    assert summary.new_ids == 10 and summary.removed_ids == 10 and summary.requests == 2
    kept = {row[0] for row in state_rows(state, "SELECT prospect_id FROM prospects")}
    assert kept == set(old[10:] + added)
    assert set(jsonl_ids(out)) >= world.truth(added)


async def test_a_run_later_than_the_retention_warns_with_dates_and_still_runs(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """100 days between runs: a warning naming the dates that may be missing; the run completes."""
    ids = [prospect_id(n) for n in range(40)]
    source, out, state = write_ids(tmp_path / "ids.txt", ids), tmp_path / "e.jsonl", tmp_path / "s"
    async with world.client() as client:
        await sync(client, source, out, state)
        world.advance(100)
        with caplog.at_level(logging.WARNING, logger="explorium_events"):
            late = await sync(client, source, out, state)
    assert late.gap == (ORIGIN, ORIGIN + dt.timedelta(days=10)) and late.complete
    assert "2026-07-01 to 2026-07-11 may have been missed" in caplog.text
    assert set(jsonl_ids(out)) >= world.truth(ids)


async def test_emitted_event_ids_are_pruned_past_the_retention_plus_lookback(
    world: World, tmp_path: Path
) -> None:
    """Events older than 3 months + lookback leave the state; the newer ones stay."""
    ids = [prospect_id(n) for n in range(100)]
    source, out, state = write_ids(tmp_path / "ids.txt", ids), tmp_path / "e.jsonl", tmp_path / "s"
    async with world.client() as client:
        await sync(client, source, out, state)
        world.advance(60)
        summary = await sync(client, source, out, state)
    limit = int(world.now.timestamp()) - 90 * DAY - 35 * DAY
    times = [row[0] for row in state_rows(state, "SELECT event_time FROM emitted")]
    assert summary.pruned > 0 and min(times) >= limit
    assert len(times) == len(jsonl_ids(out)) - summary.pruned


async def test_events_written_after_the_last_commit_are_cut_off_before_the_next_run(
    world: World, tmp_path: Path
) -> None:
    """Bytes a killed run wrote past the recorded length are cut; nothing is duplicated."""
    ids = [prospect_id(n) for n in range(40)]
    source, out, state = write_ids(tmp_path / "ids.txt", ids), tmp_path / "e.jsonl", tmp_path / "s"
    async with world.client() as client:
        await sync(client, source, out, state)
        whole = out.read_bytes()
        with out.open("ab") as tail:
            tail.write(whole.splitlines(keepends=True)[0] + b'{"half')
        await sync(client, source, out, state)
    assert out.read_bytes() == whole


async def test_a_new_file_per_run_gets_only_that_runs_events(world: World, tmp_path: Path) -> None:
    """{started} in the output's name: each run's file holds only its new events."""
    ids = [prospect_id(n) for n in range(100)]
    source, state = write_ids(tmp_path / "ids.txt", ids), tmp_path / "s"
    pattern = str(tmp_path / "events-{started}.jsonl")
    async with world.client() as client:
        await sync(client, source, pattern, state)
        world.advance(7)
        second = await sync(client, source, pattern, state)
    files = listing(tmp_path, "events-*.jsonl")
    assert [path.name for path in files] == [
        "events-20260701T000000Z.jsonl",
        "events-20260708T000000Z.jsonl",
    ]
    assert len(jsonl_ids(files[1])) == second.new_events
    assert set(jsonl_ids(files[0])) | set(jsonl_ids(files[1])) == world.truth(ids) | set(
        jsonl_ids(files[0])
    )


async def test_an_sqlite_output_gets_the_new_events_upserted(world: World, tmp_path: Path) -> None:
    """Into SQLite: one row per event over every run."""
    ids = [prospect_id(n) for n in range(100)]
    source, out, state = write_ids(tmp_path / "ids.txt", ids), tmp_path / "e.db", tmp_path / "s"
    before = world.truth(ids)
    async with world.client() as client:
        await sync(client, source, out, state)
        world.advance(14)
        await sync(client, source, out, state)
    rows = {row[0] for row in state_rows(out, "SELECT event_id FROM events")}
    assert rows == before | world.truth(ids)


async def test_a_stopped_run_commits_what_it_did_and_the_next_run_does_the_rest(
    world: World, tmp_path: Path
) -> None:
    """Setting stop mid-run: interrupted, what was written recorded; rerun completes, once each."""
    import asyncio

    ids = [prospect_id(n) for n in range(400)]
    source, out, state = write_ids(tmp_path / "ids.txt", ids), tmp_path / "e.jsonl", tmp_path / "s"
    stop = asyncio.Event()
    async with world.client(max_concurrency=1) as client:

        def progress(summary: Any) -> None:
            if summary.synced >= 80:
                stop.set()

        first = await sync(client, source, out, state, stop=stop, progress=progress)
        rest = await sync(client, source, out, state)
    assert first.interrupted and 80 <= first.synced < 400
    assert rest.complete
    written = jsonl_ids(out)
    assert len(written) == len(set(written)) and set(written) == world.truth(ids)


async def test_bad_arguments_are_refused_naming_the_rule(world: World, tmp_path: Path) -> None:
    """Same file for output and state, a state of other types, a non-state file, bad IDs."""
    source = write_ids(tmp_path / "ids.txt", [prospect_id(1)])
    state = tmp_path / "s"
    async with world.client() as client:
        with pytest.raises(ConfigurationError, match="is the sync state"):
            await sync(client, source, state, state, format="jsonl")
        with pytest.raises(ConfigurationError, match="is also the output or the state"):
            await sync(client, source, source, state, format="jsonl")
        assert source.read_text() == f"{prospect_id(1)}\n"
        await sync(
            client, source, tmp_path / "e.jsonl", state, event_types=["prospect_changed_role"]
        )
        with pytest.raises(ConfigurationError, match="keeps prospect_changed_role"):
            await sync(client, source, tmp_path / "e.jsonl", state)
        (tmp_path / "other.db").write_bytes(b"")
        sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
        with pytest.raises(ConfigurationError, match="not a sync state"):
            await sync(client, source, tmp_path / "e.jsonl", tmp_path / "other.db")
        with pytest.raises(ConfigurationError, match="lookback"):
            await sync(client, source, tmp_path / "e.jsonl", state, lookback=-1)  # type: ignore[arg-type]
        bad = write_ids(tmp_path / "bad.txt", [prospect_id(2), "nope"])
        requests = world.emulator.stats.requests
        with pytest.raises(InvalidProspectIdError):
            await sync(client, bad, tmp_path / "e.jsonl", tmp_path / "s2")
        assert world.emulator.stats.requests == requests


async def test_the_state_records_its_version_and_runs_and_never_the_key(
    world: World, tmp_path: Path
) -> None:
    """The state says schema version 1, logs each run, and holds no trace of the API key."""
    source = write_ids(tmp_path / "ids.txt", [prospect_id(n) for n in range(10)])
    async with world.client() as client:
        await sync(client, source, tmp_path / "e.jsonl", tmp_path / "s")
    assert state_rows(tmp_path / "s", "PRAGMA user_version") == [(1,)]
    runs = state_rows(tmp_path / "s", "SELECT status, ids, new_ids FROM runs")
    assert runs == [("done", 10, 10)]
    assert TEST_KEY.encode() not in (tmp_path / "s").read_bytes()


async def test_a_csv_output_gets_one_header_and_each_new_event_once(
    world: World, tmp_path: Path
) -> None:
    """Two runs appended to a CSV: the header once, then one row per event."""
    ids = [prospect_id(n) for n in range(100)]
    source, out, state = write_ids(tmp_path / "ids.txt", ids), tmp_path / "e.csv", tmp_path / "s"
    before = world.truth(ids)
    async with world.client() as client:
        await sync(client, source, out, state)
        world.advance(10)
        await sync(client, source, out, state)
    lines = out.read_text().splitlines()
    assert (
        lines[0].startswith("event_id,")
        and sum(line.startswith("event_id,") for line in lines) == 1
    )
    written = [line.split(",")[0] for line in lines[1:]]
    assert len(written) == len(set(written)) and set(written) == before | world.truth(ids)


async def test_a_server_that_answers_nothing_usable_stops_the_run_and_keeps_cursors(
    api: ApiServer, clock: FakeClock, tmp_path: Path
) -> None:
    """Only 503s for give_up_after: ServerUnavailableError, no cursor moved, run logged failed."""
    from explorium_events import ServerUnavailableError

    api.handler = lambda server, seen: web.json_response({"error": "down"}, status=503)
    source = write_ids(tmp_path / "ids.txt", [prospect_id(n) for n in range(80)])
    async with EventsClient(
        api_key=TEST_KEY, base_url=api.url, clock=clock, give_up_after=5.0
    ) as client:
        with pytest.raises(ServerUnavailableError):
            await sync(client, source, tmp_path / "e.jsonl", tmp_path / "s")
    assert state_rows(tmp_path / "s", "SELECT COUNT(*) FROM prospects") == [(0,)]
    assert state_rows(tmp_path / "s", "SELECT status FROM runs") == [("failed",)]
