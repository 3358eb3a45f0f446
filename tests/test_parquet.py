"""The Parquet output: typed columns, each event once, resumable like the file outputs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import signal
import sys
from pathlib import Path

import msgspec
import pytest

from explorium_events import ConfigurationError, pull
from explorium_events._models import decode_event
from explorium_events._sinks import format_for, open_sink
from explorium_events.cli import main
from explorium_events.emulator import Emulator
from tests.test_bulk import (
    COUNT,
    SLOW,
    checkpointed,
    client_for,
    emulator,  # noqa: F401  (the fixture)
    expected_ids,
    fetch_argv,
    prospect_id,
    start_fetch,
    stop_after,
    write_ids,
)
from tests.test_edges_writes import fetch_argv as edges_fetch_argv
from tests.test_edges_writes import run_cli

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def table_of(path: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = pq.read_table(path).to_pylist()
    return rows


def parts_in(path: Path) -> list[str]:
    return sorted(part.name for part in path.glob("part-*.parquet"))


async def test_a_parquet_pull_holds_exactly_the_jsonl_pulls_events(
    emulator: Emulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The same pull to .parquet and to .jsonl: the same events, once each, typed columns."""
    ids = [prospect_id(number) for number in range(600)]
    async with client_for(emulator.url) as client:
        await pull(client, ids, tmp_path / "e.jsonl", tmp_path / "j.ckpt")
        summary = await pull(client, ids, tmp_path / "e.parquet", tmp_path / "p.ckpt")
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    rows = table_of(tmp_path / "e.parquet")
    assert sorted(row["raw_json"] for row in rows) == sorted(lines)
    assert len({row["event_id"] for row in rows}) == len(rows) == summary.events_written
    by_id = {json.loads(line)["event_id"]: json.loads(line) for line in lines}
    for row in rows:
        sent = by_id[row["event_id"]]
        assert row["event_time"] == dt.datetime.fromisoformat(sent["event_time"])
        assert row["prospect_id"] == sent["prospect_id"]
        if "years_at_company" in sent["data"]:
            assert row["years_at_company"] == sent["data"]["years_at_company"]
    schema = pq.read_schema(next((tmp_path / "e.parquet").glob("part-*.parquet")))
    assert schema.field("event_time").type == pa.timestamp("us", "UTC")
    assert schema.field("job_anniversary_date").type == pa.timestamp("us", "UTC")
    assert schema.field("years_at_company").type == pa.int64()
    assert schema.field("data_json").type == pa.string()
    assert schema.field("raw_json").type == pa.string()
    assert not schema.field("event_id").nullable


