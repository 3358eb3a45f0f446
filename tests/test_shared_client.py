"""One client shared by a busy application: 50 concurrent fetches with overlapping IDs."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import pytest
from aiohttp import web

from explorium_events import (
    EventsClient,
    FetchError,
    FetchResult,
    RetryPolicy,
    UnprocessableEntityError,
)
from explorium_events.emulator import Emulator, EmulatorConfig, expected_events
from tests.conftest import TEST_KEY, ApiServer, FakeClock, Seen, event_for, events_body, prospect_id

CALLERS = 50
LIMIT = 30
WINDOW = 60.0
CONCURRENCY = 4
ANCHOR = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def caller_ids(caller: int) -> list[str]:
    """Caller i asks for 100 IDs starting at 20*i: each list overlaps its neighbours'."""
    return [prospect_id(number) for number in range(caller * 20, caller * 20 + 100)]


def max_in_any_window(moments: list[float], window: float) -> int:
    """The most moments that fall in any half-open window (t - window, t]."""
    ordered = sorted(moments)
    most = 0
    start = 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - window:
            start += 1
        most = max(most, end - start + 1)
    return most


async def run_callers(client: EventsClient) -> list[FetchResult | BaseException]:
    return await asyncio.gather(
        *(client.fetch(caller_ids(caller)) for caller in range(CALLERS)), return_exceptions=True
    )


async def test_fifty_callers_share_one_limit_and_each_get_their_own_result() -> None:
    """50 concurrent fetches on one client stay within its window and concurrency, no 429."""
    clock = FakeClock()
    # The emulator reads the same fake clock, so its sliding window judges the client's.
    config = EmulatorConfig(
        rate_limit=LIMIT,
        rate_window=WINDOW,
        clock=clock.time,
        now=ANCHOR,
        latency_ms=1.0,
        seed=3,
    )
    async with Emulator(config) as emu:
        async with EventsClient(
            api_key=TEST_KEY,
            base_url=emu.url,
            rate_limit=LIMIT,
            rate_window=WINDOW,
            max_concurrency=CONCURRENCY,
            clock=clock,
            retry=RetryPolicy(max_attempts=1),
        ) as client:
            results = await run_callers(client)
            peak = client.peak_in_flight
        stats = emu.stats
    assert stats.requests_by_status.get(429, 0) == 0
    assert stats.requests_by_status == {200: CALLERS * 3}  # 100 IDs: batches of 40, 40, 20
    assert stats.peak_in_flight <= CONCURRENCY and peak <= CONCURRENCY
    assert stats.peak_in_flight > 1  # the callers really overlapped
    # 150 requests at 30 a minute: at least four full windows had to pass.
    assert clock.now >= 4 * WINDOW
    for caller, result in enumerate(results):
        assert isinstance(result, FetchResult), result
        assert sorted(result.succeeded) == sorted(caller_ids(caller))
        assert result.failed == [] and result.invalid == []
        expected = expected_events(caller_ids(caller), config=config)
        assert [event.to_dict() for event in result.events] == expected


async def test_fifty_callers_respect_the_window_as_the_server_saw_it(
    api: ApiServer, clock: FakeClock
) -> None:
    """Request arrival times at a recording server never put more than the limit in a window."""

    async def answer_after_a_few_ticks(server: ApiServer, seen: Seen) -> web.StreamResponse:
        for _ in range(3):  # let other requests arrive meanwhile, so that they overlap
            await asyncio.sleep(0)
        return web.json_response(events_body(seen.ids))

    api.handler = answer_after_a_few_ticks
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=api.url,
        rate_limit=LIMIT,
        rate_window=WINDOW,
        max_concurrency=CONCURRENCY,
        clock=clock,
    ) as client:
        results = await run_callers(client)
        peak = client.peak_in_flight
    assert all(isinstance(result, FetchResult) for result in results)
    moments = [seen.at for seen in api.requests]
    assert len(moments) == CALLERS * 3
    assert max_in_any_window(moments, WINDOW) <= LIMIT
    assert max_in_any_window(moments, WINDOW) == LIMIT  # and it ran at the limit, not below
    assert 1 < api.peak_in_flight <= CONCURRENCY and peak <= CONCURRENCY


