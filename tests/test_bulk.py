"""Bulk pulls: resumable, exactly once in every output format, failures retried on demand."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import json
import os
import random
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
from aiohttp import web

import explorium_events._bulk_run as bulk_run
from explorium_events import (
    CheckpointMismatchError,
    ConfigurationError,
    Event,
    EventsClient,
    InvalidProspectIdError,
    PullSummary,
    RetryPolicy,
    pull,
)
from explorium_events._checkpoint import Checkpoint
from explorium_events._digests import DigestSet
from explorium_events.cli import main
from explorium_events.emulator import Emulator, EmulatorConfig, expected_events
from tests.conftest import TEST_KEY, ApiServer, Seen, events_body, prospect_id

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
CONFIG = EmulatorConfig(rate_limit=None, now=NOW, latency_ms=2)
COUNT = 2_000


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(CONFIG) as emu:
        yield emu


def client_for(url: str, **settings: object) -> EventsClient:
    return EventsClient(api_key=TEST_KEY, base_url=url, rate_limit=None, **settings)  # type: ignore[arg-type]


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(f"{pid}\n" for pid in ids))
    return path


def expected_ids(ids: list[str]) -> set[str]:
    return {event["event_id"] for event in expected_events(ids, config=CONFIG)}


def jsonl_ids(path: Path) -> list[str]:
    return [json.loads(line)["event_id"] for line in path.read_text().splitlines()]


def files_named(folder: Path, prefix: str) -> list[Path]:
    return [path for path in folder.iterdir() if path.name.startswith(prefix)]


def adds_up(summary: PullSummary) -> bool:
    return (
        summary.done + summary.failed + summary.not_tried + summary.invalid + summary.duplicates
        == summary.input_values
    )


def stop_after(batches: int) -> tuple[asyncio.Event, Callable[[PullSummary], None]]:
    """A stop event, and a progress callback that sets it once ``batches`` have run."""
    stop = asyncio.Event()

    def progress(summary: PullSummary) -> None:
        if summary.batches_run >= batches:
            stop.set()

    return stop, progress


async def test_a_pull_writes_every_expected_event_exactly_once(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across several client segments, the JSONL output holds each expected event once."""
    monkeypatch.setattr(bulk_run, "SEGMENT_BATCHES", 7)
    ids = [prospect_id(number) for number in range(COUNT)]
    source = write_ids(tmp_path / "ids.txt", ids)
    out = tmp_path / "events.jsonl"
    async with client_for(emulator.url) as client:
        summary = await pull(client, source, out, tmp_path / "pull.ckpt")
    written = jsonl_ids(out)
    assert len(written) == len(set(written))
    assert set(written) == expected_ids(ids)
    assert summary.complete and summary.done == COUNT and adds_up(summary)
    assert summary.events_total == summary.events_written == len(written)