async def test_a_stopped_parquet_pull_resumes_with_each_event_once(
    emulator: Emulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Stop, resume, stop, resume: the dataset ends with each expected event once."""
    ids = [prospect_id(number) for number in range(COUNT)]
    out, checkpoint = tmp_path / "events.parquet", tmp_path / "pull.ckpt"
    async with client_for(emulator.url) as client:
        for batches in (5, 12):
            stop, progress = stop_after(batches)
            summary = await pull(client, ids, out, checkpoint, progress=progress, stop=stop)
            assert summary.interrupted and summary.not_tried > 0
        final = await pull(client, ids, out, checkpoint)
    written = [row["event_id"] for row in table_of(out)]
    assert final.complete
    assert len(written) == len(set(written)) == final.events_total
    assert set(written) == expected_ids(ids)


async def test_parts_written_after_the_last_commit_are_deleted_on_resume(
    emulator: Emulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A part (and a temporary file) past the checkpoint's count go; their batches run again."""
    ids = [prospect_id(number) for number in range(COUNT)]
    out, checkpoint = tmp_path / "events.parquet", tmp_path / "pull.ckpt"
    async with client_for(emulator.url) as client:
        stop, progress = stop_after(10)
        await pull(client, ids, out, checkpoint, progress=progress, stop=stop)
        parts = parts_in(out)
        _, committed = checkpointed(checkpoint)
        assert committed == len(parts) > 0
        # As if a crash hit after a part was renamed but before the checkpoint said so.
        shutil.copy(out / parts[0], out / f"part-{len(parts):05d}.parquet")
        (out / f".part-{len(parts) + 1:05d}.parquet.tmp").write_bytes(b"PAR1 torn")
        await pull(client, ids, out, checkpoint)
    written = [row["event_id"] for row in table_of(out)]
    assert len(written) == len(set(written))
    assert set(written) == expected_ids(ids)
    assert not list(out.glob(".*.tmp"))


async def test_a_parquet_fetch_killed_with_sigkill_resumes_to_each_event_once(
    tmp_path: Path,
) -> None:
    """kill -9 the command line mid-pull, rerun it: each expected event once in the dataset."""
    ids = [prospect_id(number) for number in range(COUNT)]
    source = write_ids(tmp_path / "ids.txt", ids)
    out, checkpoint = tmp_path / "events.parquet", tmp_path / "pull.ckpt"
    async with Emulator(SLOW) as emu:
        argv = fetch_argv(source, out, checkpoint, emu.url, "--concurrency", "1")
        process = await start_fetch(argv)
        while not checkpointed(checkpoint)[1]:  # a part is committed
            assert process.returncode is None, "the pull finished before it could be killed"
            await asyncio.sleep(0.01)
        process.kill()
        await process.communicate()
        assert process.returncode == -signal.SIGKILL
        resumed = await start_fetch([*argv[:-2], "--concurrency", "8"])
        _, err = await resumed.communicate()
        assert resumed.returncode == 0, err.decode()
    written = [row["event_id"] for row in table_of(out)]
    assert len(written) == len(set(written))
    assert set(written) == expected_ids(ids)


_ODD_EVENTS = b"""[
 {"event_id": "a1", "event_name": "prospect_job_start_anniversary",
  "event_time": "2026-10-01T12:00:00-02:00", "prospect_id": "p",
  "data": {"event_name": "prospect_job_start_anniversary", "years_at_company": 7,
           "job_anniversary_date": "2026-10-01T00:00:00Z", "full_name": "Ava Adler"}},
 {"event_id": "a2", "event_name": "prospect_new_hobby", "event_time": "2026-10-02T00:00:00Z",
  "prospect_id": "p", "data": {"hobby": "chess", "years_at_company": "many"}}
]"""


def test_typed_cells_and_data_json_for_what_the_columns_cannot_hold(tmp_path: Path) -> None:
    """Times in UTC, integers as int64; an unknown type's data goes to data_json, whole."""
    events = [decode_event(msgspec.json.encode(raw)) for raw in json.loads(_ODD_EVENTS)]
    with open_sink(str(tmp_path / "odd.parquet"), "parquet") as sink:
        assert sink.write(events) == 2
    known, unknown = sorted(
        table_of(tmp_path / "odd.parquet"), key=lambda row: str(row["event_id"])
    )
    assert known["event_time"] == dt.datetime(2026, 10, 1, 14, tzinfo=dt.UTC)
    assert known["years_at_company"] == 7 and known["full_name"] == "Ava Adler"
    assert known["data_json"] is None
    assert unknown["years_at_company"] is None  # "many" is no int64; data_json has it
    assert json.loads(str(unknown["data_json"])) == {"hobby": "chess", "years_at_company": "many"}


def test_the_format_comes_from_the_extension_and_needs_a_path(tmp_path: Path) -> None:
    """.parquet means parquet; standard output, a file or a foreign directory is refused."""
    assert format_for("x.parquet") == "parquet"
    with pytest.raises(ConfigurationError, match="needs an output path"):
        open_sink(None, "parquet")
    (tmp_path / "file.parquet").write_text("not a directory")
    with pytest.raises(ConfigurationError, match="is a file"):
        open_sink(str(tmp_path / "file.parquet"), "parquet")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigurationError, match=r"notes\.txt"):
        open_sink(str(tmp_path / "mine"), "parquet")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_without_pyarrow_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With pyarrow missing: ConfigurationError naming [parquet]; the command line exits 2."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    with pytest.raises(ConfigurationError, match=r"explorium-events\[parquet\]"):
        open_sink(str(tmp_path / "e.parquet"), "parquet")
    ids = write_ids(tmp_path / "ids.txt", [prospect_id(1)])
    code = main(
        ["fetch", "--ids", str(ids), "--out", str(tmp_path / "e.parquet"), "--api-key", "k" * 20]
    )
    assert code == 2
    assert "explorium-events[parquet]" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
async def test_a_part_refused_by_a_file_size_limit_leaves_nothing_and_the_rerun_is_whole(
    emulator: Emulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    """EFBIG writing a part: exit 1 naming the output, no torn part; the rerun writes all once."""
    ids = [prospect_id(number) for number in range(COUNT)]
    source = write_ids(tmp_path / "ids.txt", ids)
    out, checkpoint = tmp_path / "events.parquet", tmp_path / "pull.ckpt"
    argv = edges_fetch_argv(source, out, emulator.url, "--checkpoint", str(checkpoint))

    # Room for the checkpoint, not for a part that holds a second's worth of events.
    code, err = await run_cli(argv, file_size_limit=100_000)

    assert code == 1, err
    assert "Traceback" not in err and f"cannot write {out}" in err
    assert checkpointed(checkpoint)[1] == len(parts_in(out))  # only whole, recorded parts
    assert not list(out.glob(".*.tmp"))
    code, err = await run_cli(argv)
    assert code == 0, err
    written = [row["event_id"] for row in table_of(out)]
    assert len(written) == len(set(written))
    assert set(written) == expected_ids(ids)
