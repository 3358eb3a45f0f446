"""BatchStream: results one batch at a time, lazily read input, clean stops and closes."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

import pytest

from explorium_events import ClientClosedError, EventsClient, RetryPolicy
from tests.conftest import TEST_KEY, ApiServer, FakeClock

IdMaker = Callable[[int], list[str]]


def make_client(api: ApiServer, clock: FakeClock, **settings: Any) -> EventsClient:
    settings.setdefault("retry", RetryPolicy(max_attempts=4, initial=0.5, cap=4.0))
    return EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock, **settings)


async def test_stream_yields_each_batch_and_break_cancels_the_rest(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """Breaking out of stream() stops new requests and leaves no worker task running."""
    async with make_client(api, clock, max_concurrency=2) as client:
        seen_batches = 0
        async with client.stream(ids(400)) as batches:
            async for batch in batches:
                assert batch.ok and len(batch.prospect_ids) == 40
                seen_batches += 1
                if seen_batches == 2:
                    break
        # Requests already on the wire when the loop broke may still land; nothing after.
        await asyncio.sleep(0.01)
        sent = len(api.requests)
        # In flight, and waiting for the consumer: max_concurrency of each at most.
        assert sent <= seen_batches + 2 * client.max_concurrency
        await asyncio.sleep(0.01)
        assert len(api.requests) == sent
        assert not client._runner.tasks
        leftovers = [task for task in asyncio.all_tasks() if "explorium" in task.get_name()]
        assert leftovers == []


async def test_a_consumer_busy_with_a_batch_leaves_max_concurrency_more_results_coming(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """While the consumer holds a batch, the workers go on until 2 x max_concurrency more."""
    concurrency = 2
    async with make_client(api, clock, max_concurrency=concurrency) as client:
        async with client.stream(ids(40 * 20)) as batches:
            async for _batch in batches:
                # The consumer is busy: the workers fill the room, then wait for it.
                for _ in range(2_000):
                    if len(api.requests) >= 1 + 2 * concurrency:
                        break
                    await asyncio.sleep(0.001)
                for _ in range(50):
                    await asyncio.sleep(0)
                assert len(api.requests) == 1 + 2 * concurrency
                break


async def test_break_without_context_manager_also_cleans_up(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """A bare `async for ... break` is cleaned up by the async generator's finaliser."""
    async with make_client(api, clock, max_concurrency=2) as client:
        async for _batch in client.stream(ids(400)):
            break
        gc.collect()
        for _ in range(20):
            await asyncio.sleep(0)
        assert not client._runner.tasks


async def test_input_is_pulled_lazily(api: ApiServer, clock: FakeClock, ids: IdMaker) -> None:
    """After the first batch of a huge input arrives, only a few batches were read from it."""
    pulled = 0

    def endless() -> Any:
        nonlocal pulled
        number = 0
        while True:
            pulled += 1
            number += 1
            yield f"{number:040x}"

    async with make_client(api, clock, max_concurrency=4) as client:
        async with client.stream(endless(), skip_invalid=True) as batches:
            async for _batch in batches:
                break
    assert pulled <= 40 * 10


async def test_closing_the_client_ends_a_stream_consumed_elsewhere(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """aclose() while another task reads a stream ends that stream with ClientClosedError."""
    api.release = asyncio.Event()
    client = make_client(api, clock, max_concurrency=2)

    async def consume() -> int:
        count = 0
        async for _batch in client.stream(ids(400)):
            count += 1
        return count

    reader = asyncio.create_task(consume())
    while not api.requests:
        await asyncio.sleep(0.001)
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await asyncio.wait_for(reader, 5)
    api.release.set()


async def test_a_refused_key_counts_the_ids_and_repeats_of_the_input_read_after_it(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """After a 401, the rest of the input fails by batch and its IDs and repeats are counted."""
    from aiohttp import web

    api.handler = lambda server, seen: web.json_response({"details": "no"}, status=401)
    values = ids(100) * 2
    async with make_client(api, clock, max_concurrency=1) as client:
        result = await client.fetch(values, raise_on_error=False)
    assert sorted(result.failed_ids) == sorted(set(values))
    assert result.stats.ids == 100 and result.stats.duplicate_ids == 100
    assert len(result.failed_ids) + result.stats.duplicate_ids == len(values)
