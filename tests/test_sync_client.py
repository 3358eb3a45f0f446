"""SyncEventsClient: the async client's results and errors, from plain code and inside a loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from pathlib import Path

import pytest

from explorium_events import (
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    EventsClient,
    FetchError,
    InvalidBusinessIdError,
    InvalidProspectIdError,
    SyncEventsClient,
)
from explorium_events.emulator import (
    expected_business_events,
    expected_events,
    make_business_ids,
    make_prospect_ids,
)
from explorium_events.pytest_plugin import RunningEmulator


def _event_ids(events: list[dict[str, object]]) -> list[object]:
    return [event["event_id"] for event in events]


def test_fetch_from_plain_code_returns_the_emulators_events(
    explorium_emulator: RunningEmulator,
) -> None:
    """A blocking fetch from a plain function returns every expected event, newest first."""
    ids = make_prospect_ids(100, seed=1)
    with explorium_emulator.sync_client() as client:
        result = client.fetch(ids)
    expected = expected_events(ids, config=explorium_emulator.config)
    assert [event.event_id for event in result.events] == _event_ids(expected)
    assert sorted(result.succeeded) == sorted(ids)


async def test_fetch_inside_a_running_loop_equals_the_async_clients(
    explorium_emulator: RunningEmulator,
) -> None:
    """Called from a coroutine (as in a Jupyter cell), it works and matches EventsClient.fetch."""
    ids = make_prospect_ids(60, seed=2)
    async with explorium_emulator.client() as async_client:
        wanted = await async_client.fetch(ids)
    with explorium_emulator.sync_client() as client:
        got = client.fetch(ids)  # blocks this loop's thread; runs on the client's own
    assert got.events == wanted.events
    assert got.succeeded == wanted.succeeded


def test_errors_are_the_async_clients_errors(explorium_emulator: RunningEmulator) -> None:
    """A refused key: FetchError from AuthenticationError, as async; a bad ID likewise."""
    with explorium_emulator.sync_client(api_key="not-the-key") as client:
        with pytest.raises(FetchError) as caught:
            client.fetch(make_prospect_ids(3))
        assert isinstance(caught.value.__cause__, AuthenticationError)
        assert caught.value.result.failed_ids == make_prospect_ids(3)
        with pytest.raises(AuthenticationError):
            client.events_for(make_prospect_ids(1)[0])
    with explorium_emulator.sync_client() as client:
        with pytest.raises(InvalidProspectIdError):
            client.fetch(["not-an-id"])


def test_stream_yields_each_batch_and_stops_early_on_close(
    explorium_emulator: RunningEmulator,
) -> None:
    """stream() is an iterator of batch results; closing it early leaves no batch running."""
    ids = make_prospect_ids(100, seed=3)
    with explorium_emulator.sync_client(batch_size=40, max_concurrency=1) as client:
        sizes = sorted(len(batch.prospect_ids) for batch in client.stream(ids))
        assert sizes == [20, 40, 40]
        with contextlib.closing(client.stream(ids)) as batches:
            first = next(batches)
        assert first.failure is None
        assert client.async_client.peak_in_flight <= 1


def test_events_for_calls_from_threads_share_batched_requests(
    explorium_emulator: RunningEmulator,
) -> None:
    """Ten threads calling events_for at once share one request (sent when the batch is full)."""
    ids = make_prospect_ids(10, seed=4)
    results: dict[str, list[str]] = {}
    barrier = threading.Barrier(len(ids))
    with explorium_emulator.sync_client(batch_size=10, batch_window=60.0) as client:

        def ask(prospect_id: str) -> None:
            barrier.wait()
            results[prospect_id] = [event.event_id for event in client.events_for(prospect_id)]

        threads = [threading.Thread(target=ask, args=(pid,)) for pid in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    config = explorium_emulator.config
    assert results == {pid: _event_ids(expected_events([pid], config=config)) for pid in ids}
    assert explorium_emulator.stats.requests == 1


def test_pull_writes_every_event_once(explorium_emulator: RunningEmulator, tmp_path: Path) -> None:
    """A blocking pull with a checkpoint writes the events fetch() would return."""
    ids = make_prospect_ids(90, seed=5)
    out = tmp_path / "events.jsonl"
    with explorium_emulator.sync_client() as client:
        summary = client.pull(ids, out, tmp_path / "pull.ckpt")
    written = [json.loads(line)["event_id"] for line in out.read_text().splitlines()]
    expected = _event_ids(expected_events(ids, config=explorium_emulator.config))
    assert sorted(written) == sorted(expected)
    assert summary.done == 90 and summary.failed == 0


def test_a_closed_client_refuses_calls_and_leaves_no_thread(
    explorium_emulator: RunningEmulator,
) -> None:
    """close() is idempotent, ends the client's thread, and later calls raise ClientClosedError."""
    client = explorium_emulator.sync_client()
    client.fetch(make_prospect_ids(1))
    client.close()
    client.close()
    assert client.closed
    assert not [t for t in threading.enumerate() if t.name == "explorium-events-sync"]
    with pytest.raises(ClientClosedError):
        client.fetch(make_prospect_ids(1))


