"""The command line as a Unix tool: data alone on stdout, quiet pipes, no silent overwrite or
format guess, -q, --summary-json, a progress line that fits its terminal, honest summaries.

In-process runs go through ``main(argv)``; a closed pipe and a real terminal need a real
process, so those tests start one.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import sys
import termios
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from explorium_events.cli import _progress as progress_module
from explorium_events.cli import build_parser, main
from explorium_events.cli._common import EXIT_PIPE
from explorium_events.cli._progress import Progress, Snapshot, render_line
from explorium_events.cli._summary_json import SCHEMA_VERSION
from explorium_events.emulator import Emulator, EmulatorConfig
from tests.conftest import TEST_KEY, ApiServer, Seen, prospect_id

NOW = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
PROCESS_TIMEOUT = 30.0
# A small, fast demo: no rate limit, no latency, no faults.
DEMO = ["demo", "--prospects", "80", "--rate-limit", "off", "--latency-ms", "0"]
DEMO += ["--error-rate", "0", "--duplicate-rate", "0"]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(rate_limit=None, now=NOW)) as emu:
        yield emu


def to(server: Emulator | ApiServer) -> list[str]:
    return ["--api-key", TEST_KEY, "--base-url", server.url]


def write_ids(path: Path, count: int) -> str:
    path.write_text("".join(f"{prospect_id(n)}\n" for n in range(count)), encoding="utf-8")
    return str(path)


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """main(argv) in a thread (it runs its own loop): status, stdout, stderr."""
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    assert TEST_KEY not in captured.out + captured.err
    return code, captured.out, captured.err


def run_here(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


# -- data alone on standard output -----------------------------------------------------------


def test_demo_to_standard_output_writes_only_events_there(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`demo --out -`: every stdout line is an event; the banner and report are on stderr."""
    code, out, err = run_here(capsys, *DEMO, "--out", "-")
    assert code == 0, err
    events = json_lines(out)
    assert events and all("event_id" in event for event in events)
    assert "Done in" in err and "checked     all" in err and "Next:" in err


async def test_fetch_and_enroll_write_only_data_to_standard_output(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """fetch's events and enroll's one JSON result are alone on stdout; the reports on stderr."""
    ids = write_ids(tmp_path / "ids.txt", 50)
    code, out, err = await run(capsys, "fetch", "--ids", ids, *to(emulator))
    assert code == 0 and all("event_id" in event for event in json_lines(out))
    assert "Done in" in err
    enroll = ["enroll", "--ids", ids, "--enrollment-key", "crm-2026", "--event-types", "role"]
    code, out, err = await run(capsys, *enroll, *to(emulator))
    assert code == 0 and json_lines(out)[0]["enrolled"] == 50 and len(out.splitlines()) == 1
    assert "enroll: 50 enrolled" in err


# -- a closed pipe ---------------------------------------------------------------------------


async def test_demo_into_a_closed_pipe_exits_141_with_nothing_on_stderr(tmp_path: Path) -> None:
    """`demo -q --out - | head -1`: exit 141, no traceback, no at-exit BrokenPipeError."""
    reader, writer = os.pipe()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "explorium_events",
        *DEMO,
        "--prospects",
        "2000",
        "-q",
        "--out",
        "-",
        stdout=writer,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
    )
    os.close(writer)
    with os.fdopen(reader, "rb") as events:
        first = await asyncio.to_thread(events.readline)
    async with asyncio.timeout(PROCESS_TIMEOUT):
        _, err = await process.communicate()
    assert json.loads(first)["event_id"]
    assert process.returncode == EXIT_PIPE == 141
    assert err == b""


