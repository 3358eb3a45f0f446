"""Issue 10, input and paths: the exit status never lies, and read-once input is read once.

The invariant tests break the pull on purpose (its reading of the input comes up short,
the way a pipe read a second time does) and check that the run fails loudly. The
process tests give a real child a pipe through /dev/fd, a named FIFO and /dev/stdin.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from explorium_events import PullSummary
from explorium_events.cli import main
from explorium_events.cli._demo import demo_prospect_ids
from explorium_events.cli._input import IdInput
from explorium_events.emulator import Emulator, EmulatorConfig, expected_events
from tests.conftest import TEST_KEY, ApiServer, prospect_id

PROCESS_TIMEOUT = 30.0


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(rate_limit=None)) as emu:
        yield emu


def _write_ids(path: Path, ids: list[str]) -> str:
    path.write_text("".join(f"{pid}\n" for pid in ids), encoding="utf-8")
    return str(path)


def _lose_the_second_half(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pull's reading of a checked input yields half of it: a loss the books must show."""
    read = IdInput.__iter__

    def half(self: IdInput) -> Iterator[str]:
        values = list(read(self))
        yield from values[: len(values) // 2]

    monkeypatch.setattr(IdInput, "__iter__", half)


# -- point 1: the exit status never lies -----------------------------------------------------


@pytest.mark.parametrize("checkpoint", [False, True], ids=["plain", "--checkpoint"])
async def test_fetch_that_loses_input_ids_exits_1_naming_how_many(
    checkpoint: bool,
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """IDs the input check counted but the pull never saw make the run exit 1, never 0."""
    _lose_the_second_half(monkeypatch)
    ids = [prospect_id(n) for n in range(200)]
    argv = ["fetch", "--no-progress", "--ids", _write_ids(tmp_path / "ids.txt", ids)]
    argv += ["--out", str(tmp_path / "e.jsonl"), "--api-key", TEST_KEY]
    argv += ["--base-url", emulator.url]
    if checkpoint:
        argv += ["--checkpoint", str(tmp_path / "p.ckpt")]
    status = await asyncio.to_thread(main, argv)
    err = capsys.readouterr().err
    assert status == 1, err
    assert "100 of 200 prospect IDs are unaccounted for" in err
    assert "Done in" not in err


async def test_fetch_with_a_rejected_key_and_repeated_ids_accounts_for_every_value(
    api: ApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Repeats read after a refused key are counted as repeats, not reported as lost."""
    from aiohttp import web

    api.handler = lambda server, seen: web.json_response({"details": "no"}, status=401)
    ids = [prospect_id(n) for n in range(100)] * 2
    argv = ["fetch", "--no-progress", "--ids", _write_ids(tmp_path / "ids.txt", ids)]
    argv += ["--out", str(tmp_path / "e.jsonl"), "--api-key", TEST_KEY, "--base-url", api.url]
    argv += ["--failed-out", str(tmp_path / "failed.txt"), "--concurrency", "1"]
    status = await asyncio.to_thread(main, argv)
    err = capsys.readouterr().err
    assert status == 1 and "refused the key" in err.lower()
    assert "unaccounted" not in err
    assert sorted((tmp_path / "failed.txt").read_text().split()) == sorted(set(ids))


def test_demo_that_makes_fewer_ids_than_asked_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A demo whose pull did not account for every prospect asked for fails, events or not."""
    monkeypatch.setattr(
        "explorium_events.cli._demo.demo_prospect_ids",
        lambda count, seed=0: demo_prospect_ids(count - 1, seed),
    )
    argv = ["demo", "--prospects", "80", "--rate-limit", "off", "--latency-ms", "0"]
    argv += ["--error-rate", "0", "--duplicate-rate", "0", "--no-progress"]
    argv += ["--out", str(tmp_path / "e.jsonl")]
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 1, captured.out + captured.err
    assert "1 of 80 prospect IDs are unaccounted for" in captured.err


def _summary(**changes: int) -> PullSummary:
    numbers = {
        "input_values": 12,
        "unique_ids": 10,
        "done": 10,
        "failed": 0,
        "not_tried": 0,
        "invalid": 1,
        "duplicates": 1,
        "failed_batches": 0,
        "events_total": 30,
        "events_written": 30,
        "batches_run": 1,
        "requests": 1,
        "retries": 0,
        "rate_limited": 0,
        "duplicates_dropped": 0,
    }
    numbers.update(changes)
    return PullSummary(
        **numbers, elapsed=1.0, interrupted=False, checkpoint="p.ckpt", output="e.jsonl"
    )


def test_pull_summary_is_complete_only_when_every_input_value_is_accounted_for() -> None:
    """``complete`` checks the books: values = done + failed + invalid + repeated, none failed."""
    assert _summary().complete and _summary().unaccounted == 0
    # The counters say nothing failed and nothing is left, but 5 values are in no state.
    lost = _summary(input_values=17)
    assert lost.unaccounted == 5 and not lost.complete
    assert not _summary(done=9, not_tried=1).complete
    assert not _summary(done=9, failed=1, failed_batches=1).complete


# -- point 2: a real process reads read-once input exactly once -------------------------------


async def _fetch_process(
    emulator: Emulator,
    ids_arg: str,
    out: Path,
    *,
    pass_fds: tuple[int, ...] = (),
    stdin_data: bytes | None = None,
) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "explorium_events",
        "fetch",
        "--no-progress",
        "--ids",
        ids_arg,
        "--out",
        str(out),
        "--base-url",
        emulator.url,
        stdin=asyncio.subprocess.PIPE if stdin_data is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "EXPLORIUM_API_KEY": TEST_KEY},
        pass_fds=pass_fds,
    )
    try:
        async with asyncio.timeout(PROCESS_TIMEOUT):
            _, err = await process.communicate(stdin_data)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, err.decode()


def _events(out: Path) -> list[str]:
    return sorted(out.read_text(encoding="utf-8").splitlines())


def _expected(emulator: Emulator, ids: list[str]) -> int:
    return len(expected_events(ids, config=emulator.config))


async def test_a_real_process_reads_a_dev_fd_pipe_once_and_fetches_every_id(
    emulator: Emulator, tmp_path: Path
) -> None:
    """`fetch --ids /dev/fd/N` on a pipe (bash's <(...)) fetches all 200 IDs, exit 0."""
    ids = [prospect_id(n) for n in range(200)]
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, "".join(f"{pid}\n" for pid in ids).encode())  # fits the buffer
        os.close(write_end)
        out = tmp_path / "e.jsonl"
        status, err = await _fetch_process(
            emulator, f"/dev/fd/{read_end}", out, pass_fds=(read_end,)
        )
    finally:
        os.close(read_end)
    assert status == 0, err
    assert "200 of 200 prospect IDs done" in err
    assert len(_events(out)) == _expected(emulator, ids) > 0


