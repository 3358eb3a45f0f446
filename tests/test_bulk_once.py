"""pull(checkpoint=None): the same run without resume, its input read once, lazily."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from explorium_events import (
    AuthenticationError,
    EventsClient,
    InvalidProspectIdError,
    OutputWriteError,
    PullSummary,
    RetryPolicy,
    ServerUnavailableError,
    pull,
)
from explorium_events._checkpoint import FinishedBatch
from explorium_events.emulator import Emulator, EmulatorConfig
from tests.conftest import TEST_KEY, ApiServer, FakeClock, Seen, prospect_id
from tests.test_edges_writes import NOW, clean_pull, disk_full_after, events_in

CONFIG = EmulatorConfig(rate_limit=None, now=NOW, latency_ms=2)
COUNT = 1_000
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs are POSIX")


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(CONFIG) as emu:
        yield emu


def client_for(url: str, **settings: object) -> EventsClient:
    return EventsClient(api_key=TEST_KEY, base_url=url, rate_limit=None, **settings)  # type: ignore[arg-type]


def made_besides_the_clean_pull(folder: Path) -> list[str]:
    """The files in ``folder`` but the clean pull's and SQLite's own (-wal, -shm)."""
    return sorted(
        path.name
        for path in folder.iterdir()
        if not path.name.startswith("clean") and not path.name.endswith(("-wal", "-shm"))
    )


def adds_up(summary: PullSummary) -> bool:
    return (
        summary.done + summary.failed + summary.not_tried + summary.invalid + summary.duplicates
        == summary.input_values
    )


@pytest.mark.parametrize("name", ["e.jsonl", "e.csv", "e.db"])
async def test_a_pull_without_a_checkpoint_writes_what_the_checkpointed_pull_writes(
    emulator: Emulator, tmp_path: Path, name: str
) -> None:
    """From a list, the same events as with a checkpoint, no checkpoint file, every ID done."""
    ids = [prospect_id(number) for number in range(COUNT)]
    out = tmp_path / name
    clean = await clean_pull(emulator.url, ids, tmp_path / ("clean" + out.suffix))
    async with client_for(emulator.url) as client:
        summary = await pull(client, ids, out, None)
    assert sorted(events_in(out)) == clean
    assert summary.complete and summary.done == COUNT and adds_up(summary)
    assert summary.checkpoint == "" and summary.output == str(out)
    assert summary.events_written == summary.events_total == len(clean)
    assert made_besides_the_clean_pull(tmp_path) == [name]


async def test_a_generator_is_read_once_and_lazily(emulator: Emulator, tmp_path: Path) -> None:
    """A one-shot generator: taken as it is needed, never all up front; every value counted."""
    ids = [prospect_id(number) for number in range(COUNT)]
    taken: list[int] = []
    at_first_batch: list[int] = []

    def generate() -> Iterator[str]:
        for number, pid in enumerate(ids):
            taken.append(number)
            yield pid
            if number % 3 == 0:
                yield pid.upper()  # the same ID again: a duplicate
        yield "not-an-id"

    def progress(summary: PullSummary) -> None:
        if summary.batches_run == 1:
            at_first_batch.append(len(taken))

    async with client_for(emulator.url, max_concurrency=2) as client:
        summary = await pull(
            client, generate(), tmp_path / "e.jsonl", None, skip_invalid=True, progress=progress
        )
    assert at_first_batch and at_first_batch[0] < COUNT // 2
    assert taken == list(range(COUNT))
    assert summary.complete and adds_up(summary)
    assert (summary.unique_ids, summary.duplicates, summary.invalid) == (COUNT, 334, 1)
    assert summary.input_values == COUNT + 334 + 1


@posix_only
async def test_a_fifo_is_read_once_to_the_same_events(emulator: Emulator, tmp_path: Path) -> None:
    """A named pipe as the input path: read once, no scan, every ID pulled."""
    ids = [prospect_id(number) for number in range(COUNT)]
    fifo = tmp_path / "ids.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w") as pipe:  # blocks until the pull opens the other end
            pipe.writelines(f"{pid}\n" for pid in ids)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    clean = await clean_pull(emulator.url, ids, tmp_path / "clean.jsonl")
    async with client_for(emulator.url) as client:
        summary = await pull(client, fifo, tmp_path / "e.jsonl", None)
    writer.join(timeout=10)
    assert sorted(events_in(tmp_path / "e.jsonl")) == clean
    assert summary.complete and summary.input_values == COUNT


async def test_a_checkpointed_pull_still_refuses_a_generator(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Resume needs the input twice: a one-shot iterator is refused only with a checkpoint."""
    from explorium_events import ConfigurationError

    async with client_for(emulator.url) as client:
        with pytest.raises(ConfigurationError, match="one-shot iterator"):
            await pull(client, iter(["a"]), tmp_path / "e.jsonl", tmp_path / "c.ckpt")


