"""A resumed pull or sync remembers the server's limit: into a full window it costs one 429.

Without a client-side limit (``rate_limit=None``) a fresh client does not probe, so a
restart into a window an earlier run filled would cost a 429 per worker. The checkpoint
and the sync state keep the limit the earlier run read from ``X-RateLimit-Limit``, and the
resumed run probes first. The emulator and both clients read one fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from explorium_events import EventsClient, pull, sync
from explorium_events.emulator import Emulator, EmulatorConfig, expected_events_at
from tests.conftest import TEST_KEY, FakeClock, prospect_id

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
LIMIT = 10  # requests per 60 s at the emulator
IDS = [prospect_id(number) for number in range(3 * LIMIT)]  # one ID a request: 3 windows


class RunClock(FakeClock):
    """A fake clock for a run against a real server: time moves only while nothing is out.

    While ``holding`` (the first run), the first wait sets ``stop`` and never returns: a
    run without retries first waits when the limiter paces a spent window. Otherwise a
    wait returns at its deadline, and time moves there only once no request is in flight
    (``busy``) and no earlier deadline is pending: a request is never stamped by the
    server later than the client that sent it thinks, as a plain FakeClock, whose time
    jumps on any sleep, would have it.
    """

    def __init__(self, wall_start: float) -> None:
        super().__init__(wall_start)
        self.stop = asyncio.Event()
        self.holding = False
        self.busy: Callable[[], bool] = lambda: False
        self._deadlines: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.holding:
            self.stop.set()
            await asyncio.Event().wait()  # until the stopped run is cancelled
        deadline = self.now + max(seconds, 0.0)
        self._deadlines.append(deadline)
        try:
            while deadline > self.now:
                await asyncio.sleep(0.001)  # real time only for the loopback I/O to run
                if not self.busy() and deadline <= min(self._deadlines):
                    self.now = deadline
        finally:
            self._deadlines.remove(deadline)


@pytest.fixture
def clock() -> RunClock:
    return RunClock(NOW.timestamp())


@pytest.fixture
async def emulator(clock: RunClock) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(rate_limit=LIMIT, rate_window=60.0, now=NOW, clock=clock.time)
    async with Emulator(config) as emu:
        yield emu


def client_for(emulator: Emulator, clock: RunClock) -> EventsClient:
    """A new client, as after a restart: no client-side limit, 8 in flight, one ID a request."""
    client = EventsClient(
        api_key=TEST_KEY,
        base_url=emulator.url,
        rate_limit=None,
        max_concurrency=8,
        batch_size=1,
        clock=clock,
    )
    clock.busy = lambda: bool(client.rate_limit_state().in_flight or emulator.stats.in_flight)
    return client


def refused(emulator: Emulator) -> int:
    return emulator.stats.requests_by_status.get(429, 0)


def expected_ids(emulator: Emulator) -> list[str]:
    served = expected_events_at(IDS, config=emulator.config, at=NOW)
    return sorted(str(event["event_id"]) for event in served)


def written_ids(path: Path) -> list[str]:
    return sorted(json.loads(line)["event_id"] for line in path.read_text().splitlines())


def remembered_limit(path: Path) -> Any:
    # closing(): a connection's own `with` ends a transaction but leaves it open.
    with contextlib.closing(sqlite3.connect(path)) as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'server_limit'").fetchone()
    return None if row is None else json.loads(row[0])


def holds_no_key(folder: Path, prefix: str) -> bool:
    """Whether no file named ``prefix...`` (the -wal and -shm beside it too) holds the key."""
    files = [path for path in folder.iterdir() if path.name.startswith(prefix)]
    assert files
    return all(TEST_KEY.encode() not in path.read_bytes() for path in files)


async def test_a_resumed_pull_without_a_client_limit_costs_one_429_in_a_full_window(
    emulator: Emulator, clock: RunClock, tmp_path: Path
) -> None:
    """Run 1 fills the window and stops; a new client resuming its checkpoint gets one 429."""
    out, checkpoint = tmp_path / "events.jsonl", tmp_path / "pull.ckpt"
    clock.holding = True
    async with client_for(emulator, clock) as client:
        first = await pull(client, IDS, out, checkpoint, stop=clock.stop)
    assert first.interrupted and 0 < first.done < len(IDS)
    assert refused(emulator) == 0
    assert remembered_limit(checkpoint) == {"limit": LIMIT, "cost": "request"}

    clock.holding = False
    emulator.stats.reset()
    async with client_for(emulator, clock) as client:  # the window is still full
        second = await pull(client, IDS, out, checkpoint)
    assert refused(emulator) == 1
    assert second.complete and second.done == len(IDS)
    assert written_ids(out) == expected_ids(emulator)
    assert holds_no_key(tmp_path, "pull.ckpt")


async def test_a_resumed_sync_without_a_client_limit_costs_one_429_in_a_full_window(
    emulator: Emulator, clock: RunClock, tmp_path: Path
) -> None:
    """Run 1 fills the window and stops; the next run, with a new client, gets one 429."""
    out, state = tmp_path / "events.jsonl", tmp_path / "crm.sync"
    clock.holding = True
    async with client_for(emulator, clock) as client:
        first = await sync(client, IDS, out, state, stop=clock.stop)
    assert first.interrupted and 0 < first.synced < len(IDS)
    assert refused(emulator) == 0
    assert remembered_limit(state) == {"limit": LIMIT, "cost": "request"}

    clock.holding = False
    emulator.stats.reset()
    async with client_for(emulator, clock) as client:  # the window is still full
        second = await sync(client, IDS, out, state)
    assert refused(emulator) == 1
    assert second.complete and second.synced == len(IDS)
    assert written_ids(out) == expected_ids(emulator)
    assert holds_no_key(tmp_path, "crm.sync")