async def test_a_real_process_reads_a_named_fifo_once_without_hanging(
    emulator: Emulator, tmp_path: Path
) -> None:
    """`fetch --ids FIFO` with a writer fetches every ID and ends; a second read would hang."""
    ids = [prospect_id(n) for n in range(120)]
    fifo = tmp_path / "ids.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as stream:  # returns when the child opens it to read
            stream.write("".join(f"{pid}\n" for pid in ids).encode())

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    out = tmp_path / "e.jsonl"
    try:
        status, err = await _fetch_process(emulator, str(fifo), out)
    finally:
        if writer.is_alive():  # the child never opened it: let the writer go
            descriptor = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            writer.join(10)
            os.close(descriptor)
    assert status == 0, err
    assert "120 of 120 prospect IDs done" in err
    assert len(_events(out)) == _expected(emulator, ids) > 0


async def test_a_real_process_reads_dev_stdin_once(emulator: Emulator, tmp_path: Path) -> None:
    """`fetch --ids /dev/stdin` from a pipe fetches every ID (it used to read it twice)."""
    ids = [prospect_id(n) for n in range(90)]
    out = tmp_path / "e.jsonl"
    data = "".join(f"{pid}\n" for pid in ids).encode()
    status, err = await _fetch_process(emulator, "/dev/stdin", out, stdin_data=data)
    assert status == 0, err
    assert "90 of 90 prospect IDs done" in err
    assert len(_events(out)) == _expected(emulator, ids) > 0