async def test_an_invalid_id_ends_the_reading_after_the_batches_before_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Without skip_invalid the first invalid ID stops the input; what came before is written."""
    ids = [prospect_id(number) for number in range(200)]
    out = tmp_path / "e.jsonl"
    async with client_for(emulator.url) as client:
        with pytest.raises(InvalidProspectIdError, match="nope") as caught:
            await pull(client, [*ids, "nope", prospect_id(999)], out, None)
    assert caught.value.count == 1
    clean = await clean_pull(emulator.url, ids, tmp_path / "clean.jsonl")
    assert sorted(events_in(out)) == clean


async def test_a_write_failure_raises_naming_the_output_with_whole_events_only(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A full disk: OutputWriteError naming the file, and the file holds only whole events."""
    ids = [prospect_id(number) for number in range(COUNT)]
    out = tmp_path / "e.jsonl"
    clean = await clean_pull(emulator.url, ids, tmp_path / "clean.jsonl")
    budget = (tmp_path / "clean.jsonl").stat().st_size // 2
    with disk_full_after(budget):
        async with client_for(emulator.url, max_concurrency=2) as client:
            with pytest.raises(OutputWriteError) as caught:
                await pull(client, ids, out, None, commit_interval=0.0)
    assert caught.value.path == str(out) and caught.value.errno == errno.ENOSPC
    written = events_in(out)  # fails on a line that is not whole
    assert 0 < len(written) < len(clean) and set(written) <= set(clean)


async def test_a_stopped_pull_without_a_checkpoint_returns_an_interrupted_summary(
    emulator: Emulator, tmp_path: Path
) -> None:
    """stop ends the run promptly; the summary says how far it got and adds up."""
    ids = [prospect_id(number) for number in range(COUNT)]
    stop = asyncio.Event()

    def progress(summary: PullSummary) -> None:
        if summary.batches_run >= 3:
            stop.set()

    async with client_for(emulator.url, max_concurrency=1) as client:
        summary = await pull(client, ids, tmp_path / "e.jsonl", None, stop=stop, progress=progress)
    assert summary.interrupted and not summary.complete and summary.checkpoint == ""
    assert 3 <= summary.batches_run < COUNT // 40 and adds_up(summary)
    assert len(events_in(tmp_path / "e.jsonl")) == summary.events_written


async def test_a_silent_server_fails_every_id_left_then_raises(
    api: ApiServer, clock: FakeClock, tmp_path: Path
) -> None:
    """Only 503s: after give_up_after every ID is failed in the last progress, then the error."""

    def unavailable(server: ApiServer, seen: Seen) -> web.StreamResponse:
        return web.json_response({"details": "unavailable"}, status=503)

    api.handler = unavailable
    ids = [prospect_id(number) for number in range(400)]
    last: list[PullSummary] = []
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=api.url,
        clock=clock,
        max_concurrency=2,
        retry=RetryPolicy(max_attempts=1_000, max_elapsed=10_000.0, initial=0.5, cap=4.0),
        give_up_after=30.0,
    ) as client:
        with pytest.raises(ServerUnavailableError):
            await pull(client, ids, tmp_path / "e.jsonl", None, progress=last.append)
    assert last[-1].failed == 400 and last[-1].not_tried == 0 and adds_up(last[-1])


async def test_a_pulls_elapsed_time_is_read_from_the_clients_clock(
    emulator: Emulator, tmp_path: Path
) -> None:
    """pull() measures time on the client's injected Clock, not time.monotonic()."""
    clock = FakeClock()

    def progress(summary: PullSummary) -> None:
        clock.now += 10.0

    ids = [prospect_id(number) for number in range(200)]
    async with client_for(emulator.url, clock=clock, max_concurrency=1) as client:
        summary = await pull(
            client, ids, tmp_path / "e.jsonl", tmp_path / "c.ckpt", progress=progress
        )
    assert summary.elapsed == 10.0 * (summary.batches_run + 1)


