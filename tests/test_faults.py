"""The fault matrix: a 2,000-ID pull against the emulator under each fault alone and all at once.

The invariant is checked every time: every input ID is in exactly one of succeeded, failed
and invalid; the events are exactly the emulator's events for the succeeded IDs, each once,
newest first; every failure carries what went wrong. With retries on and faults below 30%,
nothing fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from dataclasses import dataclass
from typing import Any

import pytest

from explorium_events import (
    ApiError,
    EventsClient,
    FetchResult,
    MalformedResponse,
    RetryPolicy,
    TransportError,
)
from explorium_events._ids import normalize_prospect_id
from explorium_events.emulator import Emulator, EmulatorConfig, EmulatorStats, expected_events
from tests.conftest import TEST_KEY, prospect_id

ANCHOR = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
PULL_SIZE = 2000
# 100 batches, so that every fault shows up (at 5%, all but certainly) without a lucky seed.
BATCH_SIZE = 20
# A request timeout the spikes blow through, yet ample for a loopback answer on a busy box.
SPIKE_TIMEOUT = 0.25
SPIKE_MS = 600.0


class FastForwardClock:
    """Real time plus every sleep skipped: retry waits and Retry-After pauses cost nothing.

    Request timeouts stay real (aiohttp keeps its own time), which the latency spikes need.
    """

    def __init__(self) -> None:
        self.skipped = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return time.monotonic() + self.skipped

    def time(self) -> float:
        return time.time() + self.skipped

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.skipped += max(seconds, 0.0)
        await asyncio.sleep(0)


def pull_input() -> tuple[list[str], list[int]]:
    """2,000 valid IDs, 200 of them repeated in upper case, and 10 invalid values mixed in."""
    valid = [prospect_id(number) for number in range(PULL_SIZE)]
    values: list[str] = list(valid)
    values += [f" {pid.upper()} " for pid in valid[::10]]
    for number in range(10):
        position = 37 + number * 211
        values.insert(position, ["", "xyz", "g" * 40, "a" * 39, "a" * 41][number % 5])
    invalid_positions = [i for i, v in enumerate(values) if not _is_valid(v)]
    return values, invalid_positions


def _is_valid(value: str) -> bool:
    normalized = normalize_prospect_id(value)
    return len(normalized) == 40 and all(c in "0123456789abcdef" for c in normalized)


@dataclass
class Pull:
    result: FetchResult
    stats: EmulatorStats
    config: EmulatorConfig
    values: list[str]
    invalid_positions: list[int]
    clock: FastForwardClock


async def pull(
    *,
    retries: bool = True,
    request_timeout: float = 30.0,
    batch_size: int = BATCH_SIZE,
    **faults: Any,
) -> Pull:
    """Pull the standard input through the emulator with these faults, returning everything."""
    config = EmulatorConfig(rate_limit=None, now=ANCHOR, seed=7, **faults)
    values, invalid_positions = pull_input()
    clock = FastForwardClock()
    policy = (
        RetryPolicy(max_attempts=12, initial=0.01, cap=0.05, rng=random.Random(1))
        if retries
        else RetryPolicy(max_attempts=1)
    )
    async with Emulator(config, shutdown_timeout=SPIKE_MS / 1000) as emu:
        async with EventsClient(
            api_key=TEST_KEY,
            base_url=emu.url,
            rate_limit=None,
            batch_size=batch_size,
            request_timeout=request_timeout,
            retry=policy,
            clock=clock,
            rng=random.Random(2),
        ) as client:
            result = await client.fetch(values, skip_invalid=True, raise_on_error=False)
        stats = emu.stats
    return Pull(result, stats, config, values, invalid_positions, clock)


def check_invariant(run: Pull) -> None:
    """Every ID accounted for exactly once; events exactly the emulator's, once each, in order."""
    result = run.result
    wanted = {normalize_prospect_id(v) for v in run.values if _is_valid(v)}
    assert len(wanted) == PULL_SIZE
    succeeded, failed = result.succeeded, result.failed_ids
    assert len(succeeded) == len(set(succeeded)) and len(failed) == len(set(failed))
    assert not set(succeeded) & set(failed)
    assert set(succeeded) | set(failed) == wanted
    assert [bad.position for bad in result.invalid] == run.invalid_positions
    assert [bad.value for bad in result.invalid] == [run.values[i] for i in run.invalid_positions]

    expected = expected_events(sorted(succeeded), config=run.config)
    got = [event.to_dict() for event in result.events]
    assert len({event.event_id for event in result.events}) == len(got)
    assert got == expected
    assert result.stats.events == len(expected)

    for failure in result.failed:
        assert failure.prospect_ids and failure.attempts >= 1 and failure.message
        assert failure.error.prospect_ids == failure.prospect_ids
        if isinstance(failure.error, ApiError):
            assert failure.status == failure.error.status and failure.status in {
                429,
                500,
                502,
                503,
                504,
            }
            assert failure.correlation_id == failure.error.correlation_id
            assert failure.correlation_id is None or len(failure.correlation_id) == 32
        else:
            assert isinstance(failure.error, TransportError)
            expected_status = 200 if isinstance(failure.error, MalformedResponse) else None
            assert failure.status == expected_status
            assert failure.error.__cause__ is not None


