"""Issue 10, "writes": write failures, one-line JSONL, safe CSV cells, values SQLite cannot hold."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import errno
import io
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

from explorium_events import Event, EventsClient, OutputWriteError, SqliteSink, pull
from explorium_events._models import decode_event
from explorium_events._sinks import CsvSink, JsonlSink, PullOutput, csv_row, open_sink
from explorium_events._sinks._files import _ByteSink
from explorium_events.cli import main
from explorium_events.emulator import Emulator, EmulatorConfig
from tests.conftest import TEST_KEY, ApiServer, Seen, event_for, events_body, prospect_id

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
CONFIG = EmulatorConfig(rate_limit=None, now=NOW, latency_ms=2)
COUNT = 400  # 10 batches of 40
FORMATS = {"jsonl": "e.jsonl", "csv": "e.csv", "sqlite": "e.db"}
posix_only = pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(CONFIG) as emu:
        yield emu


def client_for(url: str, **settings: Any) -> EventsClient:
    return EventsClient(api_key=TEST_KEY, base_url=url, rate_limit=None, **settings)


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(f"{pid}\n" for pid in ids))
    return path


def events_in(path: Path) -> list[str]:
    """Every event in an output as canonical text; fails on any line or row that is not whole."""
    if path.suffix == ".jsonl":
        lines = path.read_bytes().split(b"\n")
        assert lines[-1] == b"", "the file ends in the middle of a line"
        return [json.dumps(json.loads(line), sort_keys=True) for line in lines[:-1]]
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
        header, body = rows[0], rows[1:]
        assert all(len(row) == len(header) for row in body), "a row that is not whole"
        assert path.read_bytes().endswith(b"\r\n")
        return [json.dumps(row) for row in body]
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT * FROM events").fetchall()
    return [json.dumps(row) for row in rows]


def checkpointed_length(checkpoint: Path) -> int:
    with contextlib.closing(sqlite3.connect(checkpoint)) as db:
        (value,) = db.execute("SELECT value FROM meta WHERE key = 'output_length'").fetchone()
    return int(value)


async def run_cli(argv: list[str], *, file_size_limit: int | None = None) -> tuple[int, str]:
    """A real `python -m explorium_events` process, optionally under RLIMIT_FSIZE."""

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


def fetch_argv(source: Path, out: Path, url: str, *extra: str) -> list[str]:
    return [
        "fetch",
        "--ids",
        str(source),
        "--out",
        str(out),
        "--base-url",
        url,
        "--rate-limit",
        "off",
        "--no-progress",
        *extra,
    ]


async def clean_pull(url: str, ids: list[str], out: Path) -> list[str]:
    """The same pull in one uninterrupted go: its events, sorted."""
    async with client_for(url) as client:
        await pull(client, ids, out, out.with_suffix(".ckpt"))
    return sorted(events_in(out))


# --- point 4: a write failure mid-pull, in a real process under a file-size limit ---------


@posix_only
@pytest.mark.parametrize("fmt", sorted(FORMATS))
async def test_a_checkpointed_fetch_hitting_a_file_size_limit_exits_1_and_resumes_exactly(
    emulator: Emulator, tmp_path: Path, fmt: str
) -> None:
    """EFBIG mid-pull: exit 1 naming the file, no traceback; the rerun gives the clean output."""
    ids = [prospect_id(number) for number in range(COUNT)]
    source = write_ids(tmp_path / "ids.txt", ids)
    out, checkpoint = tmp_path / FORMATS[fmt], tmp_path / "pull.ckpt"
    clean = await clean_pull(emulator.url, ids, tmp_path / ("clean" + out.suffix))
    full_size = (tmp_path / ("clean" + out.suffix)).stat().st_size
    argv = fetch_argv(source, out, emulator.url, "--checkpoint", str(checkpoint))

    code, err = await run_cli(argv, file_size_limit=full_size * 2 // 5)

    assert code == 1, err
    assert "Traceback" not in err
    assert f"cannot write {out}" in err
    if fmt != "sqlite":
        assert "File too large" in err
        # The checkpoint claims only whole batches: every byte it covers parses.
        length = checkpointed_length(checkpoint)
        assert 0 < length <= out.stat().st_size
        cut = tmp_path / ("cut" + out.suffix)
        cut.write_bytes(out.read_bytes()[:length])
        assert 0 < len(events_in(cut)) < len(clean)
    code, err = await run_cli(argv)
    assert code == 0, err
    got = events_in(out)
    assert len(got) == len(set(got))
    assert sorted(got) == clean


@posix_only
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_a_fetch_without_checkpoint_hitting_a_file_size_limit_lists_every_unwritten_id(
    emulator: Emulator, tmp_path: Path, fmt: str
) -> None:
    """EFBIG without --checkpoint: exit 1 naming the file; --failed-out holds exactly the rest."""
    ids = [prospect_id(number) for number in range(COUNT)]
    source = write_ids(tmp_path / "ids.txt", ids)
    out, failed = tmp_path / FORMATS[fmt], tmp_path / "failed.txt"
    clean = await clean_pull(emulator.url, ids, tmp_path / ("clean" + out.suffix))
    full_size = (tmp_path / ("clean" + out.suffix)).stat().st_size
    argv = fetch_argv(source, out, emulator.url, "--failed-out", str(failed))

    code, err = await run_cli(argv, file_size_limit=full_size // 2)

    assert code == 1, err
    assert "Traceback" not in err
    assert f"error: cannot write {out}: File too large (EFBIG)" in err
    written = events_in(out)  # every line or row whole
    assert 0 < len(written) < len(clean)
    assert f"events      {len(written):,} written to {out}" in err  # the summary agrees
    unwritten = failed.read_text().split()
    assert 0 < len(unwritten) < COUNT and len(set(unwritten)) == len(unwritten)
    # Every ID is either done or in --failed-out, never both, never neither.
    assert f"{COUNT - len(unwritten)} of {COUNT} prospect IDs done" in err
    # Retrying exactly those, appending, completes the output with nothing twice.
    retry = fetch_argv(failed, out, emulator.url, "--append")
    code, err = await run_cli(retry)
    assert code == 0, err
    got = events_in(out)
    assert len(got) == len(set(got)) and sorted(got) == clean


# --- point 4: fast unit tests with a writer that fills the disk after N bytes --------------


class _FullAfter(io.RawIOBase):
    """A raw file that takes ``budget`` bytes, part of a write included, then says ENOSPC."""

    def __init__(self, real: Any, budget: int) -> None:
        super().__init__()
        self._real = real
        self.budget = budget

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.budget <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        part = bytes(data)[: self.budget]
        self.budget -= len(part)
        return int(self._real.write(part))

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._real.seek(offset, whence))

    def truncate(self, size: int | None = None) -> int:
        return int(self._real.truncate(size))

    def fileno(self) -> int:
        return int(self._real.fileno())

    def flush(self) -> None:
        self._real.flush()

    def close(self) -> None:
        super().close()
        self._real.close()


@contextlib.contextmanager
def disk_full_after(budget: int) -> Iterator[list[_FullAfter]]:
    """Every JSONL/CSV sink opened meanwhile writes to a disk with ``budget`` bytes free."""
    made: list[_FullAfter] = []
    original = _ByteSink.__init__

    def init(self: _ByteSink, path: str | None, *, append: bool) -> None:
        original(self, path, append=append)
        self._file = _FullAfter(self._file, budget)
        made.append(self._file)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_ByteSink, "__init__", init)
        yield made


def sample_events(count: int, start: int = 0) -> list[Event]:
    return [
        decode_event(json.dumps(event_for(prospect_id(number))).encode())
        for number in range(start, start + count)
    ]


@pytest.mark.parametrize("sink_class", [JsonlSink, CsvSink])
def test_a_write_refused_by_a_full_disk_raises_naming_the_file_and_keeps_whole_batches(
    tmp_path: Path, sink_class: type[_ByteSink]
) -> None:
    """ENOSPC mid-batch: OutputWriteError(path, from OSError); the partial bytes are cut off."""
    out = tmp_path / "events.out"
    with disk_full_after(3_000), sink_class(str(out), append=False) as sink:
        sink.write(sample_events(3))
        sink.flush_durably()
        whole = out.read_bytes()
        with pytest.raises(OutputWriteError) as caught:
            sink.write(sample_events(10, start=3))
    error = caught.value
    assert error.errno == errno.ENOSPC and error.path == str(out)
    assert isinstance(error.__cause__, OSError) and str(out) in str(error)
    assert sink.length == sink.durable_length == len(whole)
    assert out.read_bytes() == whole


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_a_pull_stopped_by_a_full_disk_resumes_to_the_uninterrupted_output(
    emulator: Emulator, tmp_path: Path, fmt: str
) -> None:
    """pull() raises OutputWriteError; the checkpoint covers whole events; a rerun completes."""
    ids = [prospect_id(number) for number in range(COUNT)]
    out, checkpoint = tmp_path / FORMATS[fmt], tmp_path / "pull.ckpt"
    clean = await clean_pull(emulator.url, ids, tmp_path / ("clean" + out.suffix))
    budget = (tmp_path / ("clean" + out.suffix)).stat().st_size // 2
    with disk_full_after(budget):
        async with client_for(emulator.url, max_concurrency=2) as client:
            with pytest.raises(OutputWriteError) as caught:
                await pull(client, ids, out, checkpoint, commit_interval=0.0)
    assert caught.value.path == str(out) and caught.value.errno == errno.ENOSPC
    assert isinstance(caught.value.__cause__, OSError)
    length = checkpointed_length(checkpoint)
    assert 0 < length <= out.stat().st_size
    async with client_for(emulator.url) as client:
        summary = await pull(client, ids, out, checkpoint)
    assert summary.complete
    got = events_in(out)
    assert len(got) == len(set(got)) and sorted(got) == clean


def test_a_full_sqlite_database_raises_naming_it_and_keeps_committed_rows(tmp_path: Path) -> None:
    """SQLite's "disk is full": OutputWriteError(ENOSPC); the batch undone, earlier rows kept."""
    out = tmp_path / "e.db"
    with SqliteSink(out) as sink:
        sink.write(sample_events(5))
        sink.flush_durably()
        pages = sink._db.execute("PRAGMA page_count").fetchone()[0]
        sink._db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(OutputWriteError) as caught:
            sink.write(sample_events(400, start=5))
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert "database or disk is full" in str(caught.value)
        assert caught.value.errno == errno.ENOSPC and caught.value.path == str(out)
        sink.flush_durably()  # nothing of the failed batch is left to commit
        assert sink.count() == 5
        sink._db.execute("PRAGMA max_page_count = 1073741823")
        sink.write(sample_events(400, start=5))  # space freed: the same batch goes in
    with contextlib.closing(sqlite3.connect(out)) as db:
        assert db.execute("SELECT COUNT(DISTINCT event_id) FROM events").fetchone() == (405,)