POISON_CALLER = 17
POISON = prospect_id(POISON_CALLER * 20 + 1)


def poison_batch_handler(poison: str) -> Callable[[ApiServer, Seen], web.StreamResponse]:
    """A server that refuses (422) every batch holding ``poison`` and answers the rest."""

    def handle(server: ApiServer, seen: Seen) -> web.StreamResponse:
        if poison in seen.ids:
            return web.json_response(
                {"detail": [{"loc": ["body", "prospect_ids"], "msg": "bad", "type": "value"}]},
                status=422,
            )
        return web.json_response(events_body(seen.ids))

    return handle


@pytest.mark.parametrize("concurrency", [1, CONCURRENCY])
async def test_one_callers_failed_batch_touches_no_other_caller(
    api: ApiServer, clock: FakeClock, concurrency: int
) -> None:
    """Only the batch holding the poisoned ID fails, and only for the caller who sent it."""
    api.handler = poison_batch_handler(POISON)
    ids_of = {caller: caller_ids(caller) for caller in range(CALLERS)}
    # Only one caller has the poisoned ID: take it out of its neighbours' lists.
    for caller, values in ids_of.items():
        if caller != POISON_CALLER and POISON in values:
            values.remove(POISON)
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=api.url,
        rate_limit=None,
        max_concurrency=concurrency,
        clock=clock,
    ) as client:
        results = await asyncio.gather(
            *(client.fetch(values) for values in ids_of.values()), return_exceptions=True
        )
    for caller, outcome in zip(ids_of, results, strict=True):
        values = ids_of[caller]
        if caller == POISON_CALLER:
            assert isinstance(outcome, FetchError)
            result = outcome.result
            assert len(result.failed) == 1
            failure = result.failed[0]
            assert POISON in failure.prospect_ids and failure.status == 422
            assert isinstance(failure.error, UnprocessableEntityError)
            assert failure.attempts == 1  # a 422 is not retried
            assert sorted(result.succeeded + result.failed_ids) == sorted(values)
        else:
            assert isinstance(outcome, FetchResult), outcome
            result = outcome
            assert result.failed == []
            assert sorted(result.succeeded) == sorted(values)
        assert sorted(event.prospect_id for event in result.events) == sorted(result.succeeded)
        assert [event.to_dict() for event in result.events] == sorted(
            (event_for(pid) for pid in result.succeeded),
            key=lambda event: (
                -dt.datetime.fromisoformat(event["event_time"]).timestamp(),
                event["event_id"],
            ),
        )


async def test_one_caller_cancelled_midway_leaves_the_others_whole(
    api: ApiServer, clock: FakeClock
) -> None:
    """Cancelling one caller's fetch mid-pull costs the others nothing: their results are whole."""

    async def answer_after_a_few_ticks(server: ApiServer, seen: Seen) -> web.StreamResponse:
        for _ in range(3):
            await asyncio.sleep(0)
        return web.json_response(events_body(seen.ids))

    api.handler = answer_after_a_few_ticks
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=api.url,
        rate_limit=LIMIT,
        rate_window=WINDOW,
        max_concurrency=CONCURRENCY,
        clock=clock,
    ) as client:
        tasks = [asyncio.create_task(client.fetch(caller_ids(caller))) for caller in range(CALLERS)]
        for _ in range(100_000):  # yield until 10 requests went out; never hang
            if len(api.requests) >= 10:
                break
            await asyncio.sleep(0)
        tasks[POISON_CALLER].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        state = client.rate_limit_state()
    assert isinstance(results[POISON_CALLER], asyncio.CancelledError)
    for caller, result in enumerate(results):
        if caller != POISON_CALLER:
            assert isinstance(result, FetchResult), result
            assert sorted(result.succeeded) == sorted(caller_ids(caller))
    assert state.in_flight == 0
    assert max_in_any_window([seen.at for seen in api.requests], WINDOW) <= LIMIT