async def test_a_finished_pull_run_again_sends_no_request(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Rerunning a complete pull does nothing and leaves the output as it was."""
    ids = [prospect_id(number) for number in range(400)]
    out = tmp_path / "events.jsonl"
    async with client_for(emulator.url) as client:
        await pull(client, ids, out, tmp_path / "pull.ckpt")
        before = out.read_bytes()
        requests = emulator.stats.requests
        again = await pull(client, ids, out, tmp_path / "pull.ckpt")
    assert emulator.stats.requests == requests
    assert out.read_bytes() == before
    assert again.batches_run == 0 and again.complete


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_a_stopped_pull_resumes_to_the_same_events_without_duplicates(
    emulator: Emulator, tmp_path: Path, fmt: str
) -> None:
    """Stop, resume, stop, resume: the file output ends with each expected event once."""
    ids = [prospect_id(number) for number in range(COUNT)]
    out = tmp_path / f"events.{fmt}"
    checkpoint = tmp_path / "pull.ckpt"
    async with client_for(emulator.url) as client:
        for batches in (5, 12):
            stop, progress = stop_after(batches)
            summary = await pull(client, ids, out, checkpoint, progress=progress, stop=stop)
            assert summary.interrupted and summary.not_tried > 0 and adds_up(summary)
        final = await pull(client, ids, out, checkpoint)
    assert final.complete and not final.interrupted
    if fmt == "jsonl":
        written = jsonl_ids(out)
    else:
        with out.open(newline="") as rows:
            table = list(csv.reader(rows))
        assert table[0][0] == "event_id"
        assert sum(row[0] == "event_id" for row in table) == 1  # one header
        written = [row[0] for row in table[1:]]
    assert len(written) == len(set(written))
    assert set(written) == expected_ids(ids)
    assert final.events_total == len(written)


async def test_events_written_after_the_last_commit_are_cut_off_on_resume(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Bytes past the checkpointed length (a crash before the commit) are dropped, not kept."""
    ids = [prospect_id(number) for number in range(COUNT)]
    out = tmp_path / "events.jsonl"
    checkpoint = tmp_path / "pull.ckpt"
    async with client_for(emulator.url) as client:
        stop, progress = stop_after(10)
        await pull(client, ids, out, checkpoint, progress=progress, stop=stop)
        committed = out.read_bytes()
        # As if a crash hit after these events were written but before their batch was
        # marked done: the resumed run fetches that batch again.
        out.write_bytes(committed + committed.splitlines(keepends=True)[0] + b'{"torn": ')
        await pull(client, ids, out, checkpoint)
    written = jsonl_ids(out)
    assert out.read_bytes().startswith(committed)
    assert len(written) == len(set(written))
    assert set(written) == expected_ids(ids)


async def test_an_sqlite_output_resumed_twice_has_one_row_per_event(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Two interruptions, two resumes, then a fresh pull of the same IDs: no row twice."""
    ids = [prospect_id(number) for number in range(COUNT)]
    out = tmp_path / "events.db"
    async with client_for(emulator.url) as client:
        for batches in (4, 9):
            stop, progress = stop_after(batches)
            await pull(client, ids, out, tmp_path / "pull.ckpt", progress=progress, stop=stop)
        final = await pull(client, ids, out, tmp_path / "pull.ckpt")
        # The same IDs again under a new checkpoint: every row is upserted, none added.
        again = await pull(client, ids, out, tmp_path / "again.ckpt")
    expected = expected_ids(ids)
    with contextlib.closing(sqlite3.connect(out)) as db:
        (rows,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
        stored = {row[0] for row in db.execute("SELECT event_id FROM events")}
        indexes = {row[1] for row in db.execute("PRAGMA index_list(events)")}
        raw, prospect = db.execute("SELECT raw_json, prospect_id FROM events LIMIT 1").fetchone()
    assert rows == len(expected) and stored == expected
    assert "events_prospect_id" in indexes
    assert json.loads(raw)["prospect_id"] == prospect
    assert final.complete and again.complete and again.events_written == len(expected)


async def test_sqlite_rows_carry_the_common_and_data_fields(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Each row has its event's fields in columns, typed, next to the exact JSON."""
    ids = [prospect_id(number) for number in range(200)]
    out = tmp_path / "events.db"
    async with client_for(emulator.url) as client:
        await pull(client, ids, out, tmp_path / "pull.ckpt")
    with contextlib.closing(sqlite3.connect(out)) as db:
        db.row_factory = sqlite3.Row
        rows = list(db.execute("SELECT * FROM events"))
    assert rows
    for row in rows:
        event = json.loads(row["raw_json"])
        assert row["event_id"] == event["event_id"]
        assert row["event_name"] == event["event_name"]
        for name, value in event["data"].items():
            if name not in ("event_name", "job_anniversary_date"):
                assert row[name] == value, name
    anniversaries = [row for row in rows if row["event_name"] == "prospect_job_start_anniversary"]
    assert anniversaries and all(isinstance(row["years_at_company"], int) for row in anniversaries)


class DictSink:
    """An application's own idempotent sink: events by event_id, 'durable' on flush."""

    def __init__(self) -> None:
        self.pending: dict[str, str] = {}
        self.durable: dict[str, str] = {}
        self.flushes = 0

    def write(self, events: Sequence[Event]) -> None:
        self.pending.update((event.event_id, event.prospect_id) for event in events)

    def flush_durably(self) -> None:
        self.durable.update(self.pending)
        self.pending.clear()
        self.flushes += 1

    def close(self) -> None:
        raise AssertionError("the caller owns its sink: pull() must not close it")


async def test_an_applications_own_sink_gets_every_event_durably(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A custom sink is flushed before each commit; stop and resume leave it complete."""
    ids = [prospect_id(number) for number in range(COUNT)]
    sink = DictSink()
    async with client_for(emulator.url) as client:
        stop, progress = stop_after(7)
        first = await pull(client, ids, sink, tmp_path / "p.ckpt", progress=progress, stop=stop)
        assert first.interrupted and sink.pending == {} and sink.flushes >= 1
        await pull(client, ids, sink, tmp_path / "p.ckpt")
    assert set(sink.durable) == expected_ids(ids)


async def test_a_mismatched_pull_is_refused_before_any_request(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Resuming a checkpoint with other event types raises and sends nothing."""
    ids = [prospect_id(number) for number in range(400)]
    out = tmp_path / "events.jsonl"
    async with client_for(emulator.url) as client:
        stop, progress = stop_after(2)
        await pull(client, ids, out, tmp_path / "pull.ckpt", progress=progress, stop=stop)
        requests = emulator.stats.requests
        size = out.stat().st_size
        with pytest.raises(CheckpointMismatchError, match="the event types"):
            await pull(
                client, ids, out, tmp_path / "pull.ckpt", event_types=["prospect_changed_role"]
            )
        with pytest.raises(CheckpointMismatchError, match="the input IDs differ"):
            await pull(client, ids[:-1], out, tmp_path / "pull.ckpt")
    assert emulator.stats.requests == requests
    assert out.stat().st_size == size


async def test_retry_failed_retries_exactly_the_failed_batches(
    api: ApiServer, tmp_path: Path
) -> None:
    """Failed batches are skipped by a plain rerun and retried, alone, with retry_failed."""
    ids = [prospect_id(number) for number in range(400)]
    poisoned = {ids[5], ids[130], ids[131], ids[399]}  # batches 0, 3 (twice) and 9

    def flaky(server: ApiServer, seen: Seen) -> web.Response:
        if poisoned & set(seen.ids):
            return web.json_response({"details": "boom", "correlation_id": "d" * 32}, status=500)
        return web.json_response(events_body(seen.ids))

    api.handler = flaky
    out = tmp_path / "events.jsonl"
    checkpoint = tmp_path / "pull.ckpt"
    async with client_for(api.url, retry=RetryPolicy(max_attempts=1)) as client:
        first = await pull(client, ids, out, checkpoint)
        assert (first.failed, first.failed_batches, first.done) == (120, 3, 280)
        assert adds_up(first) and not first.complete
        with Checkpoint.read(checkpoint) as ledger:
            failed = list(ledger.failed_batches())
        assert [record.position for record in failed] == [0, 3, 9]
        assert all(record.status == 500 and record.correlation_id == "d" * 32 for record in failed)

        api.requests.clear()
        plain = await pull(client, ids, out, checkpoint)
        assert api.requests == [] and plain.failed == 120

        api.handler = lambda server, seen: web.json_response(events_body(seen.ids))
        retried = await pull(client, ids, out, checkpoint, retry_failed=True)
    assert sorted(tuple(seen.ids) for seen in api.requests) == sorted(
        record.prospect_ids for record in failed
    )
    assert retried.complete and retried.done == 400 and retried.failed_batches == 0
    written = jsonl_ids(out)
    assert len(written) == len(set(written)) == 400  # one event per ID in this server


async def test_summary_counts_add_up_to_the_input(emulator: Emulator, tmp_path: Path) -> None:
    """Done, failed, not tried, invalid and repeated values add up to every input value."""
    ids = [prospect_id(number) for number in range(300)]
    values = [*ids, "not-an-id", ids[3].upper(), "", ids[7], "g" * 40]
    source = tmp_path / "ids.txt"
    source.write_text("\n".join(values) + "\n")
    # One request at a time: at most 2 batches wait beside it, so of the 8 batches some
    # are surely not tried when the stop comes after 2 (at 8 they could all be taken).
    async with client_for(emulator.url, max_concurrency=1) as client:
        stop, progress = stop_after(2)
        summary = await pull(
            client,
            source,
            tmp_path / "e.jsonl",
            tmp_path / "p.ckpt",
            skip_invalid=True,
            progress=progress,
            stop=stop,
        )
    assert summary.input_values == 304  # the blank line is no value
    assert (summary.invalid, summary.duplicates, summary.unique_ids) == (2, 2, 300)
    assert summary.not_tried > 0 and adds_up(summary)
    assert [example.position for example in summary.invalid_examples] == [301, 305]


async def test_invalid_ids_are_refused_before_any_request_unless_skipped(
    emulator: Emulator, tmp_path: Path
) -> None:
    """An invalid ID stops the pull up front, naming it; skip_invalid pulls the rest."""
    values = [prospect_id(1), "xyz", prospect_id(2)]
    async with client_for(emulator.url) as client:
        with pytest.raises(InvalidProspectIdError, match="xyz"):
            await pull(client, values, tmp_path / "e.jsonl", tmp_path / "p.ckpt")
        assert emulator.stats.requests == 0
        summary = await pull(
            client, values, tmp_path / "e.jsonl", tmp_path / "p.ckpt", skip_invalid=True
        )
    assert (summary.done, summary.invalid) == (2, 1)


async def test_an_output_cut_below_the_checkpoint_is_refused(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A JSONL output shorter than its checkpoint says was tampered with: refuse to resume."""
    ids = [prospect_id(number) for number in range(COUNT)]
    out = tmp_path / "events.jsonl"
    async with client_for(emulator.url) as client:
        stop, progress = stop_after(6)
        await pull(client, ids, out, tmp_path / "p.ckpt", progress=progress, stop=stop)
        out.write_bytes(out.read_bytes()[:10])
        with pytest.raises(ConfigurationError, match="moved, replaced or cut"):
            await pull(client, ids, out, tmp_path / "p.ckpt")


async def test_a_one_shot_iterator_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    """A generator cannot be read again on resume, so the pull says so up front."""
    async with client_for(emulator.url) as client:
        with pytest.raises(ConfigurationError, match="one-shot iterator"):
            await pull(
                client,
                (prospect_id(n) for n in range(3)),
                tmp_path / "e.jsonl",
                tmp_path / "p.ckpt",
            )


async def test_a_cancelled_pull_records_what_it_wrote(emulator: Emulator, tmp_path: Path) -> None:
    """Cancelling the task commits the batches already written, then re-raises."""
    ids = [prospect_id(number) for number in range(COUNT)]
    out = tmp_path / "events.jsonl"
    reached = asyncio.Event()

    def progress(summary: PullSummary) -> None:
        if summary.batches_run >= 8:
            reached.set()

    async with client_for(emulator.url) as client:
        task = asyncio.create_task(
            pull(client, ids, out, tmp_path / "p.ckpt", progress=progress, commit_interval=60)
        )
        await reached.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    with Checkpoint.read(tmp_path / "p.ckpt") as ledger:
        counts = ledger.counts()
        assert counts.done_batches >= 8
        assert ledger.output_length == out.stat().st_size
    assert len(jsonl_ids(out)) == counts.events


async def test_the_checkpoint_never_holds_the_api_key(emulator: Emulator, tmp_path: Path) -> None:
    """Not a byte of the key lands in the checkpoint or its journal files."""
    async with client_for(emulator.url) as client:
        await pull(
            client, [prospect_id(n) for n in range(100)], tmp_path / "e.db", tmp_path / "p.ckpt"
        )
    files = files_named(tmp_path, "p.ckpt")
    assert files
    for path in files:
        assert TEST_KEY.encode() not in path.read_bytes()


def test_a_digest_set_holds_exactly_what_was_added() -> None:
    """Members are found, non-members are not, repeats are refused, across its growth."""
    rng = random.Random(7)
    members = [rng.randbytes(20) for _ in range(3_000)]
    seen = DigestSet(buckets=4, small=0)  # tiny and packed at once, so that it grows
    assert all(seen.add(digest) for digest in members)
    assert not any(seen.add(digest) for digest in members[::7])
    assert len(seen) == len(members)
    assert all(digest in seen for digest in members)
    assert not any(rng.randbytes(20) in seen for _ in range(3_000))
    # In one bucket, bytes straddling two members are not a member.
    packed = DigestSet(4, buckets=1, small=0)
    packed.add(b"abcd")
    packed.add(b"efgh")
    assert b"cdef" not in packed and packed.add(b"cdef")


def test_a_digest_set_keeps_its_members_when_it_packs_its_plain_set() -> None:
    """Past ``small`` entries the plain set is packed: nothing is lost, no repeat is let in."""
    rng = random.Random(8)
    members = [rng.randbytes(20) for _ in range(1_000)]
    seen = DigestSet(buckets=1, small=300)
    assert all(seen.add(digest) for digest in members)
    assert not any(seen.add(digest) for digest in members)
    assert len(seen) == len(members) and all(digest in seen for digest in members)


def test_an_event_deduper_drops_repeats_across_the_move_to_packed_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ids seen before the deduper packs its plain set are still repeats after it."""
    from explorium_events import _merge

    monkeypatch.setattr(_merge, "SMALL", 50)

    class Seen:
        def __init__(self, event_id: str) -> None:
            self.event_id = event_id

    rng = random.Random(9)
    ids = [rng.randbytes(16).hex() for _ in range(200)] + ["Not-Hex", "AB" * 16]
    deduper = _merge.EventDeduper()
    assert len(deduper.first_sightings([Seen(i) for i in ids[:60]])) == 60  # now packed
    assert len(deduper.first_sightings([Seen(i) for i in ids])) == len(ids) - 60
    assert deduper.first_sightings([Seen(i) for i in ids]) == []
    assert deduper.first_sightings([Seen(("AB" * 16).lower())]) != []  # case still apart
    assert deduper.duplicates == 60 + len(ids)


# -- the command line: `explorium-events fetch --checkpoint` ---------------------------------

SLOW = EmulatorConfig(rate_limit=None, now=NOW, latency_ms=30)


def fetch_argv(ids: Path, out: Path, checkpoint: Path, url: str, *extra: str) -> list[str]:
    return [
        "fetch",
        "--ids",
        str(ids),
        "--out",
        str(out),
        "--checkpoint",
        str(checkpoint),
        "--base-url",
        url,
        "--rate-limit",
        "off",
        "--no-progress",
        *extra,
    ]


async def start_fetch(argv: list[str]) -> asyncio.subprocess.Process:
    """A real `python -m explorium_events` process; the key comes from the environment."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "explorium_events",
        *argv,
        env={**os.environ, "EXPLORIUM_API_KEY": TEST_KEY},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


def size_of(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def sorted_lines(path: Path) -> list[str]:
    return sorted(path.read_text().splitlines())


def checkpointed(checkpoint: Path) -> tuple[int, int]:
    """(done batches, durable output length) as the checkpoint says now; (0, 0) before it exists."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{checkpoint}?mode=ro", uri=True)) as db:
            (done,) = db.execute("SELECT COUNT(*) FROM batches WHERE state = 'done'").fetchone()
            (length,) = db.execute("SELECT value FROM meta WHERE key = 'output_length'").fetchone()
    except (sqlite3.Error, TypeError):
        return 0, 0
    return done, int(length)


async def until_midway(process: asyncio.subprocess.Process, checkpoint: Path, out: Path) -> int:
    """Wait until batches are committed and more were written after: the worst moment to die."""
    while True:
        assert process.returncode is None, "the pull finished before it could be interrupted"
        done, length = checkpointed(checkpoint)
        if done and size_of(out) > length:
            return done
        await asyncio.sleep(0.01)


async def uninterrupted(ids: list[str], out: Path, checkpoint: Path) -> list[str]:
    """The events of the same pull, run in one go: its JSONL lines, sorted."""
    async with Emulator(SLOW) as emu, client_for(emu.url, max_concurrency=16) as client:
        await pull(client, ids, out, checkpoint)
    return sorted_lines(out)


async def test_a_fetch_killed_with_sigkill_resumes_to_the_uninterrupted_output(
    tmp_path: Path,
) -> None:
    """kill -9 mid-pull, rerun the same command: the same events as one clean run, once each."""
    ids = [prospect_id(number) for number in range(COUNT)]
    source = write_ids(tmp_path / "ids.txt", ids)
    out, checkpoint = tmp_path / "events.jsonl", tmp_path / "pull.ckpt"
    async with Emulator(SLOW) as emu:
        argv = fetch_argv(source, out, checkpoint, emu.url, "--concurrency", "1")
        process = await start_fetch(argv)
        done = await until_midway(process, checkpoint, out)
        process.kill()
        await process.communicate()
        assert process.returncode == -signal.SIGKILL
        assert 0 < done < COUNT // 40
        resumed = await start_fetch([*argv[:-2], "--concurrency", "8"])
        _, err = await resumed.communicate()
        assert resumed.returncode == 0, err.decode()
    assert b"2,000 of 2,000 prospect IDs done" in err
    lines = sorted_lines(out)
    assert lines == await uninterrupted(ids, tmp_path / "clean.jsonl", tmp_path / "clean.ckpt")
    assert len(set(lines)) == len(lines)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
async def test_a_fetch_stopped_by_a_signal_exits_130_saying_how_to_resume(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    """Ctrl-C or SIGTERM: exit 130 with the resume command; the rerun completes the pull."""
    ids = [prospect_id(number) for number in range(COUNT)]
    source = write_ids(tmp_path / "ids.txt", ids)
    out, checkpoint = tmp_path / "events.jsonl", tmp_path / "pull.ckpt"
    async with Emulator(SLOW) as emu:
        argv = fetch_argv(source, out, checkpoint, emu.url, "--concurrency", "1")
        process = await start_fetch(argv)
        await until_midway(process, checkpoint, out)
        process.send_signal(stop_signal)
        _, err = await process.communicate()
        assert process.returncode == 130, err.decode()
        text = err.decode()
        assert "Interrupted after" in text and "run the same command again" in text
        assert "not yet tried" in text and "the checkpoint is consistent" in text
        # The stop left nothing half-recorded: the output is exactly what the checkpoint says.
        assert size_of(out) == checkpointed(checkpoint)[1]
        resumed = await start_fetch([*argv[:-2], "--concurrency", "8"])
        _, err = await resumed.communicate()
        assert resumed.returncode == 0, err.decode()
    lines = sorted_lines(out)
    assert lines == await uninterrupted(ids, tmp_path / "clean.jsonl", tmp_path / "clean.ckpt")


async def test_fetch_refuses_to_resume_a_different_pull_with_exit_2(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Other event types into an existing checkpoint: exit 2, what differs, nothing sent."""
    source = write_ids(tmp_path / "ids.txt", [prospect_id(n) for n in range(100)])
    argv = fetch_argv(source, tmp_path / "e.jsonl", tmp_path / "p.ckpt", emulator.url)
    assert await asyncio.to_thread(main, [*argv, "--api-key", TEST_KEY]) == 0
    requests = emulator.stats.requests
    code = await asyncio.to_thread(main, [*argv, "--api-key", TEST_KEY, "--event-types", "role"])
    err = capsys.readouterr().err
    assert code == 2
    assert "belongs to a different pull" in err and "the event types" in err
    assert emulator.stats.requests == requests


async def test_fetch_retry_failed_retries_exactly_the_failed_batches(
    api: ApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run with failures exits 1 and lists them; --retry-failed sends just those and exits 0."""
    ids = [prospect_id(number) for number in range(200)]
    source = write_ids(tmp_path / "ids.txt", ids)

    def flaky(server: ApiServer, seen: Seen) -> web.Response:
        if ids[50] in seen.ids:
            return web.json_response({"details": "boom", "correlation_id": "e" * 32}, status=503)
        return web.json_response(events_body(seen.ids))

    api.handler = flaky
    argv = [
        *fetch_argv(source, tmp_path / "e.jsonl", tmp_path / "p.ckpt", api.url),
        "--api-key",
        TEST_KEY,
        "--max-attempts",
        "1",
        "--failed-out",
        str(tmp_path / "f.txt"),
    ]
    assert await asyncio.to_thread(main, argv) == 1
    err = capsys.readouterr().err
    assert "160 done + 40 failed + 0 not yet tried" in err and "--retry-failed" in err
    assert (tmp_path / "f.txt").read_text().split() == ids[40:80]

    api.requests.clear()
    api.handler = lambda server, seen: web.json_response(events_body(seen.ids))
    assert await asyncio.to_thread(main, [*argv, "--retry-failed"]) == 0
    assert [seen.ids for seen in api.requests] == [ids[40:80]]
    assert "200 done + 0 failed" in capsys.readouterr().err
    assert (tmp_path / "f.txt").read_text() == ""


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--ids", "-", "--out", "e.jsonl", "--checkpoint", "p.ckpt"], "needs --ids FILE"),
        (["--ids", "IDS", "--checkpoint", "p.ckpt"], "needs --out FILE"),
        (
            ["--ids", "IDS", "--out", "e.jsonl", "--checkpoint", "p.ckpt", "--append"],
            "drop --append",
        ),
        (["--ids", "IDS", "--out", "e.jsonl", "--retry-failed"], "needs --checkpoint"),
        (["--ids", "IDS", "--format", "sqlite"], "writes to a file"),
    ],
)
def test_fetch_checkpoint_flags_that_cannot_work_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], words: str
) -> None:
    """Each impossible combination exits 2 with a message that says why."""
    source = write_ids(tmp_path / "ids.txt", [prospect_id(1)])
    argv = ["fetch", "--api-key", TEST_KEY, "--base-url", "http://127.0.0.1:9"]
    argv += [str(source) if flag == "IDS" else flag for flag in flags]
    assert main(argv) == 2
    assert words in capsys.readouterr().err


