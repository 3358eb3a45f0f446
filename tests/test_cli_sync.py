"""`explorium-events sync`: through main(argv), and as real processes killed at random moments."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from explorium_events._sync_state import SyncState
from explorium_events.cli import _sync as _cli_sync
from explorium_events.cli import build_parser, main
from explorium_events.emulator import Emulator, EmulatorConfig, expected_events_at
from tests.conftest import TEST_KEY, prospect_id


def write_ids(path: Path, count: int) -> Path:
    path.write_text("".join(f"{prospect_id(n)}\n" for n in range(count)))
    return path


def argv(url: str, tmp_path: Path, out: str = "events.jsonl", *extra: str) -> list[str]:
    return [
        "sync",
        "--ids", str(tmp_path / "ids.txt"),
        "--state", str(tmp_path / "crm.sync"),
        "--out", str(tmp_path / out),
        "--base-url", url,
        "--rate-limit", "off",
        *extra,
    ]  # fmt: skip


def event_ids(out: Path) -> list[str]:
    if out.suffix == ".db":
        with contextlib.closing(sqlite3.connect(out)) as db:
            return [row[0] for row in db.execute("SELECT event_id FROM events")]
    return [json.loads(line)["event_id"] for line in out.read_text().splitlines()]


def state_query(state: Path, query: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(state)) as db:
        return list(db.execute(query))


async def test_sync_twice_with_time_passing_brings_only_the_new_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sync, the emulator's week passes, sync: the summary says how many are new, since when."""
    write_ids(tmp_path / "ids.txt", 120)
    config = EmulatorConfig(rate_limit=None)
    async with Emulator(config) as emulator:
        args = [*argv(emulator.url, tmp_path), "--api-key", TEST_KEY]
        assert await asyncio.to_thread(main, args) == 0
        first = capsys.readouterr().err
        emulator.clock.advance(dt.timedelta(days=7))
        assert await asyncio.to_thread(main, args) == 0
        second = capsys.readouterr().err
        at = emulator.clock.now
    ids = [prospect_id(n) for n in range(120)]
    truth = {event["event_id"] for event in expected_events_at(ids, config=config, at=at)}
    written = event_ids(tmp_path / "events.jsonl")
    assert len(written) == len(set(written)) and set(written) >= truth
    assert "(the first run of this list" in first
    new = int(second.split("Synced: ")[1].split(" new event")[0])
    assert 0 < new < len(written) and "since 20" in second and "35-day lookback" in second
    assert "3 requests" in second


async def test_every_runs_one_sync_per_period_until_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--every 6h with an injected wait: three runs, each waiting the rest of 6 hours; stop: 130."""
    write_ids(tmp_path / "ids.txt", 40)
    waits: list[float] = []
    async with Emulator(EmulatorConfig(rate_limit=None)) as emulator:

        async def wait(seconds: float, stop: asyncio.Event) -> bool:
            waits.append(seconds)
            emulator.clock.advance(dt.timedelta(hours=6))
            return len(waits) == 3

        args = build_parser().parse_args(
            [*argv(emulator.url, tmp_path), "--api-key", TEST_KEY, "--every", "6h"]
        )
        status = await asyncio.to_thread(_cli_sync.run, args, wait=wait)
    err = capsys.readouterr().err
    assert status == 130 and len(waits) == 3
    assert all(6 * 3600 - 60 < seconds <= 6 * 3600 for seconds in waits)
    assert err.count("Synced:") == 3 and "stopped while waiting" in err
    runs = state_query(tmp_path / "crm.sync", "SELECT status FROM runs")
    assert runs == [("done",)] * 3


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lookback", "a while"], "is not a duration"),
        (["--every", "10s"], "shorter than a minute"),
        (["--event-types", "promotions"], "unknown event type"),
        (["--ids", "/nonexistent/ids.txt"], "no such file"),
        (["--event-types", "funding"], "is a business event type"),
        (["--out", "/nonexistent/e.jsonl"], "--out: cannot write /nonexistent/e.jsonl"),
        (["--state", "/nonexistent/crm.sync"], "--state: cannot write /nonexistent/crm.sync"),
    ],
)
async def test_bad_flags_exit_2_naming_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    """A bad duration, period, event type, list or output: exit 2 and one line saying why."""
    write_ids(tmp_path / "ids.txt", 3)
    args = [*argv("http://127.0.0.1:9", tmp_path), "--api-key", TEST_KEY, *flags]
    assert await asyncio.to_thread(main, args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


async def test_every_with_a_pipe_for_ids_is_refused_before_reading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--every rereads --ids each run: a pipe (empty the second time) is exit 2, left unread."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, f"{prospect_id(1)}\n".encode())
        os.close(write_end)
        args = [*argv("http://127.0.0.1:9", tmp_path), "--api-key", TEST_KEY, "--every", "1h"]
        args[args.index("--ids") + 1] = f"/dev/fd/{read_end}"
        assert await asyncio.to_thread(main, args) == 2
        assert os.read(read_end, 100) == f"{prospect_id(1)}\n".encode()
    finally:
        os.close(read_end)
    err = capsys.readouterr().err
    assert "a pipe" in err and "save the ids to a file first" in err.lower()
    assert not (tmp_path / "crm.sync").exists()


async def test_a_list_with_an_invalid_id_exits_2_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid value: exit 2 naming it and its line, nothing sent; --skip-invalid runs."""
    (tmp_path / "ids.txt").write_text(f"{prospect_id(1)}\nnot-an-id\n")
    async with Emulator(EmulatorConfig(rate_limit=None)) as emulator:
        args = [*argv(emulator.url, tmp_path), "--api-key", TEST_KEY]
        assert await asyncio.to_thread(main, args) == 2
        assert emulator.stats.requests == 0
        assert "not-an-id (at 2)" in capsys.readouterr().err
        assert await asyncio.to_thread(main, [*args, "--skip-invalid"]) == 0
        assert "1 invalid" in capsys.readouterr().err