def test_a_client_never_used_closes_without_starting_a_thread() -> None:
    """Closing an unused client is quick and clean; bad settings raise at construction."""
    SyncEventsClient(api_key="k" * 20).close()
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        SyncEventsClient(api_key="k" * 20, max_concurrency=0)


async def test_an_aiohttp_session_is_refused() -> None:
    """session=... belongs to another loop: ConfigurationError saying so."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigurationError, match="belongs to"):
            SyncEventsClient(api_key="k" * 20, session=session)


async def test_a_blocking_call_from_the_clients_own_loop_is_refused(
    explorium_emulator: RunningEmulator,
) -> None:
    """A blocking call made on the client's own loop raises instead of deadlocking."""
    with explorium_emulator.sync_client() as client:
        client.fetch(make_prospect_ids(1))
        loop = client._thread.loop  # the client's private loop

        async def inside() -> None:
            client.fetch(make_prospect_ids(1))

        future = asyncio.run_coroutine_threadsafe(inside(), loop)
        with pytest.raises(RuntimeError, match="wait forever"):
            future.result(timeout=10)


def test_the_client_accepts_what_eventsclient_accepts() -> None:
    """Its settings are EventsClient's: the repr names the same base URL and masked key."""
    client = SyncEventsClient(api_key="k" * 20, base_url="http://127.0.0.1:1")
    try:
        assert repr(client).startswith("<SyncEventsClient base_url='http://127.0.0.1:1'")
        assert "kkkk" in repr(client) and "k" * 20 not in repr(client)
        assert isinstance(client.async_client, EventsClient)
    finally:
        client.close()


def test_businesses_fetch_stream_and_events_for_are_the_async_clients(
    explorium_emulator: RunningEmulator,
) -> None:
    """client.businesses: the business events the emulator holds; bad IDs raise as async."""
    ids = make_business_ids(60, seed=1)
    expected = expected_business_events(ids, config=explorium_emulator.config)
    with explorium_emulator.sync_client() as client:
        result = client.businesses.fetch(ids)
        batches = list(client.businesses.stream(ids))
        one = client.businesses.events_for(ids[0])
        with pytest.raises(InvalidBusinessIdError):
            client.businesses.fetch(make_prospect_ids(1))  # 40 hex digits: no business ID
    assert [event.event_id for event in result.events] == _event_ids(expected)
    assert {event.business_id for event in result.events} <= set(ids)
    assert sorted(pid for batch in batches for pid in batch.prospect_ids) == sorted(ids)
    assert [event.event_id for event in one] == _event_ids(
        [event for event in expected if event["business_id"] == ids[0]]
    )


def test_a_blocking_business_pull_writes_every_event_once(
    explorium_emulator: RunningEmulator, tmp_path: Path
) -> None:
    """pull(entity="business") through the blocking client: each expected event once."""
    ids = make_business_ids(90, seed=2)
    out = tmp_path / "accounts.jsonl"
    with explorium_emulator.sync_client() as client:
        summary = client.pull(ids, out, tmp_path / "accounts.ckpt", entity="business")
    written = [json.loads(line)["event_id"] for line in out.read_text().splitlines()]
    assert summary.complete and sorted(written) == sorted(
        _event_ids(expected_business_events(ids, config=explorium_emulator.config))
    )