async def test_fetch_without_a_checkpoint_writes_sqlite_too(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`fetch --out events.db` picks SQLite by extension and writes one row per event."""
    ids = [prospect_id(n) for n in range(300)]
    source = write_ids(tmp_path / "ids.txt", ids)
    out = tmp_path / "events.db"
    argv = [
        "fetch",
        "--ids",
        str(source),
        "--out",
        str(out),
        "--base-url",
        emulator.url,
        "--api-key",
        TEST_KEY,
        "--rate-limit",
        "off",
        "--no-progress",
    ]
    assert await asyncio.to_thread(main, argv) == 0
    with contextlib.closing(sqlite3.connect(out)) as db:
        stored = {row[0] for row in db.execute("SELECT event_id FROM events")}
    assert stored == expected_ids(ids)


async def test_fetch_with_a_refused_key_exits_1_and_keeps_what_was_done(
    api: ApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 401 mid-pull: exit 1, a message that says to fix the key and rerun; nothing lost."""
    ids = [prospect_id(number) for number in range(400)]
    source = write_ids(tmp_path / "ids.txt", ids)

    def revoked(server: ApiServer, seen: Seen) -> web.Response:
        if len(server.requests) > 3:
            return web.json_response({"details": "invalid key"}, status=401)
        return web.json_response(events_body(seen.ids))

    api.handler = revoked
    checkpoint = tmp_path / "p.ckpt"
    argv = [
        *fetch_argv(source, tmp_path / "e.jsonl", checkpoint, api.url),
        "--api-key",
        TEST_KEY,
        "--concurrency",
        "1",
        "--failed-out",
        str(tmp_path / "f.txt"),
    ]
    assert await asyncio.to_thread(main, argv) == 1
    err = capsys.readouterr().err
    assert "refused the key" in err and "run the same command again" in err
    with Checkpoint.read(checkpoint) as ledger:
        assert ledger.counts().done_batches == 3
    assert (tmp_path / "f.txt").read_text() == ""
    api.handler = lambda server, seen: web.json_response(events_body(seen.ids))
    assert await asyncio.to_thread(main, argv) == 0
    assert len(jsonl_ids(tmp_path / "e.jsonl")) == 400