# -- real processes ----------------------------------------------------------------------


async def start_sync(args: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "explorium_events",
        *args,
        env={**os.environ, "EXPLORIUM_API_KEY": TEST_KEY},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def wait_for_first_commit(process: asyncio.subprocess.Process, state: Path) -> None:
    while True:
        assert process.returncode is None, "the sync ended before it could be interrupted"
        with contextlib.suppress(sqlite3.Error):
            if state_query(state, "SELECT COUNT(*) FROM prospects")[0][0]:
                return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_stops_a_sync_with_130_and_the_next_run_carries_on(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    """Ctrl-C or SIGTERM mid-run: exit 130, what was written recorded; the rerun finishes."""
    write_ids(tmp_path / "ids.txt", 2000)  # 50 batches of 50 ms: commits come each second
    config = EmulatorConfig(rate_limit=None, latency_ms=50)
    async with Emulator(config) as emulator:
        args = [*argv(emulator.url, tmp_path), "--concurrency", "1"]
        process = await start_sync(args)
        await wait_for_first_commit(process, tmp_path / "crm.sync")
        process.send_signal(stop_signal)
        _, err = await process.communicate()
        assert process.returncode == 130, err.decode()
        assert b"run the same command again" in err
        rerun = await start_sync(args)
        _, err = await rerun.communicate()
        assert rerun.returncode == 0, err.decode()
    written = event_ids(tmp_path / "events.jsonl")
    ids = [prospect_id(n) for n in range(2000)]
    truth = {e["event_id"] for e in expected_events_at(ids, config=config, at=config.anchor())}
    assert len(written) == len(set(written)) and set(written) == truth


@pytest.mark.parametrize("out", ["events.jsonl", "events.db"])
async def test_sync_killed_at_random_moments_emits_each_event_exactly_once(
    tmp_path: Path, out: str
) -> None:
    """kill -9 at seeded random moments over runs with time moving on: each event once."""
    rng = random.Random(12)
    count = 1200  # 30 batches of 50 ms, one at a time: a commit about each second
    write_ids(tmp_path / "ids.txt", count)
    ids = [prospect_id(n) for n in range(count)]
    config = EmulatorConfig(rate_limit=None, latency_ms=50)
    seen_at: list[set[str]] = []
    async with Emulator(config) as emulator:
        args = [*argv(emulator.url, tmp_path, out), "--concurrency", "1"]
        for run in range(6):
            at = emulator.clock.now
            seen_at.append({e["event_id"] for e in expected_events_at(ids, config=config, at=at)})
            process = await start_sync(args)
            if run == 0:  # the worst moment: batches committed, more written after them
                await wait_for_first_commit(process, tmp_path / "crm.sync")
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), rng.uniform(0.1, 2.5))
            if process.returncode is None:
                process.kill()
            await process.communicate()
            emulator.clock.advance(dt.timedelta(days=2))
        final = await start_sync(args)
        _, err = await final.communicate()
        assert final.returncode == 0, err.decode()
        at = emulator.clock.now
    now = {e["event_id"] for e in expected_events_at(ids, config=config, at=at)}
    written = event_ids(tmp_path / out)
    assert len(written) == len(set(written)), "an event was written twice"
    assert set(written) >= now, "an event the emulator holds was never written"
    assert set(written) <= now.union(*seen_at), "an event the emulator never served"
    emitted = {row[0] for row in state_query(tmp_path / "crm.sync", "SELECT event_id FROM emitted")}
    assert emitted == set(written)
    statuses = [row[0] for row in state_query(tmp_path / "crm.sync", "SELECT status FROM runs")]
    assert "running" in statuses, "no kill landed mid-run"