async def test_a_pull_into_a_full_sqlite_database_resumes_to_the_uninterrupted_rows(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pull() into SQLite that fills up raises OutputWriteError; the rerun gives every row once."""
    ids = [prospect_id(number) for number in range(COUNT)]
    out, checkpoint = tmp_path / "e.db", tmp_path / "pull.ckpt"
    clean = await clean_pull(emulator.url, ids, tmp_path / "clean.db")
    original = SqliteSink._prepare

    def prepare(self: SqliteSink) -> None:
        original(self)
        self._db.execute("PRAGMA max_page_count = 40")

    monkeypatch.setattr(SqliteSink, "_prepare", prepare)
    async with client_for(emulator.url, max_concurrency=2) as client:
        with pytest.raises(OutputWriteError, match="database or disk is full"):
            await pull(client, ids, out, checkpoint, commit_interval=0.0)
    monkeypatch.undo()
    async with client_for(emulator.url) as client:
        summary = await pull(client, ids, out, checkpoint)
    assert summary.complete
    assert sorted(events_in(out)) == clean


# --- point 5: one event per line, whatever whitespace the server's JSON holds --------------

_UNKNOWN = {"brand_new_field": {"nested": [1, 2.50, "x\ny"]}, "big": 123456789012345678901234567}


def pretty_body(seen: Seen) -> web.Response:
    body = events_body(seen.ids)
    for event in body["output_events"]:
        event.update(_UNKNOWN)
    return web.Response(
        text=json.dumps(body, indent=4).replace(": ", " :\r\n  "),
        content_type="application/json",
    )


async def test_a_pretty_printed_answer_still_gives_one_jsonl_line_per_event(
    api: ApiServer, tmp_path: Path
) -> None:
    """Line breaks between the server's tokens: one line per event, decoding to the same object."""
    api.handler = lambda server, seen: pretty_body(seen)
    ids = [prospect_id(number) for number in range(50)]
    source = write_ids(tmp_path / "ids.txt", ids)
    out = tmp_path / "e.jsonl"
    argv = [*fetch_argv(source, out, api.url, "--api-key", TEST_KEY)]
    assert await asyncio.to_thread(main, argv) == 0
    lines = out.read_bytes().split(b"\n")[:-1]
    assert len(lines) == 50
    got = {json.loads(line)["prospect_id"]: json.loads(line) for line in lines}
    for pid in ids:
        assert got[pid] == {**event_for(pid), **_UNKNOWN}
        assert list(got[pid]) == [*event_for(pid), *_UNKNOWN]  # key order kept too


def test_to_json_stays_the_servers_bytes_and_the_jsonl_line_the_same_object() -> None:
    """Event.to_json() is lossless; JsonlSink compacts only the whitespace between tokens."""
    raw = json.dumps({**event_for(prospect_id(1)), **_UNKNOWN}, indent=2).encode()
    event = decode_event(raw)
    assert event.to_json() == raw
    buffer = io.BytesIO()
    sink = JsonlSink(None, append=False)
    sink._file = buffer
    sink.write([event])
    (line,) = buffer.getvalue().splitlines()
    assert msgspec.json.decode(line) == msgspec.json.decode(raw)
    assert json.loads(line)["big"] == 123456789012345678901234567


# --- point 13: CSV cells that a spreadsheet would run --------------------------------------


def event_with(**data: Any) -> Event:
    raw = event_for(prospect_id(7))
    raw["data"].update(data)
    return decode_event(json.dumps(raw).encode())


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_csv_text_cell_that_starts_like_a_formula_gets_a_leading_quote(start: str) -> None:
    """OWASP CSV injection: =, +, -, @, tab, CR at the start of a text cell are neutralised."""
    payload = f'{start}HYPERLINK("http://evil","x")'
    row = csv_row(event_with(current_job_title=payload))
    assert row[_column("current_job_title")] == "'" + payload
    assert csv_row(event_with(current_job_title=payload), raw_cells=True)[
        _column("current_job_title")
    ] == (payload)


def test_a_csv_number_cell_stays_a_number_even_when_negative() -> None:
    """A JSON number (-3) is never a formula: left as is; the text "-3" gets the quote."""
    raw = event_for(prospect_id(3))
    raw["event_name"] = raw["data"]["event_name"] = "prospect_job_start_anniversary"
    raw["data"] = {"event_name": raw["event_name"], "years_at_company": -3, "full_name": "-3"}
    row = csv_row(decode_event(json.dumps(raw).encode()))
    assert row[_column("years_at_company")] == "-3"
    assert row[_column("full_name")] == "'-3"


def _column(name: str) -> int:
    from explorium_events._sinks import CSV_COLUMNS

    return CSV_COLUMNS.index(name)


@pytest.mark.parametrize(("flag", "expected"), [((), "'=1+2"), (("--csv-raw-cells",), "=1+2")])
async def test_fetch_csv_neutralises_formulas_unless_asked_for_raw_cells(
    api: ApiServer, tmp_path: Path, flag: tuple[str, ...], expected: str
) -> None:
    """The CLI's CSV is safe by default; --csv-raw-cells writes the cell as the API sent it."""

    def formula(server: ApiServer, seen: Seen) -> web.Response:
        body = events_body(seen.ids)
        for event in body["output_events"]:
            event["data"]["current_job_title"] = "=1+2"
        return web.json_response(body)

    api.handler = formula
    source = write_ids(tmp_path / "ids.txt", [prospect_id(1)])
    out = tmp_path / "e.csv"
    argv = fetch_argv(source, out, api.url, "--api-key", TEST_KEY, *flag)
    assert await asyncio.to_thread(main, argv) == 0
    with out.open(newline="", encoding="utf-8") as file:
        (row,) = list(csv.DictReader(file))
    assert row["current_job_title"] == expected


def test_fetch_help_documents_the_csv_raw_cells_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """--help names --csv-raw-cells and says what the default does."""
    assert main(["fetch", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--csv-raw-cells" in text and "formula" in text


# --- point 9: server values SQLite cannot hold -------------------------------------------


def huge_answer(seen: Seen) -> web.Response:
    events = []
    for number, pid in enumerate(seen.ids):
        event = event_for(pid)
        if number % 3 == 0:
            event["event_name"] = event["data"]["event_name"] = "prospect_job_start_anniversary"
            event["data"] = {
                "event_name": event["event_name"],
                "years_at_company": 2**70,
                "full_name": "Ann",
            }
        elif number % 3 == 1:
            event["event_name"] = event["data"]["event_name"] = "prospect_new_kind"
            event["data"]["current_company_id"] = -(2**70)
            event["data"]["extra"] = {"deep": 2**80}
        else:
            event["event_time"] = "9999-12-31T23:59:59-14:00"
        events.append(event)
    body = {**events_body([]), "output_events": events}
    return web.Response(text=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("checkpoint", [False, True])
async def test_values_sqlite_cannot_hold_are_stored_losslessly_without_a_crash(
    api: ApiServer, tmp_path: Path, checkpoint: bool
) -> None:
    """2**70 in a field, a huge int in data, year 9999 at -14:00: exit 0, every row, raw exact."""
    api.handler = lambda server, seen: huge_answer(seen)
    ids = [prospect_id(number) for number in range(90)]
    source = write_ids(tmp_path / "ids.txt", ids)
    out, failed = tmp_path / "e.db", tmp_path / "failed.txt"
    extra = ["--checkpoint", str(tmp_path / "p.ckpt")] if checkpoint else []
    argv = fetch_argv(source, out, api.url, "--api-key", TEST_KEY, "--failed-out", str(failed))
    assert await asyncio.to_thread(main, [*argv, *extra]) == 0
    assert failed.read_text() == ""
    with contextlib.closing(sqlite3.connect(out)) as db:
        rows = db.execute(
            "SELECT years_at_company, current_company_id, event_time, raw_json FROM events"
        ).fetchall()
    assert len(rows) == 90
    kinds = {"huge years": 0, "huge data": 0, "far time": 0}
    for years, company_id, event_time, raw_json in rows:
        raw = json.loads(raw_json)  # exactly what the server sent, big numbers included
        if raw["data"].get("years_at_company") == 2**70:
            kinds["huge years"] += 1
            assert years is None  # an INTEGER column would make it an inexact REAL
        elif raw["data"].get("extra") == {"deep": 2**80}:
            kinds["huge data"] += 1
            assert company_id == str(-(2**70))
        else:
            kinds["far time"] += 1
            assert event_time == raw["event_time"] == "9999-12-31T23:59:59-14:00"
    assert min(kinds.values()) > 0


def test_open_sink_passes_csv_raw_cells_to_csv_only(tmp_path: Path) -> None:
    """csv_raw_cells reaches the CSV sink and is ignored by the other formats."""
    with open_sink(str(tmp_path / "a.csv"), "csv", csv_raw_cells=True) as sink:
        assert isinstance(sink, CsvSink) and sink._raw_cells
    with open_sink(str(tmp_path / "a.jsonl"), "jsonl", csv_raw_cells=True) as sink:
        assert isinstance(sink, JsonlSink)


def test_the_file_output_records_the_sinks_durable_length_not_the_file_size(
    tmp_path: Path,
) -> None:
    """PullOutput.flush() returns what was whole and fsynced, whatever junk follows it."""
    output = PullOutput(str(tmp_path / "e.jsonl"), "jsonl", csv_raw_cells=False)
    output.open()
    output.write(sample_events(2))
    length = output.flush()
    with open(output.name, "ab") as file:
        file.write(b'{"half": ')
    assert output.flush() == length
    output.close()


async def test_a_pull_whose_fsync_fails_records_nothing_it_did_not_make_durable(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync says EIO: OutputWriteError; those batches stay undone, and the rerun completes."""
    ids = [prospect_id(number) for number in range(COUNT)]
    out, checkpoint = tmp_path / "e.jsonl", tmp_path / "pull.ckpt"
    clean = await clean_pull(emulator.url, ids, tmp_path / "clean.jsonl")
    real_fsync, calls = os.fsync, [0]

    def failing_fsync(fd: int) -> None:
        calls[0] += 1
        if calls[0] > 3:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr("explorium_events._sinks._files.os.fsync", failing_fsync)
    async with client_for(emulator.url, max_concurrency=1) as client:
        with pytest.raises(OutputWriteError) as caught:
            await pull(client, ids, out, checkpoint, commit_interval=0.0)
    assert caught.value.errno == errno.EIO and caught.value.path == str(out)
    monkeypatch.undo()
    with contextlib.closing(sqlite3.connect(checkpoint)) as db:
        assert db.execute("SELECT COUNT(*) FROM batches").fetchone() == (3,)
    async with client_for(emulator.url) as client:
        assert (await pull(client, ids, out, checkpoint)).complete
    got = events_in(out)
    assert len(got) == len(set(got)) and sorted(got) == clean


def test_a_sink_whose_partial_write_cannot_be_cut_off_refuses_further_writes(
    tmp_path: Path,
) -> None:
    """Bytes of a failed write left behind (the cut refused too): no later batch goes after them."""
    out = tmp_path / "events.jsonl"
    with disk_full_after(500) as made, JsonlSink(str(out), append=False) as sink:

        def refuse(size: int | None = None) -> int:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        made[0].truncate = refuse  # type: ignore[method-assign]
        with pytest.raises(OutputWriteError):
            sink.write(sample_events(3))
        made[0].budget = 10**9  # room again: still refused, the file ends mid-line
        with pytest.raises(OutputWriteError, match="No space left"):
            sink.write(sample_events(1, start=3))
        assert sink.length == 0


async def test_a_checkpoint_that_cannot_be_written_stops_the_pull_naming_it(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint's disk is full: OutputWriteError names it; the rerun completes exactly."""
    from explorium_events._checkpoint import Checkpoint

    ids = [prospect_id(number) for number in range(COUNT)]
    out, checkpoint = tmp_path / "e.jsonl", tmp_path / "pull.ckpt"
    clean = await clean_pull(emulator.url, ids, tmp_path / "clean.jsonl")
    real_record, calls = Checkpoint.record, [0]

    def record(self: Checkpoint, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] > 2:
            raise sqlite3.OperationalError("database or disk is full")
        real_record(self, *args, **kwargs)

    monkeypatch.setattr(Checkpoint, "record", record)
    async with client_for(emulator.url, max_concurrency=1) as client:
        with pytest.raises(OutputWriteError) as caught:
            await pull(client, ids, out, checkpoint, commit_interval=0.0)
    assert caught.value.path == str(checkpoint) and "disk is full" in str(caught.value)
    monkeypatch.undo()
    assert checkpointed_length(checkpoint) < out.stat().st_size
    async with client_for(emulator.url) as client:
        assert (await pull(client, ids, out, checkpoint)).complete
    got = events_in(out)
    assert len(got) == len(set(got)) and sorted(got) == clean