def test_a_broken_pipe_in_any_command_exits_141(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command that meets a closed standard output (enrollments list | head) ends with 141."""

    def broken(args: Any) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("explorium_events.cli._enrollments.run", broken)
    code, _, err = run_here(capsys, "enrollments", "list", "--api-key", "k")
    assert code == 141 and err == ""


# -- nothing overwritten that the user did not name ------------------------------------------


def test_demo_keeps_an_existing_events_jsonl_unless_forced_or_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default events.jsonl is refused (exit 2) when it exists; --force or --out replace it."""
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "events.jsonl"
    mine.write_text("my own events\n")
    code, out, err = run_here(capsys, *DEMO)
    assert code == 2 and out == ""
    assert "events.jsonl exists" in err and "--force" in err and "--out" in err
    assert mine.read_text() == "my own events\n"
    code, _, err = run_here(capsys, *DEMO, "--force")
    assert code == 0, err
    assert "event_id" in mine.read_text()
    mine.write_text("my own events\n")
    code, _, err = run_here(capsys, *DEMO, "--out", "events.jsonl")  # named: replaced
    assert code == 0, err
    assert "event_id" in mine.read_text()


def test_demo_writes_events_jsonl_when_it_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No file yet: the demo writes its default output without asking for --force."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_here(capsys, *DEMO)
    assert code == 0, err
    assert json_lines((tmp_path / "events.jsonl").read_text())


# -- --out extensions: refused or honoured, never guessed ------------------------------------


@pytest.mark.parametrize("name", ["events.txt", "events.gz", "events.JSONL.bak"])
async def test_fetch_refuses_an_unknown_out_extension_before_any_request(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """An extension no format has, without --format: exit 2 naming the known ones; no request."""
    ids = write_ids(tmp_path / "ids.txt", 5)
    out = tmp_path / name
    code, _, err = await run(capsys, "fetch", "--ids", ids, "--out", str(out), *to(emulator))
    assert code == 2
    assert "is not the extension of an output format" in err
    for known in (".csv", ".db", ".json", ".jsonl", ".ndjson", ".sqlite"):
        assert known in err
    assert emulator.stats.requests == 0 and not out.exists()


async def test_an_unknown_extension_with_format_and_a_bare_name_are_written(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--format names the format of any file; a name without an extension is JSONL."""
    ids = write_ids(tmp_path / "ids.txt", 5)
    for out, extra in ((tmp_path / "e.txt", ["--format", "jsonl"]), (tmp_path / "events", [])):
        argv = ["fetch", "--ids", ids, "--out", str(out), *extra]
        code, _, err = await run(capsys, *argv, *to(emulator))
        assert code == 0, err
        assert all("event_id" in event for event in json_lines(out.read_text()))


async def test_fetch_into_json_writes_one_array(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out x.json: one JSON array of every event, as many as the summary says."""
    ids = write_ids(tmp_path / "ids.txt", 60)
    out = tmp_path / "events.json"
    code, _, err = await run(capsys, "fetch", "--ids", ids, "--out", str(out), *to(emulator))
    assert code == 0, err
    events = json.loads(out.read_text())
    assert isinstance(events, list) and f"{len(events):,} written to {out} (json)" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--checkpoint", "ckpt"], "--checkpoint cannot resume --format json"),
        (["--append"], "cannot append to"),
    ],
)
async def test_json_with_checkpoint_or_append_is_refused(
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    """A JSON array cannot be resumed or added to: exit 2, pointing to JSONL; nothing sent."""
    ids = write_ids(tmp_path / "ids.txt", 5)
    out = tmp_path / "events.json"
    out.write_text("[]\n")
    extra = [str(tmp_path / part) if part == "ckpt" else part for part in extra]
    argv = ["fetch", "--ids", ids, "--out", str(out), *extra]
    code, _, err = await run(capsys, *argv, *to(emulator))
    assert code == 2 and message in err and ".jsonl" in err.lower()
    assert emulator.stats.requests == 0 and out.read_text() == "[]\n"


@pytest.mark.parametrize(
    ("out", "message"),
    [("events.json", "cannot be added to"), ("events.txt", "is not the extension")],
)
def test_sync_refuses_json_and_unknown_extensions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str, message: str
) -> None:
    """sync appends every run: no JSON array, and no guessed format either; exit 2."""
    ids = write_ids(tmp_path / "ids.txt", 5)
    state = tmp_path / "crm.sync"
    argv = ["sync", "--ids", ids, "--state", str(state), "--out", str(tmp_path / out)]
    code, _, err = run_here(capsys, *argv, "--api-key", "k", "--base-url", "http://127.0.0.1:9")
    assert code == 2 and message in err
    assert not state.exists()


def test_demo_refuses_an_unknown_out_extension(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo reads --out as fetch does."""
    code, _, err = run_here(capsys, *DEMO, "--out", str(tmp_path / "demo.txt"))
    assert code == 2 and "is not the extension of an output format" in err


def test_demo_refuses_parquet_on_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    """Parquet is a folder of part files: to standard output it is a usage error, exit 2."""
    code, _, err = run_here(capsys, *DEMO, "--format", "parquet", "--out", "-")
    assert code == 2 and "not standard output" in err and "Traceback" not in err


# -- -q/--quiet ------------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _every_command() -> list[list[str]]:
    """Every command, and every action of those that have actions (enrollments list...)."""
    commands: list[list[str]] = []
    for name, sub in _subcommands(build_parser()).items():
        actions = _subcommands(sub)
        commands.extend([[name, action] for action in actions] or [[name]])
    return commands


@pytest.mark.parametrize("command", _every_command(), ids=" ".join)
def test_every_command_takes_quiet(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """-q/--quiet is a flag of every command and action, and excludes -v."""
    code, out, _ = run_here(capsys, *command, "--help")
    assert code == 0 and "-q, --quiet" in out
    code, _, err = run_here(capsys, *command, "-q", "-v")
    assert code == 2 and "not allowed with argument" in err


def test_demo_quiet_prints_nothing_and_exits_0(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """demo -q: no banner, no progress, no report; the file and the status say it all."""
    code, out, err = run_here(capsys, *DEMO, "-q", "--progress", "--out", str(tmp_path / "e.jsonl"))
    assert (code, out, err) == (0, "", "")


async def test_fetch_quiet_shows_only_errors(
    api: ApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """fetch -q: silent when all is well; a failed batch shows its error line, not the summary."""
    ids = write_ids(tmp_path / "ids.txt", 3)
    out = str(tmp_path / "e.jsonl")
    code, _, err = await run(capsys, "fetch", "-q", "--ids", ids, "--out", out, *to(api))
    assert (code, err) == (0, "")

    def failing(server: ApiServer, seen: Seen) -> web.Response:
        return web.json_response({"detail": "down"}, status=500)

    api.handler = failing
    argv = ["fetch", "-q", "--ids", ids, "--out", out, "--max-attempts", "1", *to(api)]
    code, _, err = await run(capsys, *argv)
    assert code == 1 and "batch of 3 IDs failed" in err
    assert "Finished" not in err and "input " not in err


async def test_sync_and_enroll_quiet_print_nothing_on_success(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """sync -q writes no summary; enroll -q keeps its JSON on stdout and nothing on stderr."""
    ids = write_ids(tmp_path / "ids.txt", 10)
    sync = ["sync", "-q", "--ids", ids, "--state", str(tmp_path / "s.sync")]
    code, out, err = await run(capsys, *sync, "--out", str(tmp_path / "e.jsonl"), *to(emulator))
    assert (code, out, err) == (0, "", "")
    enroll = ["enroll", "-q", "--ids", ids, "--enrollment-key", "crm-2026", "--event-types", "role"]
    code, out, err = await run(capsys, *enroll, *to(emulator))
    assert code == 0 and err == "" and json.loads(out)["enrolled"] == 10


def test_serve_quiet_prints_no_banner(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve -q: the emulator runs without its banner or its goodbye."""

    async def fake_serve_forever(
        config: EmulatorConfig, *, host: str, port: int, on_ready: Callable[[str], Any]
    ) -> None:
        on_ready("http://127.0.0.1:1")

    monkeypatch.setattr("explorium_events.emulator.serve_forever", fake_serve_forever)
    assert run_here(capsys, "serve", "-q") == (0, "", "")


# -- --summary-json --------------------------------------------------------------------------


def _human_figures(err: str) -> dict[str, int]:
    def number(pattern: str) -> int:
        found = re.search(pattern, err)
        assert found, (pattern, err)
        return int(found.group(1).replace(",", ""))

    return {
        "done": number(r"([\d,]+) of [\d,]+ prospect IDs done"),
        "ids": number(r"of ([\d,]+) prospect IDs done"),
        "written": number(r"events      ([\d,]+) written"),
        "dropped": number(r"([\d,]+) duplicates dropped"),
        "requests": number(r"requests    ([\d,]+) \("),
        "retries": number(r"\(([\d,]+) retr"),
        "ok": number(r"run: ([\d,]+) ok"),
    }


async def test_fetch_summary_json_carries_the_figures_of_the_human_summary(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same numbers as the summary on stderr, with schema_version, command, exit_status."""
    ids = write_ids(tmp_path / "ids.txt", 100)
    summary = tmp_path / "summary.json"
    argv = ["fetch", "--ids", ids, "--out", str(tmp_path / "e.csv"), "--summary-json", str(summary)]
    code, _, err = await run(capsys, *argv, *to(emulator))
    assert code == 0, err
    figures = json.loads(summary.read_text())
    human = _human_figures(err)
    assert figures["schema_version"] == SCHEMA_VERSION == 1
    assert (figures["command"], figures["exit_status"], figures["outcome"]) == ("fetch", 0, "done")
    assert figures["input"]["done"] == human["done"] == figures["input"]["ids"] == human["ids"]
    assert figures["events"]["written"] == human["written"]
    assert figures["events"]["duplicates_dropped"] == human["dropped"]
    assert figures["events"]["format"] == "csv"
    assert figures["requests"]["sent"] == human["requests"]
    assert figures["requests"]["retries"] == human["retries"]
    assert figures["batches"]["ok"] == human["ok"]
    assert figures["throughput"]["ids_per_second"] > 0
    assert figures["rate_limit"]["limit"] == 200


async def test_summary_json_to_standard_output_only_when_the_data_goes_elsewhere(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--summary-json - with --out FILE: one JSON line on stdout; without --out: exit 2."""
    ids = write_ids(tmp_path / "ids.txt", 10)
    argv = ["fetch", "--ids", ids, "--summary-json", "-"]
    code, out, err = await run(capsys, *argv, "--out", str(tmp_path / "e.jsonl"), *to(emulator))
    assert code == 0 and json.loads(out)["input"]["done"] == 10 and len(out.splitlines()) == 1
    code, out, err = await run(capsys, *argv, *to(emulator))
    assert code == 2 and out == "" and "would mix the summary into the data" in err
    code, _, err = run_here(capsys, *DEMO, "--out", "-", "--summary-json", "-")
    assert code == 2 and "would mix" in err


async def test_summary_json_may_not_be_another_file_of_the_command(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--summary-json naming --ids or --out: exit 2 before anything is read or written."""
    ids = write_ids(tmp_path / "ids.txt", 10)
    for clash in (ids, str(tmp_path / "e.jsonl")):
        argv = ["fetch", "--ids", ids, "--out", str(tmp_path / "e.jsonl"), "--summary-json", clash]
        code, _, err = await run(capsys, *argv, *to(emulator))
        assert code == 2 and "same file" in err
    assert emulator.stats.requests == 0


def test_demo_summary_json_adds_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo's figures: the pull's, and the check of every event against the emulator."""
    summary = tmp_path / "s.json"
    argv = [*DEMO, "-q", "--out", str(tmp_path / "e.jsonl"), "--summary-json", str(summary)]
    assert run_here(capsys, *argv)[0] == 0
    figures = json.loads(summary.read_text())
    assert figures["command"] == "demo" and figures["exit_status"] == 0
    assert figures["check"]["ok"] and figures["check"]["businesses"]["ok"]
    assert figures["check"]["expected_received"] == figures["check"]["expected_events"] > 0


async def test_sync_and_enroll_summary_json(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """sync's figures (new events, IDs synced) and enroll's (enrolled, requests) as JSON."""
    ids = write_ids(tmp_path / "ids.txt", 10)
    summary = tmp_path / "s.json"
    sync = ["sync", "--ids", ids, "--state", str(tmp_path / "s.sync")]
    sync += ["--summary-json", str(summary)]
    code, _, err = await run(capsys, *sync, "--out", str(tmp_path / "e.jsonl"), *to(emulator))
    assert code == 0, err
    figures = json.loads(summary.read_text())
    new = int(re.search(r"Synced: ([\d,]+) new event", err).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert figures["command"] == "sync" and figures["outcome"] == "done"
    assert figures["events"]["new"] == new and figures["ids"]["synced"] == 10
    enroll = ["enroll", "--ids", ids, "--enrollment-key", "crm-2026", "--event-types", "role"]
    code, _, _ = await run(capsys, *enroll, "--summary-json", str(summary), *to(emulator))
    figures = json.loads(summary.read_text())
    assert code == 0 and figures["enrolled"] == 10 and figures["requests"]["sent"] >= 1
    code, _, err = await run(capsys, *enroll, "--summary-json", "-", *to(emulator))
    assert code == 2 and "would mix" in err


# -- the progress line fits its terminal -----------------------------------------------------


class _Terminal(io.StringIO):
    """Standard error on a terminal: a descriptor that os.get_terminal_size is asked about."""

    def fileno(self) -> int:
        return 99

    def isatty(self) -> bool:
        return True


def test_the_progress_line_fits_the_stderr_terminal_and_keeps_redrawing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """80 columns on stderr, standard output piped (100 by default): every redraw < 80 wide."""

    def size(fd: int) -> os.terminal_size:
        if fd == 99:
            return os.terminal_size((80, 24))
        raise OSError("not a terminal")

    monkeypatch.setattr(progress_module.os, "get_terminal_size", size)
    monkeypatch.setattr(
        progress_module.shutil, "get_terminal_size", lambda fallback: os.terminal_size((100, 24))
    )
    now = [0.0]
    stream = _Terminal()
    line = Progress(stream, enabled=True, clock=lambda: now[0])
    for step in range(20):
        now[0] += 1.0
        snapshot = Snapshot(
            ids_done=step * 4_000,
            ids_total=100_000,
            events=step * 9_999,
            requests=step * 100,
            retries=step,
            rate_limited=step,
            elapsed=now[0],
        )
        line.update(snapshot)
    drawn = stream.getvalue().split("\r")[1:]
    assert line.draws == 20 and len(drawn) == 20
    assert all(0 < len(text) <= 79 for text in drawn), max(map(len, drawn))


def test_a_narrow_line_keeps_the_rate_limit_wait_whole() -> None:
    """At 60 columns the counters go before a word of "waiting on rate limit" is cut."""
    from explorium_events import RateLimitState

    waiting = RateLimitState(
        limit=200,
        window=60.0,
        cost="request",
        used=200,
        in_flight=0,
        paused_for=0.0,
        waiting=True,
        server_limit=None,
        server_remaining=None,
    )
    snapshot = Snapshot(
        ids_done=1_400, ids_total=2_000, events=1_769, requests=35, retries=0,
        rate_limited=0, elapsed=1.0, limiter=waiting,
    )  # fmt: skip
    line = render_line(snapshot, 60)
    assert len(line) <= 60 and line.endswith("waiting on rate limit")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux pseudo-terminal")
def test_progress_on_a_real_80_column_terminal_with_data_piped(tmp_path: Path) -> None:
    """A real process, stderr an 80-column pty, stdout a pipe: no redraw is 80 or wider."""
    out_read, out_write = os.pipe()
    pid, terminal = pty.fork()
    if pid == 0:  # the child: stdout to the pipe, stderr stays on the terminal
        os.dup2(out_write, 1)
        os.execv(
            sys.executable,
            [sys.executable, "-m", "explorium_events", *DEMO, "--prospects", "400",
             "--rate-limit", "6/1", "--out", "-", "--progress"],
        )  # fmt: skip
    os.close(out_write)
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    screen, data = b"", b""
    open_fds = {terminal, out_read}
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [], PROCESS_TIMEOUT)
        assert ready, "the demo went silent"
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the pty's other end is gone
                chunk = b""
            if not chunk:
                open_fds.discard(fd)
            elif fd == terminal:
                screen += chunk
            else:
                data += chunk
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    os.close(out_read)
    assert os.waitstatus_to_exitcode(status) == 0, screen.decode()
    redraws = [part for part in screen.split(b"\r") if b"IDs" in part and b"\n" not in part]
    assert len(redraws) >= 2
    assert all(len(part) <= 79 for part in redraws), max(map(len, redraws))
    assert all(b"event_id" in line for line in data.splitlines())


# -- honest summaries ------------------------------------------------------------------------


async def test_one_failed_batch_is_not_called_done_and_shows_no_throughput(
    api: ApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One ID whose only batch failed: 0 of 1 done, no IDs/s line, the JSON agrees."""

    def failing(server: ApiServer, seen: Seen) -> web.Response:
        return web.json_response({"detail": "down"}, status=503)

    api.handler = failing
    ids = write_ids(tmp_path / "ids.txt", 1)
    summary = tmp_path / "s.json"
    argv = ["fetch", "--ids", ids, "--max-attempts", "1", "--summary-json", str(summary)]
    code, _, err = await run(capsys, *argv, "--out", str(tmp_path / "e.jsonl"), *to(api))
    assert code == 1
    assert "0 of 1 prospect IDs done" in err and "1 of 1" not in err
    assert "IDs/s" not in err and "throughput" not in err
    assert "1 batch (1 ID) after their retries" in err and "1 run: 0 ok, 1 failed" in err
    figures = json.loads(summary.read_text())
    assert figures["outcome"] == "failed" and figures["exit_status"] == 1
    assert figures["input"]["done"] == 0 and figures["input"]["failed"] == 1
    assert figures["throughput"] is None