FAULTS: dict[str, dict[str, Any]] = {
    "server_errors": {"error_rate": 0.10},
    "injected_429s": {"rate_limit_error_rate": 0.10, "retry_after_seconds": 2.0},
    "dropped_connections": {"drop_rate": 0.10},
    "truncated_bodies": {"truncate_rate": 0.10},
    "duplicated_events": {"duplicate_rate": 0.30},
    "latency_spikes": {"slow_rate": 0.10, "slow_ms": SPIKE_MS},
    # 5-6% each: an attempt meets some fault about 24% of the time.
    "all_at_once": {
        "error_rate": 0.06,
        "rate_limit_error_rate": 0.05,
        "retry_after_seconds": 2.0,
        "drop_rate": 0.05,
        "truncate_rate": 0.06,
        "duplicate_rate": 0.10,
        "slow_rate": 0.05,
        "slow_ms": SPIKE_MS,
        "latency_ms": 1.0,
        "latency_jitter_ms": 1.0,
    },
}


def timeout_for(faults: dict[str, Any]) -> float:
    return SPIKE_TIMEOUT if faults.get("slow_rate") else 30.0


def batch_size_for(name: str) -> int:
    # All at once, each fault is rarer: 200 batches make every one of them all but certain.
    return 10 if name == "all_at_once" else BATCH_SIZE


def check_the_fault_happened(name: str, run: Pull) -> None:
    """The emulator really injected the fault, so the test is not vacuous."""
    stats = run.stats
    by_status = stats.requests_by_status
    if name in ("server_errors", "all_at_once"):
        assert sum(by_status.get(status, 0) for status in (500, 502, 503, 504)) > 0
    if name in ("injected_429s", "all_at_once"):
        assert by_status.get(429, 0) > 0
    if name in ("dropped_connections", "all_at_once"):
        assert stats.dropped > 0
    if name in ("truncated_bodies", "all_at_once"):
        assert stats.truncated > 0
    if name in ("duplicated_events", "all_at_once"):
        assert stats.duplicated_events > 0
    if name == "latency_spikes":
        # Spikes are the only fault here: every retry followed a request timeout.
        assert run.result.stats.retries > 0


@pytest.mark.parametrize("name", list(FAULTS))
async def test_with_retries_every_fault_is_absorbed_and_nothing_is_lost(name: str) -> None:
    """With retries on and faults below 30%, a 2,000-ID pull fails nothing and loses nothing."""
    faults = FAULTS[name]
    run = await pull(request_timeout=timeout_for(faults), batch_size=batch_size_for(name), **faults)
    check_the_fault_happened(name, run)
    check_invariant(run)
    assert run.result.failed == []
    assert len(run.result.succeeded) == PULL_SIZE
    if name != "duplicated_events":
        assert run.result.stats.retries > 0
    if name == "duplicated_events":
        # No retries here, so every copy the server added is one the client dropped.
        assert run.result.stats.duplicates_dropped == run.stats.duplicated_events


async def test_429s_wait_for_retry_after_before_the_next_request() -> None:
    """After each injected 429 the client pauses at least its Retry-After (2 s) before retrying."""
    run = await pull(rate_limit_error_rate=0.10, retry_after_seconds=2.0)
    rate_limited = run.result.stats.rate_limited
    assert rate_limited == run.stats.requests_by_status.get(429, 0) > 0
    # Every 429 pauses the whole client: at least one 2 s wait per burst of 429s.
    pauses = [seconds for seconds in run.clock.sleeps if seconds >= 2.0]
    assert pauses and all(seconds <= 2.0 + 0.25 for seconds in pauses)
    assert run.clock.skipped >= 2.0


@pytest.mark.parametrize("name", [n for n in FAULTS if n != "duplicated_events"])
async def test_without_retries_failures_are_reported_and_nothing_is_lost(name: str) -> None:
    """With retries off, failed batches are reported with their cause; every ID is accounted for."""
    faults = FAULTS[name]
    run = await pull(retries=False, request_timeout=timeout_for(faults), **faults)
    check_invariant(run)
    assert run.result.failed, "a 10% fault rate over 50+ batches fails some batch"
    assert all(failure.attempts == 1 for failure in run.result.failed)
    assert run.result.stats.retries == 0
    if name == "server_errors":
        # The emulator sends a correlation id in about half of its 5xx bodies.
        assert any(failure.correlation_id for failure in run.result.failed)


