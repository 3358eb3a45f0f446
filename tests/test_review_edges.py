"""Edges a hostile review of the command line found: each was a silent or unclear loss."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from explorium_events import EventsClient, sync
from explorium_events.emulator import Emulator, EmulatorConfig
from tests.conftest import TEST_KEY, ApiServer, FakeClock, Seen, events_body, prospect_id

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
FULL = "/dev/full"  # every write to it fails with ENOSPC, as a full disk does
needs_dev_full = pytest.mark.skipif(not os.path.exists(FULL), reason="needs /dev/full")


@pytest.fixture
async def failing() -> AsyncIterator[Emulator]:
    """An emulator that answers every events request with a 5xx."""
    async with Emulator(EmulatorConfig(rate_limit=None, now=NOW, error_rate=1.0)) as emu:
        yield emu


@pytest.fixture
async def healthy() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(rate_limit=None, now=NOW)) as emu:
        yield emu


async def run_cli(*argv: str, file_size_limit: int | None = None) -> tuple[int, str]:
    """A real `python -m explorium_events` process (optionally under RLIMIT_FSIZE): its exit
    status and standard error."""

    def limit() -> None:  # in the child: CPython ignores SIGXFSZ, so writes get EFBIG
        import resource  # POSIX only, like preexec_fn

        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, resource.RLIM_INFINITY))

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "explorium_events",
        *argv,
        env={**os.environ, "EXPLORIUM_API_KEY": TEST_KEY},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=limit,
    )
    _, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, err.decode()


def write_ids(path: Path, count: int) -> Path:
    path.write_text("".join(f"{prospect_id(number)}\n" for number in range(count)))
    return path


@needs_dev_full
@pytest.mark.parametrize("checkpoint", [False, True])
async def test_a_failed_out_that_cannot_be_written_is_named_and_fails_the_run(
    failing: Emulator, tmp_path: Path, checkpoint: bool
) -> None:
    """--failed-out on a full disk: exit 1 with an error naming it, not a bare errno."""
    source = write_ids(tmp_path / "ids.txt", 120)
    extra = ["--checkpoint", str(tmp_path / "pull.ckpt")] if checkpoint else []
    code, err = await run_cli(
        "fetch",
        "--ids",
        str(source),
        "--out",
        str(tmp_path / "e.jsonl"),
        "--failed-out",
        FULL,
        "--base-url",
        failing.url,
        "--rate-limit",
        "off",
        "--max-attempts",
        "1",
        "--give-up-after",
        "off",
        "--no-progress",
        *extra,
    )
    assert code == 1, err
    assert "Traceback" not in err
    assert f"error: cannot write {FULL}: No space left on device (ENOSPC)" in err
    assert "[Errno" not in err


@needs_dev_full
@pytest.mark.parametrize("checkpoint", [False, True])
async def test_the_summary_never_points_to_a_failed_out_that_could_not_be_written(
    failing: Emulator, tmp_path: Path, checkpoint: bool
) -> None:
    """--failed-out on a full disk: the summary's retry line neither names it as holding
    the IDs nor says to run with --ids on it, but says what to do instead."""
    source = write_ids(tmp_path / "ids.txt", 120)
    extra = ["--checkpoint", str(tmp_path / "pull.ckpt")] if checkpoint else []
    summary = tmp_path / "summary.json"
    code, err = await run_cli(
        "fetch",
        *("--ids", str(source), "--out", str(tmp_path / "e.jsonl"), "--failed-out", FULL),
        *("--base-url", failing.url, "--rate-limit", "off", "--max-attempts", "1"),
        *("--give-up-after", "off", "--no-progress", "--summary-json", str(summary)),
        *extra,
    )
    assert code == 1, err
    assert f"cannot write {FULL}" in err
    retry = [line for line in err.splitlines() if line.startswith("  retry them")]
    assert len(retry) == 1, err
    assert f"written to {FULL}" not in err
    assert f"--ids {FULL}" not in err
    assert f"also in {FULL}" not in err
    if checkpoint:
        assert "run the same command with --retry-failed" in retry[0]
    else:
        assert retry[0] == (
            f"  retry them  120 IDs not done, and {FULL} could not hold them: "
            "fix the cause and run the same command again"
        )
    figures = json.loads(summary.read_text())
    assert figures["failed_out_error"] == f"cannot write {FULL}: No space left on device (ENOSPC)"


@needs_dev_full
async def test_a_summary_json_that_cannot_be_written_is_named(
    healthy: Emulator, tmp_path: Path
) -> None:
    """--summary-json on a full disk: exit 1 with an error naming the file."""
    source = write_ids(tmp_path / "ids.txt", 40)
    code, err = await run_cli(
        "fetch",
        "--ids",
        str(source),
        "--out",
        str(tmp_path / "e.jsonl"),
        "--summary-json",
        FULL,
        "--base-url",
        healthy.url,
        "--rate-limit",
        "off",
        "-q",
    )
    assert code == 1, err
    assert f"error: cannot write {FULL}: No space left on device (ENOSPC)" in err
    assert "[Errno" not in err


def old_events(server: ApiServer, seen: Seen) -> web.StreamResponse:
    """Every ID's event, dated years back, whatever window was asked for."""
    body = events_body(seen.ids)
    for event in body["output_events"]:
        event["event_time"] = "2020-01-01T00:00:00+00:00"
    return web.json_response(body)


async def test_a_sync_never_writes_twice_an_event_dated_before_the_retention(
    api: ApiServer, clock: FakeClock, tmp_path: Path
) -> None:
    """A server that sends an event dated before what the state keeps: the next run skips it."""
    api.handler = old_events
    source = write_ids(tmp_path / "ids.txt", 80)
    out, state = tmp_path / "e.jsonl", tmp_path / "s"
    async with EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock) as client:
        first = await sync(client, source, out, state)
        clock.now += 86_400  # the next day
        again = await sync(client, source, out, state)
    assert first.new_events == 80
    assert again.new_events == 0
    written = [json.loads(line)["event_id"] for line in out.read_text().splitlines()]
    assert len(written) == len(set(written)) == 80


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("command", ["fetch", "sync"])
async def test_a_checkpoint_or_state_that_cannot_be_created_is_a_write_error_not_a_bad_file(
    healthy: Emulator, tmp_path: Path, command: str
) -> None:
    """A new checkpoint (or sync state) on a full disk: exit 1, "cannot write", not "bad file"."""
    source = write_ids(tmp_path / "ids.txt", 40)
    keeper = tmp_path / "new.ckpt"
    flag = "--checkpoint" if command == "fetch" else "--state"
    code, err = await run_cli(
        command,
        "--ids",
        str(source),
        "--out",
        str(tmp_path / "e.jsonl"),
        flag,
        str(keeper),
        "--base-url",
        healthy.url,
        "--rate-limit",
        "off",
        file_size_limit=4096,  # less than SQLite's shared-memory file
    )
    assert code == 1, err
    assert "Traceback" not in err
    assert f"cannot write {keeper}" in err
    assert "not a checkpoint" not in err and "not a sync state" not in err
