"""Cancellation and shutdown: whatever point a pull is stopped at, nothing is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from explorium_events import ClientClosedError, EventsClient, RetryPolicy
from tests.conftest import TEST_KEY, ApiServer, Seen, events_body

IdMaker = Callable[[int], list[str]]
SEEDS = range(8)


class HoldSome:
    """A handler that answers some requests at once and holds the others until released."""

    def __init__(self, rng: random.Random, held_share: float) -> None:
        self.rng = rng
        self.held_share = held_share
        self.gate = asyncio.Event()
        self.answered = 0

    async def __call__(self, server: ApiServer, seen: Seen) -> web.StreamResponse:
        if self.rng.random() < self.held_share:
            await self.gate.wait()
        self.answered += 1
        return web.json_response(events_body(seen.ids))


@contextlib.contextmanager
def unraisable_errors() -> Iterator[list[Any]]:
    """Collect what would go to sys.unraisablehook: ResourceWarnings from __del__ and the like."""
    caught: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = caught.append
    try:
        yield caught
    finally:
        sys.unraisablehook = previous


def worker_tasks() -> list[asyncio.Task[Any]]:
    """The client's tasks still alive in this loop."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("explorium-events") and not task.done()
    ]


def connections_in_use(client: EventsClient) -> int:
    """Connections the client's pool has handed out and not yet taken back."""
    session: aiohttp.ClientSession | None = client._runner._transport._session
    if session is None or session.closed:
        return 0
    return len(session.connector._acquired)  # type: ignore[union-attr]


