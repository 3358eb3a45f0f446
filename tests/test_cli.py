"""The command line: fetch, serve and demo through main(argv), and as a real process.

In-process runs go through ``asyncio.to_thread(main, argv)``: main runs its own event
loop, while the emulator or the programmable ``api`` server keeps serving on the test's.
Every run is checked for the API key in its output.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from explorium_events import RateLimitState
from explorium_events.cli import main
from explorium_events.cli._demo import demo_prospect_ids
from explorium_events.cli._flags import rate_limit_type as _rate_limit
from explorium_events.cli._input import MAX_LINE_BYTES, read_ids
from explorium_events.cli._progress import Progress, ProgressLogHandler, Snapshot, render_line
from explorium_events.cli._summary import pace
from explorium_events.emulator import Emulator, EmulatorConfig, expected_events
from tests.conftest import TEST_KEY, ApiServer, Seen, events_body, prospect_id

NOW = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
PROCESS_TIMEOUT = 30.0


@dataclass
class Ran:
    """One run of the command line: its exit status and what it printed."""

    code: int
    out: str
    err: str


def _check_no_key(out: str, err: str) -> None:
    assert TEST_KEY not in out and TEST_KEY not in err


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Ran:
    """main(argv) in a thread (it runs its own loop), with the key checked absent."""
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    _check_no_key(captured.out, captured.err)
    return Ran(code, captured.out, captured.err)


def run_here(capsys: pytest.CaptureFixture[str], *argv: str) -> Ran:
    """main(argv) on this thread, for tests without a server on the test's loop."""
    code = main(list(argv))
    captured = capsys.readouterr()
    _check_no_key(captured.out, captured.err)
    return Ran(code, captured.out, captured.err)


def feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def write_ids(path: Path, ids: list[str]) -> str:
    path.write_text("".join(f"{pid}\n" for pid in ids), encoding="utf-8")
    return str(path)


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(rate_limit=None, now=NOW)) as emu:
        yield emu


@pytest.fixture
def ids_file(tmp_path: Path) -> Callable[[int], str]:
    return lambda count: write_ids(tmp_path / "ids.txt", [prospect_id(n) for n in range(count)])


def to(server: Emulator | ApiServer) -> list[str]:
    return ["--api-key", TEST_KEY, "--base-url", server.url]


# -- fetch: the happy paths -----------------------------------------------------------------