async def test_a_second_sync_on_the_same_state_is_refused_while_one_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two overlapping runs would write the same events twice: the second exits 2 saying so."""
    write_ids(tmp_path / "ids.txt", 10)

    async with Emulator(EmulatorConfig(rate_limit=None)) as emulator:
        with SyncState(tmp_path / "crm.sync"):
            args = [*argv(emulator.url, tmp_path), "--api-key", TEST_KEY]
            assert await asyncio.to_thread(main, args) == 2
            assert emulator.stats.requests == 0
        assert "another sync is running" in capsys.readouterr().err
        assert await asyncio.to_thread(main, args) == 0


async def test_an_output_that_is_the_list_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out naming the --ids file (or the state): exit 2, the list intact."""
    source = write_ids(tmp_path / "ids.txt", 10)
    before = source.read_bytes()
    args = [*argv("http://127.0.0.1:9", tmp_path, "ids.txt"), "--api-key", TEST_KEY]
    assert await asyncio.to_thread(main, args) == 2
    assert "--ids and --out must not be the same file" in capsys.readouterr().err
    assert source.read_bytes() == before


async def test_ids_from_standard_input_are_synced(tmp_path: Path) -> None:
    """--ids - reads the list from a pipe, once."""
    write_ids(tmp_path / "ids.txt", 80)
    async with Emulator(EmulatorConfig(rate_limit=None)) as emulator:
        args = argv(emulator.url, tmp_path)
        args[args.index("--ids") + 1] = "-"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "explorium_events", *args,
            env={**os.environ, "EXPLORIUM_API_KEY": TEST_KEY},
            stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await process.communicate((tmp_path / "ids.txt").read_bytes())
        assert process.returncode == 0, err.decode()
        assert emulator.stats.requests == 2
    assert b"standard input: 80 IDs" in err


async def test_a_full_disk_exits_1_and_the_next_run_completes_exactly_once(
    tmp_path: Path,
) -> None:
    """A file-size limit stops the run with exit 1 naming the output; with room, each event once."""
    write_ids(tmp_path / "ids.txt", 400)
    config = EmulatorConfig(rate_limit=None)
    async with Emulator(config) as emulator:
        args = argv(emulator.url, tmp_path)
        code = (
            "import resource, sys, runpy; "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000)); "
            "sys.argv = ['explorium-events', *sys.argv[1:]]; "
            "runpy.run_module('explorium_events', run_name='__main__')"
        )
        limited = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, *args,
            env={**os.environ, "EXPLORIUM_API_KEY": TEST_KEY},
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await limited.communicate()
        assert limited.returncode == 1, err.decode()
        assert b"events.jsonl" in err and b"run the same command again" in err
        again = await start_sync(args)
        _, err = await again.communicate()
        assert again.returncode == 0, err.decode()
    ids = [prospect_id(n) for n in range(400)]
    truth = {e["event_id"] for e in expected_events_at(ids, config=config, at=config.anchor())}
    written = event_ids(tmp_path / "events.jsonl")
    assert len(written) == len(set(written)) and set(written) == truth


async def test_sigterm_while_watching_stops_at_once_with_130(tmp_path: Path) -> None:
    """--every 1h: SIGTERM during the wait ends it cleanly, without waiting the hour."""
    write_ids(tmp_path / "ids.txt", 40)
    async with Emulator(EmulatorConfig(rate_limit=None)) as emulator:
        process = await start_sync([*argv(emulator.url, tmp_path), "--every", "1h"])
        assert process.stderr is not None
        while b"next run" not in await asyncio.wait_for(process.stderr.readline(), 60):
            pass
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130 and b"stopped while waiting" in err
