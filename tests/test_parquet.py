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

from explorium_events import ConfigurationError, pull, sync
from explorium_events._bulk_run import COMMIT_INTERVAL
from explorium_events._models import decode_event
from explorium_events._sinks import FORMATS, format_for, open_sink
from explorium_events.cli import main
from explorium_events.cli._request import PullRequest, commit_interval
from explorium_events.emulator import (
    Emulator,
    EmulatorConfig,
    expected_business_events,
    expected_events,
    make_business_ids,
)
from tests.test_bulk import (
    CONFIG,
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
from tests.test_sync import (
    World,
    world,  # noqa: F401  (the fixture)
)

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


async def test_a_business_pull_writes_the_business_columns_typed_and_resumes_once_each(
    emulator: Emulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    """entity="business": business_id, typed business columns; stopped, resumed, each once."""
    ids = make_business_ids(600)
    out, checkpoint = tmp_path / "accounts.parquet", tmp_path / "accounts.ckpt"
    async with client_for(emulator.url) as client:
        stop, progress = stop_after(4)
        first = await pull(
            client, ids, out, checkpoint, entity="business", progress=progress, stop=stop
        )
        final = await pull(client, ids, out, checkpoint, entity="business")
    assert first.interrupted and final.complete
    rows = table_of(out)
    expected = {e["event_id"]: e for e in expected_business_events(ids, config=CONFIG)}
    assert len(rows) == len({row["event_id"] for row in rows}) == len(expected)
    schema = pq.read_schema(next(out.glob("part-*.parquet")))
    assert "business_id" in schema.names and "prospect_id" not in schema.names
    assert schema.field("amount_raised").type == pa.float64()
    assert schema.field("event_time").type == pa.timestamp("us", "UTC")
    for row in rows:
        sent = expected[str(row["event_id"])]
        assert json.loads(str(row["raw_json"])) == sent
        assert row["business_id"] == sent["business_id"]
        data = sent["data"]
        if "amount_raised" in data:
            assert row["amount_raised"] == data["amount_raised"]
        if "job_titles" in data:  # a list: its JSON text, as the CSV has it
            assert json.loads(str(row["job_titles"])) == data["job_titles"]
    assert any(row["amount_raised"] is not None for row in rows)


def test_without_a_checkpoint_only_parquet_keeps_the_usual_commit_interval() -> None:
    """Each batch is made durable alone without a checkpoint, but for parquet (a part each)."""

    def interval(fmt: str, checkpoint: str | None = None) -> float:
        request = PullRequest(command="fetch", ids=[], total=0, source="", out="x", fmt=fmt)
        request.checkpoint = checkpoint
        return commit_interval(request)

    assert {fmt: interval(fmt) for fmt in FORMATS} == {
        "jsonl": 0.0,
        "csv": 0.0,
        "sqlite": 0.0,
        "json": 0.0,
        "parquet": COMMIT_INTERVAL,
    }
    assert {interval(fmt, "x.ckpt") for fmt in FORMATS} == {COMMIT_INTERVAL}


async def test_a_parquet_fetch_without_a_checkpoint_writes_few_parts_and_a_true_failed_out(
    tmp_path: Path,
) -> None:
    """No --checkpoint: far fewer parts than batches; failed IDs in --failed-out, none lost."""
    config = EmulatorConfig(rate_limit=None, now=CONFIG.now, latency_ms=1, error_rate=0.2, seed=5)
    ids = [prospect_id(number) for number in range(1_600)]  # 40 batches
    source = write_ids(tmp_path / "ids.txt", ids)
    out, failed_out = tmp_path / "events.parquet", tmp_path / "failed.txt"
    async with Emulator(config) as emu:
        argv = edges_fetch_argv(source, out, emu.url, "--failed-out", str(failed_out))
        code, err = await run_cli([*argv, "--max-attempts", "1"])
    failed = failed_out.read_text().split()
    assert code == 1 and "Traceback" not in err
    assert 0 < len(failed) < len(ids) and len(failed) % 40 == 0
    assert len(parts_in(out)) < 10  # a part a second, not one per batch
    done = sorted(set(ids) - set(failed))
    written = [row["event_id"] for row in table_of(out)]
    assert len(written) == len(set(written))
    assert set(written) == {event["event_id"] for event in expected_events(done, config=config)}


async def test_parquet_needs_a_folder_path_refused_before_the_input_is_read(
    tmp_path: Path,
) -> None:
    """--format parquet to standard output, or --out naming a file: exit 2, one line, no read."""
    source = write_ids(tmp_path / "ids.txt", [prospect_id(1)])
    code, err = await run_cli(["fetch", "--ids", str(source), "--format", "parquet"])
    assert code == 2 and "give --out DIR" in err and "Traceback" not in err
    (tmp_path / "file.parquet").write_text("a file, not a dataset")
    code, err = await run_cli(
        ["fetch", "--ids", str(source), "--out", str(tmp_path / "file.parquet")]
    )
    assert code == 2 and "it is a file" in err and "Traceback" not in err
    assert (tmp_path / "file.parquet").read_text() == "a file, not a dataset"


async def test_a_sync_into_parquet_appends_new_parts_and_cuts_parts_past_its_state(
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    """sync(): a week's new events as new parts, each event once; an unrecorded part is cut."""
    ids = [prospect_id(n) for n in range(200)]
    source, out, state = (
        write_ids(tmp_path / "ids.txt", ids),
        tmp_path / "e.parquet",
        tmp_path / "s",
    )
    before = world.truth(ids)
    async with world.client() as client:
        first = await sync(client, source, out, state)
        parts = parts_in(out)
        # As if a killed run had renamed a part before the state recorded it.
        shutil.copy(out / parts[0], out / f"part-{len(parts):05d}.parquet")
        world.advance(7)
        second = await sync(client, source, out, state)
    written = [row["event_id"] for row in table_of(out)]
    assert len(written) == len(set(written)) == first.new_events + second.new_events
    assert second.new_events > 0
    assert set(written) == before | world.truth(ids)