async def test_fetch_writes_every_event_as_jsonl_exactly_as_the_api_sent_it(
    emulator: Emulator,
    ids_file: Callable[[int], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each line is one event object as served; together they are all the prospects' events."""
    out = tmp_path / "events.jsonl"
    ran = await run(capsys, "fetch", "--ids", ids_file(100), "--out", str(out), *to(emulator))
    assert ran.code == 0, ran.err
    ids = [prospect_id(n) for n in range(100)]
    expected = expected_events(ids, config=emulator.config)
    assert sorted(jsonl(out), key=lambda e: e["event_id"]) == sorted(
        expected, key=lambda e: e["event_id"]
    )
    assert ran.out == ""
    assert "Done in" in ran.err and "100 of 100 prospect IDs done" in ran.err
    assert f"{len(expected):,} written to {out}" in ran.err


async def test_fetch_without_out_writes_events_to_stdout_and_nothing_else(
    emulator: Emulator, ids_file: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Standard output holds only events; the summary and logs are on standard error."""
    ran = await run(capsys, "fetch", "--ids", ids_file(50), "-v", *to(emulator))
    assert ran.code == 0
    events = [json.loads(line) for line in ran.out.splitlines()]
    assert events and all(set(event) >= {"event_id", "prospect_id"} for event in events)
    assert "HTTP 200" in ran.err  # the debug logs went to stderr
    assert "written to standard output" in ran.err


async def test_fetch_reads_stdin_with_a_bom_crlf_blank_lines_whitespace_and_uppercase(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """IDs piped in are read whatever their line ends, padding and case."""
    ids = [prospect_id(n) for n in range(3)]
    data = b"\xef\xbb\xbf" + f"{ids[0].upper()}\r\n\r\n   {ids[1]}  \r\n\n{ids[2]}".encode()
    feed_stdin(monkeypatch, data)
    ran = await run(capsys, "fetch", *to(emulator))
    assert ran.code == 0, ran.err
    assert {json.loads(line)["prospect_id"] for line in ran.out.splitlines()} <= set(ids)
    assert emulator.stats.unique_ids_seen == 3


async def test_fetch_with_ids_dash_reads_standard_input(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--ids - means standard input."""
    feed_stdin(monkeypatch, f"{prospect_id(1)}\n".encode())
    ran = await run(capsys, "fetch", "--ids", "-", *to(emulator))
    assert ran.code == 0 and emulator.stats.ids_seen == 1


async def test_fetch_reads_the_prospect_id_column_of_a_csv(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CSV with a header is read from its prospect_id column, quoted fields and all."""
    path = tmp_path / "contacts.csv"
    rows = [f'"Doe, Jane",{prospect_id(n)},x@example.com' for n in range(5)]
    path.write_bytes(
        b"\xef\xbb\xbf" + ("name,Prospect_ID,email\r\n" + "\r\n".join(rows) + "\r\n").encode()
    )
    ran = await run(
        capsys, "fetch", "--ids", str(path), "--out", str(tmp_path / "e.jsonl"), *to(emulator)
    )
    assert ran.code == 0, ran.err
    assert emulator.stats.unique_ids_seen == 5
    assert "5 IDs" in ran.err


async def test_fetch_fetches_a_repeated_id_once_and_says_so(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Repeats in the input cost no request and are counted in the summary."""
    path = write_ids(tmp_path / "ids.txt", [prospect_id(1), prospect_id(2), prospect_id(1)])
    ran = await run(capsys, "fetch", "--ids", path, *to(emulator))
    assert ran.code == 0
    assert emulator.stats.ids_seen == 2
    assert "1 repeated" in ran.err and "3 of 3 prospect IDs done" in ran.err


async def test_fetch_with_no_ids_in_the_input_succeeds_and_warns(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty input (say, an empty failed-out file fed back) is not an error."""
    path = tmp_path / "empty.txt"
    path.write_text("\n\n")
    ran = await run(capsys, "fetch", "--ids", str(path), *to(emulator))
    assert ran.code == 0
    assert "no prospect IDs" in ran.err and emulator.stats.requests == 0


async def test_api_key_and_base_url_come_from_the_environment(
    emulator: Emulator,
    ids_file: Callable[[int], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without --api-key and --base-url, EXPLORIUM_API_KEY and EXPLORIUM_BASE_URL apply."""
    monkeypatch.setenv("EXPLORIUM_API_KEY", TEST_KEY)
    monkeypatch.setenv("EXPLORIUM_BASE_URL", emulator.url)
    ran = await run(capsys, "fetch", "--ids", ids_file(10))
    assert ran.code == 0, ran.err
    assert emulator.stats.ids_seen == 10


async def test_event_types_since_and_until_reach_the_request(
    api: ApiServer, ids_file: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Short and long event type names, a date and a datetime go into the body as the API wants."""
    ran = await run(
        capsys,
        "fetch",
        "--ids",
        ids_file(3),
        "--event-types",
        "role, prospect_changed_company",
        "--since",
        "2026-09-01",
        "--until",
        "2026-10-01T12:00:00",
        *to(api),
    )
    assert ran.code == 0, ran.err
    body = api.requests[0].body
    assert body["event_types"] == ["prospect_changed_role", "prospect_changed_company"]
    assert body["timestamp_from"] == "2026-09-01"
    assert body["timestamp_to"] == "2026-10-01T12:00:00+00:00"


async def test_concurrency_bounds_the_requests_in_flight(
    ids_file: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--concurrency 2 has two requests at the server at once, never more."""
    config = EmulatorConfig(rate_limit=None, latency_ms=20, now=NOW)
    async with Emulator(config) as emu:
        ran = await run(capsys, "fetch", "--ids", ids_file(400), "--concurrency", "2", *to(emu))
    assert ran.code == 0
    assert emu.stats.peak_in_flight == 2 and emu.stats.requests == 10


async def test_batch_size_sets_the_ids_per_request(
    api: ApiServer, ids_file: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--batch-size 7 sends at most seven IDs a request."""
    ran = await run(capsys, "fetch", "--ids", ids_file(20), "--batch-size", "7", *to(api))
    assert ran.code == 0
    assert sorted(len(seen.ids) for seen in api.requests) == [6, 7, 7]


async def test_rate_limit_flags_reach_the_client_and_the_summary(
    emulator: Emulator, ids_file: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--rate-limit and --rate-limit-cost set the client's limit, which the summary reports."""
    ran = await run(
        capsys,
        "fetch",
        "--ids",
        ids_file(80),
        "--rate-limit",
        "400/30",
        "--rate-limit-cost",
        "id",
        *to(emulator),
    )
    assert ran.code == 0
    assert "400 IDs per 30s: never reached (80 IDs sent)" in ran.err


async def test_a_per_id_rate_limit_below_one_batch_is_a_usage_error(
    emulator: Emulator, ids_file: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """20 IDs a minute cannot carry a 40-ID request: exit 2 before any request."""
    ran = await run(
        capsys,
        "fetch",
        "--ids",
        ids_file(5),
        "--rate-limit",
        "20/60",
        "--rate-limit-cost",
        "id",
        *to(emulator),
    )
    assert ran.code == 2
    assert "rate_limit=20" in ran.err and emulator.stats.requests == 0


async def test_format_follows_the_out_extension_and_the_format_flag(
    emulator: Emulator,
    ids_file: Callable[[int], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """.csv gives CSV; no extension gives JSONL; --format overrides an unknown one."""
    ids = ids_file(30)
    as_csv, as_text, forced = tmp_path / "e.csv", tmp_path / "events", tmp_path / "e.data"
    for out, extra in ((as_csv, []), (as_text, []), (forced, ["--format", "csv"])):
        ran = await run(capsys, "fetch", "--ids", ids, "--out", str(out), *extra, *to(emulator))
        assert ran.code == 0
    expected = expected_events([prospect_id(n) for n in range(30)], config=emulator.config)
    with as_csv.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert {row["event_id"] for row in rows} == {event["event_id"] for event in expected}
    assert len(jsonl(as_text)) == len(expected)
    assert forced.read_text(encoding="utf-8").startswith("event_id,event_name,event_time")


async def test_csv_to_stdout(
    emulator: Emulator, ids_file: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--format csv without --out writes CSV to standard output."""
    ran = await run(capsys, "fetch", "--ids", ids_file(10), "--format", "csv", *to(emulator))
    assert ran.code == 0
    assert ran.out.splitlines()[0].startswith("event_id,event_name,event_time,prospect_id,")


async def test_append_adds_to_the_output_instead_of_replacing_it(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs with --append into one CSV: both runs' rows under one header."""
    out = tmp_path / "e.csv"
    first = write_ids(tmp_path / "a.txt", [prospect_id(n) for n in range(20)])
    second = write_ids(tmp_path / "b.txt", [prospect_id(n) for n in range(20, 40)])
    assert (await run(capsys, "fetch", "--ids", first, "--out", str(out), *to(emulator))).code == 0
    ran = await run(capsys, "fetch", "--ids", second, "--out", str(out), "--append", *to(emulator))
    assert ran.code == 0
    text = out.read_text(encoding="utf-8")
    expected = expected_events([prospect_id(n) for n in range(40)], config=emulator.config)
    assert text.count("event_id,event_name") == 1
    assert len(text.splitlines()) == 1 + len(expected)


async def test_progress_is_drawn_on_stderr_when_asked_and_never_on_stdout(
    emulator: Emulator, ids_file: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--progress draws a carriage-return line on stderr; stdout stays pure JSONL."""
    ran = await run(capsys, "fetch", "--ids", ids_file(80), "--progress", *to(emulator))
    assert ran.code == 0
    assert "\r" in ran.err and "80/80 IDs 100%" in ran.err
    assert "\r" not in ran.out
    assert all(json.loads(line) for line in ran.out.splitlines())


async def test_no_progress_when_stderr_is_not_a_terminal_or_with_no_progress(
    emulator: Emulator, ids_file: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Captured stderr is no terminal: no progress line by default, nor with --no-progress."""
    for extra in ([], ["--no-progress"]):
        ran = await run(capsys, "fetch", "--ids", ids_file(10), *extra, *to(emulator))
        assert ran.code == 0 and "\r" not in ran.err and "Done in" in ran.err


# -- fetch: input errors (exit 2, nothing sent, nothing written) ---------------------------


async def test_an_invalid_id_exits_2_naming_the_value_and_its_line(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad ID stops the run before any request and before the output is created."""
    path = tmp_path / "ids.txt"
    path.write_text(f"{prospect_id(1)}\n\n{prospect_id(2)}\nnot-an-id\n{prospect_id(3)}\n")
    out = tmp_path / "events.jsonl"
    ran = await run(
        capsys,
        "fetch",
        "--ids",
        str(path),
        "--out",
        str(out),
        "--failed-out",
        str(tmp_path / "f.txt"),
        *to(emulator),
    )
    assert ran.code == 2
    assert "line 4: 'not-an-id'" in ran.err and "--skip-invalid" in ran.err
    assert emulator.stats.requests == 0
    assert not out.exists() and not (tmp_path / "f.txt").exists()


async def test_skip_invalid_fetches_the_rest_and_lists_what_it_skipped(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--skip-invalid goes on without the bad values and names them in the summary."""
    path = tmp_path / "ids.txt"
    path.write_text(f"{prospect_id(1)}\nABC\n{prospect_id(2)}\n")
    ran = await run(capsys, "fetch", "--ids", str(path), "--skip-invalid", *to(emulator))
    assert ran.code == 0
    assert emulator.stats.ids_seen == 2
    assert "1 invalid skipped" in ran.err and "line 2: 'ABC'" in ran.err


async def test_a_csv_without_a_prospect_id_column_is_a_usage_error_naming_its_columns(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The message lists the columns the file does have."""
    path = tmp_path / "contacts.csv"
    path.write_text(f"name,id,email\nJane,{prospect_id(1)},j@example.com\n")
    ran = await run(capsys, "fetch", "--ids", str(path), *to(emulator))
    assert ran.code == 2
    assert "no prospect_id column" in ran.err and "'name', 'id', 'email'" in ran.err


async def test_a_ten_megabyte_line_is_a_clear_error_not_a_hang(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that is one huge line fails on its line number without being read whole."""
    path = tmp_path / "huge.txt"
    path.write_text("a" * 10_000_000)
    ran = await run(capsys, "fetch", "--ids", str(path), *to(emulator))
    assert ran.code == 2
    assert f"line 1 is longer than {MAX_LINE_BYTES:,} characters" in ran.err


async def test_input_that_is_not_utf8_is_a_usage_error(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bytes that are not UTF-8 are reported with their line, not as a traceback."""
    path = tmp_path / "latin1.txt"
    path.write_bytes(prospect_id(1).encode() + b"\n\xe9t\xe9\n")
    ran = await run(capsys, "fetch", "--ids", str(path), *to(emulator))
    assert ran.code == 2 and "line 2 is not UTF-8" in ran.err


async def test_a_missing_ids_file_is_a_usage_error(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--ids naming no file exits 2 and says so."""
    ran = await run(capsys, "fetch", "--ids", str(tmp_path / "nope.txt"), *to(emulator))
    assert ran.code == 2 and "nope.txt: no such file" in ran.err


def test_no_ids_from_a_terminal_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --ids and with a terminal on stdin, fetch explains instead of waiting forever."""
    stdin = io.StringIO()
    stdin.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stdin", stdin)
    ran = run_here(capsys, "fetch", "--api-key", TEST_KEY)
    assert ran.code == 2 and "give --ids FILE, or pipe them in" in ran.err


def test_no_api_key_exits_2_with_a_clear_message(
    ids_file: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Neither --api-key nor EXPLORIUM_API_KEY: exit 2, naming both."""
    ran = run_here(capsys, "fetch", "--ids", ids_file(1))
    assert ran.code == 2
    assert "no API key" in ran.err and "--api-key" in ran.err and "EXPLORIUM_API_KEY" in ran.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--event-types", "role,promotion"], "unknown event type 'promotion'"),
        (["--since", "yesterday"], "'yesterday' is not a date"),
        (["--since", "2026-10-02", "--until", "2026-10-01"], "--since 2026-10-02 is after"),
        (["--rate-limit", "fast"], "'fast' is not N/SECONDS"),
        (["--rate-limit-cost", "byte"], "invalid choice: 'byte'"),
        (["--concurrency", "0"], "'0' is not a whole number from 1 to 64"),
        (["--batch-size", "41"], "'41' is not a whole number from 1 to 40"),
        (["--max-attempts", "x"], "'x' is not a whole number"),
        (["--format", "xml"], "invalid choice: 'xml'"),
        (["--base-url", "ftp://example.com"], "is not an http(s) URL"),
        (["--base-url", "http://example.com"], "plain http"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_a_bad_flag_value_exits_2_naming_it(
    argv: list[str],
    message: str,
    ids_file: Callable[[int], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each bad value is named in the error; no output file appears."""
    out = tmp_path / "out.jsonl"
    ran = run_here(
        capsys, "fetch", "--ids", ids_file(1), "--api-key", TEST_KEY, "--out", str(out), *argv
    )
    assert ran.code == 2
    assert message in ran.err
    assert not out.exists()


def test_an_output_that_cannot_be_created_is_a_usage_error(
    ids_file: Callable[[int], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out in a missing directory exits 2 naming the file."""
    missing = tmp_path / "no" / "such" / "dir.jsonl"
    ran = run_here(
        capsys,
        "fetch",
        "--ids",
        ids_file(1),
        "--api-key",
        TEST_KEY,
        "--base-url",
        "http://127.0.0.1:9",
        "--out",
        str(missing),
    )
    assert ran.code == 2 and f"cannot write {missing}" in ran.err


def test_failed_out_and_out_must_differ(
    ids_file: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Writing failed IDs over the events would destroy them: exit 2."""
    ran = run_here(
        capsys,
        "fetch",
        "--ids",
        ids_file(1),
        "--api-key",
        TEST_KEY,
        "--out",
        "x.jsonl",
        "--failed-out",
        "x.jsonl",
    )
    assert ran.code == 2 and "must not be the same file" in ran.err


# -- fetch: failures (exit 1) ----------------------------------------------------------------


def _failing_batch(bad: str, status: int = 503) -> Callable[[ApiServer, Seen], web.Response]:
    def handler(server: ApiServer, seen: Seen) -> web.Response:
        if bad in seen.ids:
            return web.json_response(
                {"details": "upstream trouble", "correlation_id": "f" * 32}, status=status
            )
        return web.json_response(events_body(seen.ids))

    return handler


async def test_failed_batches_exit_1_are_listed_and_written_to_failed_out(
    api: ApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A batch that keeps failing: its IDs go to --failed-out, the others' events to --out."""
    ids = [prospect_id(n) for n in range(100)]
    api.handler = _failing_batch(ids[45])  # in the second batch of 40
    out, failed = tmp_path / "e.jsonl", tmp_path / "failed.txt"
    ran = await run(
        capsys,
        "fetch",
        "--ids",
        write_ids(tmp_path / "ids.txt", ids),
        "--out",
        str(out),
        "--failed-out",
        str(failed),
        "--max-attempts",
        "1",
        *to(api),
    )
    assert ran.code == 1
    assert failed.read_text().split() == ids[40:80]
    assert {event["prospect_id"] for event in jsonl(out)} == set(ids[:40] + ids[80:])
    assert "1 failed" in ran.err and "HTTP 503: upstream trouble" in ran.err
    assert "correlation_id=" + "f" * 32 in ran.err
    assert f"run again with --ids {failed}" in ran.err


async def test_max_attempts_retries_a_failing_batch_that_many_times(
    api: ApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--max-attempts 2 sends a 422-free failing batch twice before giving up."""
    ids = [prospect_id(n) for n in range(5)]
    api.handler = _failing_batch(ids[0], status=500)
    ran = await run(
        capsys,
        "fetch",
        "--ids",
        write_ids(tmp_path / "ids.txt", ids),
        "--max-attempts",
        "2",
        *to(api),
    )
    assert ran.code == 1
    assert len(api.requests) == 2 and "1 retry" in ran.err


async def test_failed_out_is_created_empty_when_nothing_fails(
    emulator: Emulator,
    ids_file: Callable[[int], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A clean run still leaves an empty --failed-out, so that no stale file misleads."""
    failed = tmp_path / "failed.txt"
    failed.write_text("stale\n")
    ran = await run(
        capsys, "fetch", "--ids", ids_file(10), "--failed-out", str(failed), *to(emulator)
    )
    assert ran.code == 0 and failed.read_text() == ""


@pytest.mark.parametrize(
    ("status", "words"), [(401, "Check --api-key or EXPLORIUM_API_KEY"), (403, "credits")]
)
async def test_a_refused_key_exits_1_without_retries_and_hands_back_every_id(
    status: int, words: str, api: ApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """401/403: a message about the key, no ID asked twice, all undone IDs in --failed-out."""

    def refuse(server: ApiServer, seen: Seen) -> web.Response:
        return web.json_response({"details": "no", "correlation_id": "a" * 32}, status=status)

    api.handler = refuse
    ids = [prospect_id(n) for n in range(200)]
    failed = tmp_path / "failed.txt"
    ran = await run(
        capsys,
        "fetch",
        "--ids",
        write_ids(tmp_path / "ids.txt", ids),
        "-v",
        "--failed-out",
        str(failed),
        *to(api),
    )
    assert ran.code == 1
    assert "the API refused the key" in ran.err and f"KEY REFUSED HTTP {status}: no" in ran.err
    assert words in ran.err and "Nothing was retried" in ran.err
    assert len(api.ids_requested) == len(set(api.ids_requested))
    assert sorted(failed.read_text().split()) == sorted(ids)


# -- fetch: Ctrl-C ---------------------------------------------------------------------------


async def test_an_interrupt_exits_130_with_whole_batches_in_the_output(
    emulator: Emulator,
    ids_file: Callable[[int], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """KeyboardInterrupt mid-pull: status 130, a message, and the output closed cleanly."""
    from explorium_events._sinks import _files as _output

    real_write = _output.JsonlSink.write
    calls = 0

    def write_then_interrupt(self: _output.JsonlSink, events: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return real_write(self, events)

    monkeypatch.setattr(_output.JsonlSink, "write", write_then_interrupt)
    out = tmp_path / "e.jsonl"
    ran = await run(
        capsys,
        "fetch",
        "--ids",
        ids_file(400),
        "--out",
        str(out),
        "--concurrency",
        "1",
        *to(emulator),
    )
    assert ran.code == 130
    assert "Interrupted after" in ran.err and "holds every batch finished before it" in ran.err
    expected = expected_events([prospect_id(n) for n in range(80)], config=emulator.config)
    assert len(jsonl(out)) == len(expected)


async def test_ctrl_c_stops_a_real_fetch_process_promptly_with_status_130(
    tmp_path: Path, ids_file: Callable[[int], str]
) -> None:
    """SIGINT to `python -m explorium_events fetch` with requests hanging: exit 130 at once."""
    config = EmulatorConfig(rate_limit=None, latency_ms=60_000, now=NOW)
    async with Emulator(config, shutdown_timeout=0.1) as emu:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "explorium_events",
            "fetch",
            "--ids",
            ids_file(100),
            "--out",
            str(tmp_path / "e.jsonl"),
            *to(emu),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(PROCESS_TIMEOUT):
                while emu.stats.in_flight == 0 and process.returncode is None:
                    await asyncio.sleep(0.02)
            process.send_signal(signal.SIGINT)
            async with asyncio.timeout(10):
                out, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 130, err.decode()
    assert b"Interrupted after" in err and b"interrupted" in err
    _check_no_key(out.decode(), err.decode())


# -- fetch as a process ----------------------------------------------------------------------


async def test_fetch_as_a_real_process_pipes_ids_in_and_events_out(emulator: Emulator) -> None:
    """`python -m explorium_events fetch`: IDs on stdin, JSONL on stdout, summary on stderr."""
    ids = [prospect_id(n) for n in range(60)]
    environment = {**os.environ, "EXPLORIUM_API_KEY": TEST_KEY, "EXPLORIUM_BASE_URL": emulator.url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "explorium_events",
        "fetch",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    async with asyncio.timeout(PROCESS_TIMEOUT):
        out, err = await process.communicate("\n".join(ids).encode())
    assert process.returncode == 0, err.decode()
    expected = expected_events(ids, config=emulator.config)
    assert sorted(out.decode().splitlines()) == sorted(
        json.dumps(event, separators=(",", ":")) for event in expected
    )
    assert b"Done in" in err
    _check_no_key(out.decode(), err.decode())


async def test_fetch_into_a_pipe_closed_early_exits_141_quietly_listing_the_rest(
    emulator: Emulator, ids_file: Callable[[int], str], tmp_path: Path
) -> None:
    """`fetch | head -1`: nothing on stderr, exit 141 (128 + SIGPIPE), and every ID not
    written in --failed-out; --summary-json still tells how it ended."""
    failed, summary = tmp_path / "failed.txt", tmp_path / "summary.json"
    reader, writer = os.pipe()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "explorium_events",
        "fetch",
        "--ids",
        ids_file(2_000),
        "--failed-out",
        str(failed),
        "--summary-json",
        str(summary),
        "--concurrency",
        "1",
        *to(emulator),
        stdout=writer,
        stderr=asyncio.subprocess.PIPE,
    )
    os.close(writer)
    with os.fdopen(reader, "rb") as events:
        first = await asyncio.to_thread(events.readline)
    # The reader is gone: the next write the process makes finds a broken pipe.
    async with asyncio.timeout(PROCESS_TIMEOUT):
        _, err = await process.communicate()
    assert json.loads(first)["event_id"]
    assert process.returncode == 141, err.decode()
    # No traceback, no "Exception ignored ... BrokenPipeError" at exit, no summary.
    assert err == b""
    unwritten = failed.read_text().split()
    assert 0 < len(unwritten) < 2_000 and len(set(unwritten)) == len(unwritten)
    figures = json.loads(summary.read_text())
    assert figures["outcome"] == "pipe_closed" and figures["exit_status"] == 141
    assert figures["input"]["fetched"] + len(unwritten) == 2_000


# -- serve -----------------------------------------------------------------------------------


def test_serve_turns_its_flags_into_the_emulator_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every serve flag lands in EmulatorConfig; the URL is printed on stderr when ready."""
    seen: dict[str, Any] = {}

    async def fake_serve_forever(
        config: EmulatorConfig, *, host: str, port: int, on_ready: Callable[[str], Any]
    ) -> None:
        seen.update(config=config, host=host, port=port)
        on_ready(f"http://{host}:{port}")

    monkeypatch.setattr("explorium_events.emulator.serve_forever", fake_serve_forever)
    ran = run_here(
        capsys,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "9999",
        "--api-key",
        TEST_KEY,
        "--rate-limit",
        "40/5",
        "--rate-limit-cost",
        "id",
        "--latency-ms",
        "20",
        "--latency-jitter-ms",
        "5",
        "--error-rate",
        "0.1",
        "--rate-limit-error-rate",
        "0.2",
        "--drop-rate",
        "0.03",
        "--truncate-rate",
        "0.04",
        "--duplicate-rate",
        "0.05",
        "--seed",
        "7",
    )
    assert ran.code == 0
    config = seen["config"]
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 9999)
    assert config.api_key == TEST_KEY
    assert (config.rate_limit, config.rate_window, config.rate_limit_cost) == (40, 5.0, "id")
    assert (config.latency_ms, config.latency_jitter_ms) == (20.0, 5.0)
    assert (config.error_rate, config.rate_limit_error_rate) == (0.1, 0.2)
    assert (config.drop_rate, config.truncate_rate, config.duplicate_rate) == (0.03, 0.04, 0.05)
    assert config.seed == 7
    assert "emulator serving http://127.0.0.1:9999" in ran.err and "stopped" in ran.err


def test_serve_with_rate_limit_off_has_no_limit(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--rate-limit off gives an emulator without a window; defaults accept any key."""
    seen: list[EmulatorConfig] = []

    async def fake_serve_forever(config: EmulatorConfig, **_: Any) -> None:
        seen.append(config)

    monkeypatch.setattr("explorium_events.emulator.serve_forever", fake_serve_forever)
    assert run_here(capsys, "serve", "--rate-limit", "off").code == 0
    assert seen[0].rate_limit is None and seen[0].api_key is None


def test_serve_refuses_impossible_fault_rates(capsys: pytest.CaptureFixture[str]) -> None:
    """A probability above 1, or rates that add up past 1, exit 2 naming the problem."""
    ran = run_here(capsys, "serve", "--error-rate", "1.5")
    assert ran.code == 2 and "'1.5' is not a probability" in ran.err
    ran = run_here(capsys, "serve", "--error-rate", "0.6", "--drop-rate", "0.6")
    assert ran.code == 2 and "must not exceed 1" in ran.err


def test_serve_on_a_port_in_use_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A port another socket holds is reported, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = run_here(capsys, "serve", "--port", str(port))
    assert ran.code == 2 and f"cannot listen on 127.0.0.1:{port}" in ran.err


async def test_serve_as_a_real_process_answers_fetch_and_stops_on_sigint(
    tmp_path: Path, ids_file: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m explorium_events serve --port 0` prints its URL, serves, stops cleanly."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "explorium_events",
        "serve",
        "--port",
        "0",
        "--api-key",
        TEST_KEY,
        "--rate-limit",
        "off",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        async with asyncio.timeout(PROCESS_TIMEOUT):
            first = (await process.stderr.readline()).decode()
        found = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert found, first
        url = found.group(0)
        out = tmp_path / "e.jsonl"
        ran = await run(
            capsys,
            "fetch",
            "--ids",
            ids_file(50),
            "--out",
            str(out),
            "--api-key",
            TEST_KEY,
            "--base-url",
            url,
        )
        assert ran.code == 0, ran.err
        assert len(jsonl(out)) > 0
        wrong = await run(
            capsys, "fetch", "--ids", ids_file(5), "--api-key", "wrong-key", "--base-url", url
        )
        assert wrong.code == 1 and "HTTP 401" in wrong.err
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(PROCESS_TIMEOUT):
            _, rest = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert b"emulator stopped" in rest
    assert TEST_KEY.encode() not in rest


# -- demo ------------------------------------------------------------------------------------


def test_demo_pulls_checks_and_reports_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo writes every event once, drops the duplicates it was sent, and says so."""
    out = tmp_path / "events.jsonl"
    ran = run_here(
        capsys,
        "demo",
        "--prospects",
        "300",
        "--rate-limit",
        "off",
        "--latency-ms",
        "0",
        "--error-rate",
        "0",
        "--duplicate-rate",
        "0.2",
        "--out",
        str(out),
    )
    assert ran.code == 0, ran.out + ran.err
    events = jsonl(out)
    assert len(events) == len({event["event_id"] for event in events}) > 0
    assert {event["prospect_id"] for event in events} <= set(demo_prospect_ids(300))
    for words in (
        "300 of 300 prospect IDs done",
        "8 run: 8 ok, 0 failed",
        f"{len(events):,} written to {out}",
        # 8 prospect requests and 5 for the 200 made-up businesses pulled beside them.
        "server      13 requests answered: 13 x 200",
        "200 made-up businesses, 5 requests",
        "in the same rate-limit budget: all arrived, once each",
        f"checked     all {len(events):,} events",
    ):
        assert words in ran.err
    assert ran.out == ""  # the report is for a person: standard error
    dropped = re.search(r"([\d,]+) duplicates dropped", ran.err)
    assert dropped and int(dropped.group(1).replace(",", "")) > 0


def test_demo_writes_csv_and_shows_progress_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out x.csv gives CSV; --progress draws the line on stderr, then the report there."""
    out = tmp_path / "demo.csv"
    ran = run_here(
        capsys,
        "demo",
        "--prospects",
        "80",
        "--rate-limit",
        "off",
        "--latency-ms",
        "0",
        "--error-rate",
        "0",
        "--out",
        str(out),
        "--progress",
    )
    assert ran.code == 0
    assert out.read_text(encoding="utf-8").startswith("event_id,event_name")
    assert "\r" in ran.err and "80/80 IDs" in ran.err and "checked" in ran.err
    assert ran.out == ""


def test_demo_ids_are_valid_distinct_and_repeatable() -> None:
    """The made-up IDs are 40 lowercase hex characters, all different, the same per seed."""
    ids = demo_prospect_ids(1000, seed=3)
    assert len(set(ids)) == 1000 and all(re.fullmatch("[0-9a-f]{40}", pid) for pid in ids)
    assert ids == demo_prospect_ids(1000, seed=3) != demo_prospect_ids(1000, seed=4)


# -- help and the command itself -------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["fetch"], ["serve"], ["demo"]])
def test_help_of_every_command_is_complete_and_has_examples(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--help exits 0 and shows examples; a command's help names every one of its flags."""
    ran = run_here(capsys, *command, "--help")
    assert ran.code == 0
    assert "examples:" in ran.out and "explorium-events" in ran.out
    if command == ["fetch"]:
        for flag in (
            "--ids",
            "--event-types",
            "--since",
            "--until",
            "--base-url",
            "--api-key",
            "--concurrency",
            "--rate-limit ",
            "--rate-limit-cost",
            "--out",
            "--format",
            "--failed-out",
            "--no-progress",
            "--skip-invalid",
            "--verbose",
            "exit status",
            "130",
        ):
            assert flag in ran.out


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A bare `explorium-events` shows the commands on stderr."""
    ran = run_here(capsys)
    assert ran.code == 2 and "fetch" in ran.err and "demo" in ran.err


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the installed version and exits 0."""
    ran = run_here(capsys, "--version")
    assert ran.code == 0 and ran.out.startswith("explorium-events ")


# -- the pieces: reading IDs, the rate-limit flag, the progress line -------------------------


def test_read_ids_reads_a_semicolon_csv_and_skips_empty_rows(tmp_path: Path) -> None:
    """The delimiter comes from the header; rows with only empty cells are blank lines."""
    path = tmp_path / "ids.csv"
    path.write_text(f"prospect_id;name\n{prospect_id(1)};a\n;\n{prospect_id(2)};b\n")
    source = read_ids(str(path))
    assert source.shape == "csv" and list(source) == [prospect_id(1), prospect_id(2)]


def test_read_ids_reports_a_short_csv_row_by_line(tmp_path: Path) -> None:
    """A row without a prospect_id field fails with its line number."""
    from explorium_events.cli._input import InputError

    path = tmp_path / "ids.csv"
    path.write_text(f"name,prospect_id\na,{prospect_id(1)}\nlonely\n")
    with pytest.raises(InputError, match="line 3 has 1 field, no prospect_id"):
        read_ids(str(path))


def test_read_ids_counts_every_invalid_value_but_keeps_only_the_first_few(tmp_path: Path) -> None:
    """A thousand bad lines give a short message with a count, not a thousand lines."""
    path = tmp_path / "ids.txt"
    path.write_text("bad\n" * 1000)
    source = read_ids(str(path))
    assert source.invalid_count == 1000 and len(source.invalid) == 5
    assert "... and 995 more" in source.invalid_message()
    assert "needs a header line with a prospect_id column" in source.invalid_message()


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("200/60", (200, 60.0)),
        ("40/5s", (40, 5.0)),
        ("100", (100, 60.0)),
        ("off", (None, 60.0)),
        ("1/0.5", (1, 0.5)),
    ],
)
def test_rate_limit_flag_parses_count_and_window(
    text: str, parsed: tuple[int | None, float]
) -> None:
    """N/SECONDS, N alone (per minute) and off are understood."""
    assert _rate_limit(text) == parsed


def _limiter(*, used: int = 0, paused_for: float = 0.0, waiting: bool = False) -> RateLimitState:
    return RateLimitState(
        limit=40,
        window=5.0,
        cost="request",
        used=used,
        in_flight=0,
        paused_for=paused_for,
        waiting=waiting,
        server_limit=None,
        server_remaining=None,
    )


def _snapshot(limiter: RateLimitState | None = None) -> Snapshot:
    return Snapshot(
        ids_done=1520,
        ids_total=5000,
        events=1902,
        requests=40,
        retries=2,
        rate_limited=1,
        elapsed=4.0,
        limiter=limiter,
    )


def test_progress_line_shows_counts_rate_eta_and_a_rate_limit_wait() -> None:
    """IDs done of total, events, requests, retries, 429s, rate, ETA and the wait all show."""
    line = render_line(_snapshot(_limiter(used=40, waiting=True)))
    for part in (
        "1,520/5,000 IDs 30%",
        "1,902 events",
        "40 requests",
        "2 retries",
        "1 x 429",
        "380 IDs/s",
        "ETA 9s",
        "waiting on the rate limit: 40/40 requests",
    ):
        assert part in line


def test_progress_eta_counts_the_rate_limit_not_just_the_first_burst() -> None:
    """3,480 IDs left at 40 requests of 40 IDs per 5 s, window full: 87 requests, 10.9 s."""
    fast = Snapshot(
        ids_done=1520,
        ids_total=5000,
        events=0,
        requests=40,
        retries=0,
        rate_limited=0,
        elapsed=0.5,
        limiter=_limiter(used=40, waiting=True),
        batch_size=40,
        held_for=3.2,
    )
    line = render_line(fast)
    assert "ETA 11s" in line and "3s so far" in line
    assert "ETA 1s" in render_line(Snapshot(**{**_fields(fast), "batch_size": None}))


def _fields(snapshot: Snapshot) -> dict[str, Any]:
    return {name: getattr(snapshot, name) for name in Snapshot.__slots__}


def test_progress_rate_leaves_out_ids_done_before_a_resume() -> None:
    """A resumed run's rate counts only this run's IDs."""
    resumed = Snapshot(
        ids_done=1100,
        ids_total=2000,
        events=0,
        requests=3,
        retries=0,
        rate_limited=0,
        elapsed=1.0,
        ids_at_start=1000,
    )
    assert "100 IDs/s" in render_line(resumed) and "ETA 9s" in render_line(resumed)


def test_progress_line_shows_a_retry_after_pause() -> None:
    """A shared pause after a 429 is shown with its seconds left."""
    assert "paused 12s" in render_line(_snapshot(_limiter(paused_for=12.2, waiting=True)))


def test_progress_line_fits_a_narrow_terminal_keeping_the_essentials() -> None:
    """At 100 columns the bar goes first; the counts and the wait stay."""
    line = render_line(_snapshot(_limiter(used=40, waiting=True)), 100)
    assert len(line) <= 100 and "[" not in line
    assert "1,520/5,000" in line and "waiting on rate limit" in line and "ETA" in line


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_redraws_at_most_ten_times_a_second() -> None:
    """A hundred updates within 0.1 s draw once; the next tick draws again."""
    stream, clock = io.StringIO(), _FakeClock()
    progress = Progress(stream, enabled=True, clock=clock, width=200)
    for _ in range(100):
        progress.update(_snapshot())
    assert progress.draws == 1
    clock.now = 0.1
    progress.update(_snapshot())
    assert progress.draws == 2 and stream.getvalue().count("\r") == 2


def test_disabled_progress_writes_nothing() -> None:
    """Progress that is off does not touch its stream."""
    stream = io.StringIO()
    progress = Progress(stream, enabled=False)
    progress.update(_snapshot(), force=True)
    progress.clear()
    assert stream.getvalue() == ""


def test_a_log_record_wipes_the_progress_line_first() -> None:
    """A warning starts on a clean line, not in the middle of the bar."""
    import logging

    stream = io.StringIO()
    progress = Progress(stream, enabled=True, width=200)
    progress.update(_snapshot())
    handler = ProgressLogHandler(stream, progress)
    handler.emit(logging.LogRecord("x", logging.WARNING, __file__, 1, "careful", None, None))
    drawn = stream.getvalue()
    assert drawn.endswith("\r" + " " * len(render_line(_snapshot(), 200)) + "\rcareful\n")


def test_pace_is_the_fastest_time_the_limit_allows_over_the_time_taken() -> None:
    """130 requests at 40 per 5 s go in 4 bursts: 15 s at least; 16.5 s taken is 91%."""
    fastest, ratio = pace(130, 40, 5.0, 16.5) or (0.0, 0.0)
    assert fastest == 15.0 and round(ratio, 2) == 0.91
    assert pace(40, 40, 5.0, 1.0) is None and pace(10, None, 5.0, 1.0) is None
