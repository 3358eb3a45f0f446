"""events_for(): automatic batching of single-ID awaits, against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from explorium_events import (
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    Event,
    EventsClient,
    EventType,
    InvalidProspectIdError,
    RetryPolicy,
    UnprocessableEntityError,
)
from tests.conftest import TEST_KEY, ApiServer, FakeClock, Seen, events_body

IdMaker = Callable[[int], list[str]]
WINDOW = 0.005


class GateClock(FakeClock):
    """A fake clock whose sleeps wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self.gate.wait()
        self.now += max(seconds, 0.0)


def make_client(api: ApiServer, clock: FakeClock, **settings: Any) -> EventsClient:
    settings.setdefault("retry", RetryPolicy(max_attempts=4, initial=0.5, cap=4.0))
    settings.setdefault("batch_window", WINDOW)
    return EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock, **settings)


def only_ids(events: list[Event]) -> set[str]:
    return {event.prospect_id for event in events}


async def wait_for_requests(api: ApiServer, count: int) -> None:
    while len(api.requests) < count:
        await asyncio.sleep(0.001)


def unprocessable(seen: Seen) -> web.Response:
    body = {"detail": [{"loc": ["body", "prospect_ids", 0], "msg": "bad", "type": "value_error"}]}
    return web.json_response(body, status=422)