# --- bulk pulls: interrupted under faults, resumed, exactly once ---------------------------


@pytest.mark.parametrize(
    ("out_name", "how"),
    [
        ("events.jsonl", "stop"),
        ("events.jsonl", "cancel"),
        ("events.csv", "cancel"),
        ("events.db", "stop"),
    ],
)
async def test_bulk_pull_interrupted_under_every_fault_resumes_to_exactly_once(
    tmp_path: Any, how: str, out_name: str
) -> None:
    """A checkpointed pull stopped twice amid all faults, then resumed, holds each event once."""
    import json
    import sqlite3

    from explorium_events import PullSummary, pull

    faults = dict(FAULTS["all_at_once"])
    config = EmulatorConfig(rate_limit=None, now=ANCHOR, seed=11, **faults)
    values = [prospect_id(number) for number in range(PULL_SIZE)]
    out, checkpoint = tmp_path / out_name, tmp_path / "pull.checkpoint"
    rng = random.Random(out_name + how)
    summaries: list[PullSummary] = []

    async with Emulator(config, shutdown_timeout=SPIKE_MS / 1000) as emu:

        async def one_run(stop_after: int | None) -> PullSummary | None:
            stop = asyncio.Event()

            def progress(summary: PullSummary) -> None:
                if stop_after is not None and summary.batches_run >= stop_after:
                    stop.set()

            async with EventsClient(
                api_key=TEST_KEY,
                base_url=emu.url,
                rate_limit=None,
                batch_size=BATCH_SIZE,
                request_timeout=SPIKE_TIMEOUT,
                clock=FastForwardClock(),
                retry=RetryPolicy(max_attempts=12, initial=0.01, cap=0.05),
            ) as client:
                work = pull(
                    client,
                    values,
                    str(out),
                    str(checkpoint),
                    progress=progress,
                    stop=stop if how == "stop" else None,
                )
                if how == "stop" or stop_after is None:
                    return await work
                task = asyncio.create_task(work)
                await stop.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                return None

        for stop_after in (rng.randint(3, 30), rng.randint(3, 30)):
            summary = await one_run(stop_after)
            if summary is not None:
                assert summary.interrupted and not summary.complete
                summaries.append(summary)
        final = await one_run(None)
    assert final is not None and final.complete and not final.interrupted
    assert final.done == PULL_SIZE and final.failed == 0

    expected = {event["event_id"]: event for event in expected_events(values, config=config)}
    if out_name.endswith(".db"):
        db = sqlite3.connect(out)
        try:
            got_ids = [row[0] for row in db.execute("select event_id from events")]
        finally:
            db.close()
    elif out_name.endswith(".csv"):
        import csv

        with out.open(newline="") as handle:
            got_ids = [row["event_id"] for row in csv.DictReader(handle)]
    else:
        lines = out.read_text().splitlines()
        got_ids = [json.loads(line)["event_id"] for line in lines]
        assert all(json.loads(line) == expected[json.loads(line)["event_id"]] for line in lines)
    assert len(got_ids) == len(set(got_ids)), "an event was written twice"
    assert set(got_ids) == set(expected)


# --- single-ID awaits (auto batching) under faults ----------------------------------------


@pytest.mark.parametrize("retries", [True, False])
async def test_events_for_under_every_fault_gives_each_caller_exactly_its_events(
    retries: bool,
) -> None:
    """2,000 concurrent events_for calls amid all faults: each gets its events or an error."""
    from explorium_events import ExploriumError

    faults = dict(FAULTS["all_at_once"])
    config = EmulatorConfig(rate_limit=None, now=ANCHOR, seed=5, **faults)
    values = [prospect_id(number) for number in range(PULL_SIZE)]
    policy = (
        RetryPolicy(max_attempts=12, initial=0.01, cap=0.05)
        if retries
        else RetryPolicy(max_attempts=1)
    )
    async with Emulator(config, shutdown_timeout=SPIKE_MS / 1000) as emu:
        async with EventsClient(
            api_key=TEST_KEY,
            base_url=emu.url,
            rate_limit=None,
            batch_size=BATCH_SIZE,
            request_timeout=SPIKE_TIMEOUT,
            clock=FastForwardClock(),
            retry=policy,
        ) as client:
            answers = await asyncio.gather(
                *(client.events_for(pid) for pid in values), return_exceptions=True
            )
    failed = 0
    for pid, answer in zip(values, answers, strict=True):
        if isinstance(answer, BaseException):
            assert isinstance(answer, ExploriumError), repr(answer)
            assert pid in getattr(answer, "prospect_ids", (pid,))
            failed += 1
            continue
        assert [event.to_dict() for event in answer] == expected_events([pid], config=config)
    if retries:
        assert failed == 0
    else:
        assert 0 < failed < PULL_SIZE