async def settle() -> None:
    """Let callbacks scheduled by cancellation and closing run (no waiting for time)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def assert_nothing_left(client: EventsClient) -> None:
    """No worker task, nothing in flight, no connection held, and a clean close."""
    await settle()
    assert worker_tasks() == []
    assert not client._runner.tasks
    assert client._runner.in_flight == 0
    assert client.rate_limit_state().in_flight == 0
    assert connections_in_use(client) == 0
    with unraisable_errors() as caught:
        await client.aclose()
        await client.aclose()
        gc.collect()
        await settle()
        gc.collect()
    assert caught == []
    assert client._runner._transport._session is None


def make_client(api: ApiServer, **settings: Any) -> EventsClient:
    settings.setdefault("retry", RetryPolicy(max_attempts=3, initial=0.01, cap=0.02))
    settings.setdefault("rate_limit", None)
    return EventsClient(api_key=TEST_KEY, base_url=api.url, **settings)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the loop until the condition holds; fail, never hang, if it does not."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    pytest.fail(f"never happened: {what}")


async def wait_for_requests(api: ApiServer, count: int) -> None:
    await until(lambda: len(api.requests) >= count, f"{count} requests")


@pytest.mark.parametrize("seed", SEEDS)
async def test_cancelling_fetch_at_a_random_point_leaves_nothing_behind(
    api: ApiServer, ids: IdMaker, seed: int
) -> None:
    """A fetch cancelled after a random number of requests and ticks cleans up completely."""
    rng = random.Random(seed)
    held_share = rng.choice([0.0, 0.3, 1.0])
    handler = HoldSome(rng, held_share=held_share)
    api.handler = handler
    client = make_client(api, max_concurrency=rng.randint(1, 8), batch_size=rng.randint(1, 40))
    try:
        task = asyncio.create_task(client.fetch(ids(rng.randint(200, 800))))
        count = rng.randint(1, 6)
        await until(lambda: len(api.requests) >= count or task.done(), f"{count} requests")
        for _ in range(rng.randint(0, 20)):
            await asyncio.sleep(0)
        if task.done():
            pytest.skip("the fetch finished before the cancellation point")  # pragma: no cover
        if held_share == 1.0:
            # Requests are held open by the server: cancelling must give their connections back.
            assert connections_in_use(client) > 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await assert_nothing_left(client)
    finally:
        handler.gate.set()
        await client.aclose()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("managed", [True, False])
async def test_breaking_out_of_stream_at_a_random_batch_leaves_nothing_behind(
    api: ApiServer, ids: IdMaker, seed: int, managed: bool
) -> None:
    """Leaving a stream after a random number of batches cancels the rest and cleans up."""
    rng = random.Random(seed)
    handler = HoldSome(rng, held_share=0.0)
    api.handler = handler
    client = make_client(api, max_concurrency=rng.randint(1, 8), batch_size=rng.randint(1, 40))
    stop_after = rng.randint(1, 10)
    try:
        seen = 0
        if managed:
            async with client.stream(ids(2000)) as batches:
                async for _ in batches:
                    seen += 1
                    if seen == stop_after:
                        break
        else:
            async for _ in client.stream(ids(2000)):
                seen += 1
                if seen == stop_after:
                    break
            # A bare break leaves the clean-up to the async generator's finaliser.
            gc.collect()
        assert seen == stop_after
        # Far fewer than all batches were asked for: the rest was cancelled, not run.
        assert len(api.requests) < 2000 // client.batch_size
        await assert_nothing_left(client)
    finally:
        handler.gate.set()
        await client.aclose()


async def test_cancelling_during_a_retry_after_pause_ends_at_once(
    api: ApiServer, ids: IdMaker
) -> None:
    """A fetch waiting out a 429's 30 s pause stops at once when cancelled: no retry of it.

    With no rate limit there is no probe: the first round (up to max_concurrency requests)
    goes at once, and the pause holds every one of them.
    """
    api.handler = lambda server, seen: web.json_response(
        {"error": "slow down"}, status=429, headers={"Retry-After": "30"}
    )
    client = make_client(api, retry=RetryPolicy(max_attempts=5, max_retry_after=60))
    task = asyncio.create_task(client.fetch(ids(400)))
    await wait_for_requests(api, 1)
    await until(lambda: client.rate_limit_state().paused_for > 0, "a pause after the 429")
    await until(lambda: client._runner.in_flight == 0, "the first round answered")
    sent = len(api.requests)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 1 <= sent <= client.max_concurrency
    assert len(api.requests) == sent
    await assert_nothing_left(client)


async def test_cancelling_during_backoff_ends_at_once(api: ApiServer, ids: IdMaker) -> None:
    """A fetch sleeping between retries of a 503 stops at once when cancelled."""
    api.handler = lambda server, seen: web.json_response({"error": "down"}, status=503)
    client = make_client(api, retry=RetryPolicy(max_attempts=5, initial=30, cap=30))
    task = asyncio.create_task(client.fetch(ids(40)))
    await wait_for_requests(api, 1)
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(api.requests) == 1
    await assert_nothing_left(client)


async def test_closing_the_client_under_a_running_fetch_ends_it_cleanly(
    api: ApiServer, ids: IdMaker
) -> None:
    """aclose() from another task ends a fetch in progress with ClientClosedError, cleanly."""
    handler = HoldSome(random.Random(0), held_share=1.0)
    api.handler = handler
    client = make_client(api)
    try:
        task = asyncio.create_task(client.fetch(ids(400)))
        await wait_for_requests(api, 1)
        with unraisable_errors() as caught:
            await client.aclose()
            with pytest.raises(ClientClosedError):
                await task
            gc.collect()
        assert caught == []
        assert worker_tasks() == []
        assert client._runner._transport._session is None
    finally:
        handler.gate.set()


async def test_a_closed_client_refuses_every_kind_of_work(api: ApiServer, ids: IdMaker) -> None:
    """After aclose() (twice), fetch, stream and a new async-with all raise ClientClosedError."""
    client = make_client(api)
    async with client:
        await client.fetch(ids(10))
    await client.aclose()
    assert client.closed
    requests_before = len(api.requests)
    with pytest.raises(ClientClosedError):
        await client.fetch(ids(10))
    with pytest.raises(ClientClosedError):
        client.stream(ids(10))
    with pytest.raises(ClientClosedError):
        async with client:
            pass  # pragma: no cover
    assert len(api.requests) == requests_before
    assert "closed=True" in repr(client)


async def test_a_client_never_used_closes_twice_without_warnings() -> None:
    """A client that made no request closes twice, binding nothing and warning nothing."""
    with unraisable_errors() as caught:
        client = EventsClient(api_key=TEST_KEY, base_url="http://127.0.0.1:9")
        await client.aclose()
        await client.aclose()
        del client
        gc.collect()
    assert caught == []


async def test_an_abandoned_stream_never_started_leaves_nothing_behind(
    api: ApiServer, ids: IdMaker
) -> None:
    """A stream created and dropped without iterating sends nothing and starts no task."""
    client = make_client(api)
    stream = client.stream(ids(100))
    del stream
    gc.collect()
    await settle()
    assert api.requests == [] and worker_tasks() == []
    await assert_nothing_left(client)


@pytest.mark.parametrize("seed", range(4))
async def test_cancelling_some_events_for_callers_leaves_the_rest_whole(
    api: ApiServer, ids: IdMaker, seed: int
) -> None:
    """Cancelling random single-ID awaits mid-flight costs the others of their batch nothing."""
    rng = random.Random(seed)
    handler = HoldSome(rng, held_share=1.0)
    api.handler = handler
    client = make_client(api, max_concurrency=rng.randint(1, 4))
    wanted = ids(200)
    try:
        tasks = [asyncio.create_task(client.events_for(pid)) for pid in wanted]
        await until(lambda: len(api.requests) >= 1, "a request held by the server")
        doomed = set(rng.sample(range(len(tasks)), 50))
        for index in doomed:
            tasks[index].cancel()
        handler.gate.set()
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        for index, (pid, answer) in enumerate(zip(wanted, answers, strict=True)):
            if index in doomed:
                assert isinstance(answer, asyncio.CancelledError)
            else:
                assert not isinstance(answer, BaseException), answer
                assert [event.prospect_id for event in answer] == [pid]
        await assert_nothing_left(client)
    finally:
        handler.gate.set()
        await client.aclose()