async def test_1000_concurrent_calls_make_25_requests(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """1,000 concurrent events_for calls make exactly 25 requests of 40, each caller its own."""
    wanted = ids(1000)
    async with make_client(api, clock, rate_limit=None) as client:
        results = await asyncio.gather(*(client.events_for(pid) for pid in wanted))
        await asyncio.sleep(0)
        assert not client._runner.tasks
    assert len(api.requests) == 25
    assert all(len(seen.ids) == 40 for seen in api.requests)
    assert sorted(api.ids_requested) == sorted(wanted)
    assert [only_ids(events) for events in results] == [{pid} for pid in wanted]


async def test_lone_call_goes_out_when_the_window_ends(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """A single call waits exactly one batch_window, then its request goes out."""
    async with make_client(api, clock) as client:
        events = await client.events_for(ids(1)[0])
    assert only_ids(events) == {ids(1)[0]}
    assert clock.sleeps == [WINDOW]
    assert [seen.at for seen in api.requests] == [pytest.approx(WINDOW)]


async def test_full_batch_goes_at_once_without_the_window(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """40 waiting IDs fill a batch: it goes at once and the window timer never sleeps."""
    async with make_client(api, clock) as client:
        await asyncio.gather(*(client.events_for(pid) for pid in ids(40)))
    assert clock.sleeps == []
    assert [seen.at for seen in api.requests] == [0.0]


async def test_different_parameters_never_share_a_request(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """Interleaved calls with two event-type sets and a window make one request per query."""
    wanted = ids(90)
    queries: list[dict[str, Any]] = [
        {"event_types": [EventType.PROSPECT_CHANGED_ROLE]},
        {"event_types": ["prospect_changed_company"], "timestamp_from": "2026-09-01"},
        {"event_types": ["prospect_changed_company"]},
    ]
    async with make_client(api, clock, rate_limit=None) as client:
        await asyncio.gather(
            *(client.events_for(pid, **queries[number % 3]) for number, pid in enumerate(wanted))
        )
    assert len(api.requests) == 3
    by_query = {
        (tuple(seen.body["event_types"]), seen.body.get("timestamp_from")): sorted(seen.ids)
        for seen in api.requests
    }
    assert by_query == {
        (("prospect_changed_role",), None): sorted(wanted[0::3]),
        (("prospect_changed_company",), "2026-09-01"): sorted(wanted[1::3]),
        (("prospect_changed_company",), None): sorted(wanted[2::3]),
    }


async def test_error_in_one_batch_reaches_its_40_callers_and_nobody_else(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """A 422 for the second batch fails exactly its 40 callers, with fetch's exception type."""
    wanted = ids(120)
    poison = wanted[45]

    def handler(server: ApiServer, seen: Seen) -> web.Response:
        if poison in seen.ids:
            return unprocessable(seen)
        return web.json_response(events_body(seen.ids))

    api.handler = handler
    async with make_client(api, clock, rate_limit=None) as client:
        results = await asyncio.gather(
            *(client.events_for(pid) for pid in wanted), return_exceptions=True
        )
        fetched = await client.fetch(wanted[40:80], raise_on_error=False)
    failed = [n for n, result in enumerate(results) if isinstance(result, BaseException)]
    assert failed == list(range(40, 80))
    assert all(isinstance(results[n], UnprocessableEntityError) for n in failed)
    assert type(results[40]) is type(fetched.failed[0].error)
    assert len(api.requests) == 4  # 3 batches, then the fetch: the 422 is not retried


async def test_rejected_key_is_raised_as_is_to_every_caller(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """A 401 reaches each caller as AuthenticationError, and nothing more is sent.

    With no rate limit there is no probe: the first round (here 2 requests) goes at
    once; with one, the probe goes alone and is the only request.
    """
    api.handler = lambda server, seen: web.json_response({"error": "bad key"}, status=401)
    for limit, most in ((None, 2), (200, 1)):
        api.requests.clear()
        async with make_client(api, clock, rate_limit=limit, max_concurrency=2) as client:
            results = await asyncio.gather(
                *(client.events_for(pid) for pid in ids(400)), return_exceptions=True
            )
        assert all(isinstance(result, AuthenticationError) for result in results)
        assert 1 <= len(api.requests) <= most


async def test_server_errors_are_retried_like_fetch(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """A 503 is retried with the client's policy and the callers get the second answer."""

    def handler(server: ApiServer, seen: Seen) -> web.Response:
        if len(server.requests) == 1:
            return web.json_response({"error": "busy"}, status=503)
        return web.json_response(events_body(seen.ids))

    api.handler = handler
    async with make_client(api, clock) as client:
        results = await asyncio.gather(*(client.events_for(pid) for pid in ids(3)))
    assert [only_ids(events) for events in results] == [{pid} for pid in ids(3)]
    assert len(api.requests) == 2


async def test_invalid_id_fails_only_its_caller_at_once(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """An invalid ID raises InvalidProspectIdError at once; the valid ones share one request."""
    async with make_client(api, clock) as client:
        with pytest.raises(InvalidProspectIdError, match="not-an-id"):
            await client.events_for("not-an-id")
        assert api.requests == [] and clock.sleeps == []
        calls = [client.events_for(pid) for pid in ids(5)]
        calls.insert(2, client.events_for("ABC"))
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[2], InvalidProspectIdError)
    assert [only_ids(r) for r in results if isinstance(r, list)] == [{pid} for pid in ids(5)]
    assert [sorted(seen.ids) for seen in api.requests] == [sorted(ids(5))]


async def test_ids_are_normalised_before_batching(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """An upper-case, padded ID is sent lowercase and shares the slot of its plain form."""
    pid = ids(1)[0]
    async with make_client(api, clock) as client, asyncio.timeout(10):  # a lost slot hangs
        loud, plain = await asyncio.gather(
            client.events_for(f" {pid.upper()} "), client.events_for(pid)
        )
    assert loud == plain and only_ids(plain) == {pid}
    assert [seen.ids for seen in api.requests] == [[pid]]


@pytest.mark.parametrize("when", ["waiting for the window", "in flight"])
async def test_cancelled_caller_leaves_the_batch_to_the_others(
    api: ApiServer, ids: IdMaker, when: str
) -> None:
    """Cancelling one caller, before or after its batch went, leaves the others served."""
    clock = GateClock()
    wanted = ids(10)
    api.release = asyncio.Event()
    async with make_client(api, clock) as client:
        # The last caller shares the cancelled caller's slot (single-flight).
        tasks = [asyncio.create_task(client.events_for(pid)) for pid in [*wanted, wanted[3]]]
        await asyncio.sleep(0)
        if when == "in flight":
            clock.gate.set()
            await wait_for_requests(api, 1)
        tasks[3].cancel()
        clock.gate.set()
        api.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    served = [only_ids(r) if isinstance(r, list) else r for n, r in enumerate(results) if n != 3]
    assert served == [{pid} for n, pid in enumerate([*wanted, wanted[3]]) if n != 3]
    assert [sorted(seen.ids) for seen in api.requests] == [sorted(wanted)]


async def test_concurrent_calls_for_one_id_share_one_slot(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """Ten calls for one ID and one for another make one request of two IDs; all are served."""
    first, second = ids(2)
    async with make_client(api, clock) as client, asyncio.timeout(10):  # a lost slot hangs
        results = await asyncio.gather(
            *(client.events_for(first) for _ in range(10)), client.events_for(second)
        )
        again = await client.events_for(first)
    assert [sorted(seen.ids) for seen in api.requests] == [sorted([first, second]), [first]]
    assert all(result == results[0] and only_ids(result) == {first} for result in results[:10])
    assert only_ids(results[10]) == {second} and again == results[0]
    results[0].clear()
    assert results[1], "each caller gets its own list"


async def test_aclose_sends_waiting_calls_and_answers_them(api: ApiServer, ids: IdMaker) -> None:
    """aclose() sends a batch still inside its window at once, and its callers get events."""
    clock = GateClock()  # the window never ends by itself
    client = make_client(api, clock, batch_window=60.0)
    tasks = [asyncio.create_task(client.events_for(pid)) for pid in ids(3)]
    await asyncio.sleep(0)
    async with asyncio.timeout(10):  # a safety net: without the flush this would hang
        await client.aclose()
        results = await asyncio.gather(*tasks)
    assert [only_ids(events) for events in results] == [{pid} for pid in ids(3)]
    assert [sorted(seen.ids) for seen in api.requests] == [sorted(ids(3))]
    assert clock.now == 0.0 and not client._runner.tasks
    with pytest.raises(ClientClosedError):
        await client.events_for(ids(1)[0])


async def test_cancelled_aclose_fails_waiters_with_client_closed(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """If aclose() is cancelled while a batch is in flight, its callers get ClientClosedError."""
    api.release = asyncio.Event()
    client = make_client(api, clock)
    tasks = [asyncio.create_task(client.events_for(pid)) for pid in ids(3)]
    await wait_for_requests(api, 1)
    closing = asyncio.create_task(client.aclose())
    await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    async with asyncio.timeout(10):  # a safety net: unanswered callers would hang here
        results = await asyncio.gather(*tasks, return_exceptions=True)
    api.release.set()
    assert all(isinstance(result, ClientClosedError) for result in results)
    assert client.closed and not client._runner.tasks


async def test_events_for_on_a_closed_client_raises(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """A closed client refuses events_for with ClientClosedError, sending nothing."""
    client = make_client(api, clock)
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await client.events_for(ids(1)[0])
    assert api.requests == []


async def test_cache_serves_hits_until_the_ttl_expires(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """With cache_ttl=30, a repeat call is answered from memory until 30 s have passed."""
    pid = ids(1)[0]
    async with make_client(api, clock, cache_ttl=30.0) as client:
        first = await client.events_for(pid)
        assert await client.events_for(pid) == first
        assert len(api.requests) == 1
        await client.events_for(pid, event_types=["prospect_changed_role"])
        assert len(api.requests) == 2, "another query is another cache entry"
        clock.now += 30.0
        assert await client.events_for(pid) == first
    assert len(api.requests) == 3


async def test_cache_is_bounded_and_drops_the_least_recently_used(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """With cache_size=2, a third entry evicts the least recently used one."""
    a, b, c = ids(3)
    async with make_client(api, clock, cache_ttl=300.0, cache_size=2) as client:
        for pid in (a, b, c):
            await client.events_for(pid)
        assert len(client.prospects._batcher._cache or ()) == 2
        await client.events_for(c)
        await client.events_for(b)
        assert len(api.requests) == 3
        await client.events_for(a)
    assert [seen.ids for seen in api.requests] == [[a], [b], [c], [a]]


async def test_failures_are_not_cached(api: ApiServer, clock: FakeClock, ids: IdMaker) -> None:
    """A failed call is not remembered: the next call asks the server again."""
    api.handler = lambda server, seen: unprocessable(seen)
    async with make_client(api, clock, cache_ttl=300.0) as client:
        for _ in range(2):
            with pytest.raises(UnprocessableEntityError):
                await client.events_for(ids(1)[0])
    assert len(api.requests) == 2


async def test_events_for_and_fetch_share_one_concurrency_budget(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """fetch and events_for running together never exceed max_concurrency requests."""

    async def slow(server: ApiServer, seen: Seen) -> web.Response:
        await asyncio.sleep(0.002)
        return web.json_response(events_body(seen.ids))

    api.handler = slow
    wanted = ids(800)
    async with make_client(api, clock, max_concurrency=3, rate_limit=None) as client:
        fetched, single = await asyncio.gather(
            client.fetch(wanted[:400]),
            asyncio.gather(*(client.events_for(pid) for pid in wanted[400:])),
        )
        assert client.peak_in_flight == 3
    assert api.peak_in_flight == 3
    assert len(api.requests) == 20
    assert len(fetched.events) == 400 and len(single) == 400


async def test_events_for_and_fetch_share_one_rate_limit(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """With 5 requests a minute, 3 from fetch and 3 from events_for: one waits a minute."""
    wanted = ids(240)
    async with make_client(api, clock, rate_limit=5, rate_window=60.0) as client:
        await asyncio.gather(
            client.fetch(wanted[:120]), *(client.events_for(pid) for pid in wanted[120:])
        )
    assert len(api.requests) == 6
    # The only sleep is the limiter's (full batches never wait for their window).
    assert clock.sleeps == [pytest.approx(60.0)]


@pytest.mark.parametrize(
    "settings",
    [{"batch_window": -0.1}, {"cache_ttl": 0}, {"cache_ttl": 10, "cache_size": 0}],
)
def test_impossible_batching_settings_are_refused(settings: dict[str, Any]) -> None:
    """A negative window, a non-positive TTL or an empty cache is a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        EventsClient(api_key=TEST_KEY, **settings)