async def test_on_batch_reports_each_batch_once_it_is_done_or_failed(
    api: ApiServer, tmp_path: Path
) -> None:
    """on_batch hears of every batch once: the done ones with their events, the failed ones."""
    ids = [prospect_id(number) for number in range(200)]

    def flaky(server: ApiServer, seen: Seen) -> web.StreamResponse:
        if ids[50] in seen.ids:
            return web.json_response({"details": "boom"}, status=503)
        return web.json_response({"output_events": [], "total_results": 0})

    api.handler = flaky
    heard: list[FinishedBatch] = []
    async with EventsClient(
        api_key=TEST_KEY, base_url=api.url, retry=RetryPolicy(max_attempts=1)
    ) as client:
        summary = await pull(client, ids, tmp_path / "e.jsonl", None, on_batch=heard.append)
    assert sorted(pid for record in heard for pid in record.prospect_ids) == sorted(ids)
    assert [record.prospect_ids for record in heard if record.failed] == [tuple(ids[40:80])]
    assert summary.failed == 40 and summary.done == 160


async def test_a_refused_key_hands_back_every_id_not_done_without_a_checkpoint(
    api: ApiServer, tmp_path: Path
) -> None:
    """A 401 mid-pull: each ID is reported done or unfinished, once; the last progress adds up."""
    ids = [prospect_id(number) for number in range(400)]

    def revoked(server: ApiServer, seen: Seen) -> web.StreamResponse:
        if len(server.requests) > 3:
            return web.json_response({"details": "invalid key"}, status=401)
        return web.json_response({"output_events": [], "total_results": 0})

    api.handler = revoked
    done: list[str] = []
    unfinished: list[str] = []
    last: list[PullSummary] = []
    async with EventsClient(api_key=TEST_KEY, base_url=api.url, max_concurrency=1) as client:
        with pytest.raises(AuthenticationError):
            await pull(
                client,
                iter(ids),
                tmp_path / "e.jsonl",
                None,
                progress=last.append,
                on_batch=lambda record: done.extend(record.prospect_ids),
                on_unfinished=unfinished.extend,
            )
    assert len(done) == 120 and sorted(done + unfinished) == sorted(ids)
    assert last[-1].done == 120 and last[-1].not_tried == 280 and adds_up(last[-1])


async def test_a_write_failure_hands_back_the_batch_being_written_and_the_rest(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A full disk without a checkpoint: every ID is done (in the file) or handed back."""
    ids = [prospect_id(number) for number in range(COUNT)]
    out = tmp_path / "e.jsonl"
    await clean_pull(emulator.url, ids, tmp_path / "clean.jsonl")
    budget = (tmp_path / "clean.jsonl").stat().st_size // 2
    done: list[str] = []
    unfinished: list[str] = []
    with disk_full_after(budget):
        async with client_for(emulator.url, max_concurrency=2) as client:
            with pytest.raises(OutputWriteError):
                await pull(
                    client,
                    ids,
                    out,
                    None,
                    commit_interval=0.0,
                    on_batch=lambda record: done.extend(record.prospect_ids),
                    on_unfinished=unfinished.extend,
                )
    assert 0 < len(unfinished) < COUNT and sorted(done + unfinished) == sorted(ids)
    in_file = {line["prospect_id"] for line in map(json.loads, out.read_text().splitlines())}
    assert in_file <= set(done)


async def test_a_failed_flush_without_a_checkpoint_takes_its_batches_back(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync fails: the batches it covered are cut from the file and handed back, not done."""
    ids = [prospect_id(number) for number in range(200)]
    out = tmp_path / "e.jsonl"
    real_fsync, calls = os.fsync, [0]

    def failing_fsync(fd: int) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr("explorium_events._sinks._files.os.fsync", failing_fsync)
    done: list[str] = []
    unfinished: list[str] = []
    last: list[PullSummary] = []
    async with client_for(emulator.url, max_concurrency=1) as client:
        with pytest.raises(OutputWriteError):
            await pull(
                client,
                ids,
                out,
                None,
                commit_interval=0.0,
                progress=last.append,
                on_batch=lambda record: done.extend(record.prospect_ids),
                on_unfinished=unfinished.extend,
            )
    assert done == ids[:80] and sorted(unfinished) == sorted(ids[80:])
    in_file = {line["prospect_id"] for line in map(json.loads, out.read_text().splitlines())}
    assert in_file <= set(ids[:80])
    assert last[-1].done == 80 and last[-1].not_tried == 120 and adds_up(last[-1])
