"""Issue 10, secrets-settings: a client belongs to one event loop, and says so when misused."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from explorium_events import ConfigurationError, EventsClient
from explorium_events.emulator import Emulator
from tests.conftest import TEST_KEY, prospect_id

IDS = [prospect_id(number) for number in range(10)]
ONE_PER_LOOP = "create one client per event loop"


def _in_a_new_loop(work: Callable[[], Any]) -> Any:
    """Run ``work()``'s coroutine with asyncio.run in a thread: a loop of its own."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(work())
        except BaseException as exc:  # handed to the test, which asserts on it
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the second loop hung"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


async def test_a_client_used_from_a_second_live_loop_says_one_client_per_loop() -> None:
    """fetch() from another loop while the first still runs: ConfigurationError, no hang."""
    async with Emulator() as emulator:
        async with EventsClient(api_key=TEST_KEY, base_url=emulator.url) as client:
            assert len((await client.fetch(IDS)).succeeded) == len(IDS)

            async def from_elsewhere() -> None:
                await client.fetch(IDS)

            with pytest.raises(ConfigurationError, match=ONE_PER_LOOP):
                await asyncio.to_thread(_in_a_new_loop, from_elsewhere)

            async def enter_elsewhere() -> None:
                async with client:
                    pass

            with pytest.raises(ConfigurationError, match=ONE_PER_LOOP):
                await asyncio.to_thread(_in_a_new_loop, enter_elsewhere)
            # The client still works in its own loop, and closes there.
            assert len((await client.fetch(IDS)).succeeded) == len(IDS)
        assert client.closed


def test_a_client_used_in_a_second_asyncio_run_says_one_client_per_loop() -> None:
    """Built and used in one asyncio.run, used in another: the clear error, every entry point."""

    async def serve_and_use() -> EventsClient:
        async with Emulator() as emulator:
            client = EventsClient(api_key=TEST_KEY, base_url=emulator.url)
            await client.fetch(IDS)
        return client

    # Held in a list, so that the test can drop its only reference at the end.
    held: list[EventsClient] = [_in_a_new_loop(serve_and_use)]

    async def fetch_again() -> None:
        await held[0].fetch(IDS)

    async def stream_again() -> None:
        async for _ in held[0].stream(IDS):
            pass

    async def one_prospect() -> None:
        await held[0].events_for(IDS[0])

    for again in (fetch_again, stream_again, one_prospect):
        with pytest.raises(ConfigurationError, match=ONE_PER_LOOP):
            _in_a_new_loop(again)

    # The first loop is gone, and what the client held died with it: closing is quiet.
    async def close() -> None:
        await held[0].aclose()

    _in_a_new_loop(close)
    assert held[0].closed
    # The first loop never closed the client: its connector leaks, as any aiohttp session
    # left open in a finished loop does. That warning is the misuse's, not this test's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        held.clear()
        gc.collect()
