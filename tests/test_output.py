"""The sinks and their registry: JSONL and CSV to a file or stdout, append and fsync."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from explorium_events import ConfigurationError, Event
from explorium_events._models import decode_event
from explorium_events._sinks import (
    CSV_COLUMNS,
    EXTENSIONS,
    FORMATS,
    CsvSink,
    JsonlSink,
    SqliteSink,
    csv_row,
    format_for,
    open_sink,
)
from tests.conftest import event_for, prospect_id


def _event(raw: dict[str, Any]) -> Event:
    return decode_event(json.dumps(raw).encode())


def _anniversary() -> dict[str, Any]:
    return {
        "event_name": "prospect_job_start_anniversary",
        "event_time": "2026-10-02T00:00:00+00:00",
        "event_id": "d" * 32,
        "data": {
            "event_name": "prospect_job_start_anniversary",
            "full_name": "Ava Adler",
            "company_name": "Acme",
            "job_title": "CTO",
            "years_at_company": 3,
            "job_anniversary_date": "2023-10-02T00:00:00+00:00",
            "linkedin_url": "linkedin.com/in/ava",
        },
        "prospect_id": prospect_id(2),
    }


def _unknown() -> dict[str, Any]:
    return {
        "event_name": "prospect_won_lottery",
        "event_time": "2026-10-03T00:00:00+00:00",
        "event_id": "e" * 32,
        "data": {"event_name": "prospect_won_lottery", "amount": 5, "currency": "EUR"},
        "prospect_id": prospect_id(3),
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def test_jsonl_sink_writes_each_event_exactly_as_the_api_sent_it(tmp_path: Path) -> None:
    """One line per event, byte for byte the event object the API sent (key order included)."""
    raws = [event_for(prospect_id(1)), _anniversary(), _unknown()]
    encoded = [json.dumps(raw, separators=(",", ":")).encode() for raw in raws]
    path = tmp_path / "events.jsonl"
    with open_sink(str(path), "jsonl") as sink:
        assert sink.write(decode_event(blob) for blob in encoded) == 3
    assert path.read_bytes() == b"\n".join(encoded) + b"\n"
    assert sink.written == 3


def test_csv_sink_has_a_fixed_header_and_one_row_per_event(tmp_path: Path) -> None:
    """The header is the common fields, the union of the data fields, then data_json."""
    path = tmp_path / "events.csv"
    with open_sink(str(path), "csv") as sink:
        sink.write([_event(event_for(prospect_id(1))), _event(_anniversary())])
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert tuple(header) == CSV_COLUMNS
    assert header[:4] == ["event_id", "event_name", "event_time", "prospect_id"]
    company, anniversary = _rows(path)
    assert company["current_company_name"] == "Acme"
    assert company["previous_company_id"] == "b" * 32
    assert company["full_name"] == "" and company["data_json"] == ""
    assert anniversary["years_at_company"] == "3"
    assert anniversary["event_time"] == "2026-10-02T00:00:00+00:00"
    assert anniversary["linkedin_url"] == "linkedin.com/in/ava"


def test_csv_keeps_an_unknown_event_types_data_in_data_json() -> None:
    """Data of a type the client does not know is kept whole, as JSON, in data_json."""
    row = dict(zip(CSV_COLUMNS, csv_row(_event(_unknown())), strict=True))
    assert row["event_name"] == "prospect_won_lottery"
    assert json.loads(row["data_json"]) == _unknown()["data"]


def test_csv_keeps_fields_the_api_added_in_data_json() -> None:
    """A known type with a field no column carries still loses nothing: data_json has it."""
    raw = event_for(prospect_id(4))
    raw["data"]["new_field"] = {"nested": True}
    row = dict(zip(CSV_COLUMNS, csv_row(_event(raw)), strict=True))
    assert row["current_job_title"] == "CTO"
    assert json.loads(row["data_json"])["new_field"] == {"nested": True}


def test_csv_append_writes_the_header_only_once(tmp_path: Path) -> None:
    """Appending to a CSV that already has rows adds rows, not a second header."""
    path = tmp_path / "events.csv"
    with open_sink(str(path), "csv") as sink:
        sink.write([_event(event_for(prospect_id(1)))])
    with open_sink(str(path), "csv", append=True) as sink:
        sink.write([_event(event_for(prospect_id(2)))])
    text = path.read_text(encoding="utf-8")
    assert text.count("event_id,event_name") == 1
    assert [row["prospect_id"] for row in _rows(path)] == [prospect_id(1), prospect_id(2)]


def test_jsonl_append_keeps_what_the_file_held(tmp_path: Path) -> None:
    """append=True adds lines after the existing ones; the default replaces the file."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"old": 1}\n')
    with open_sink(str(path), "jsonl", append=True) as sink:
        sink.write([_event(event_for(prospect_id(1)))])
    lines = path.read_bytes().splitlines()
    assert lines[0] == b'{"old": 1}' and len(lines) == 2
    with open_sink(str(path), "jsonl") as sink:
        sink.write([])
    assert path.read_bytes() == b""


def test_a_sink_on_standard_output_writes_bytes_and_leaves_it_open(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With no path, events go to stdout, which close() flushes but does not close."""
    sink = open_sink(None, "jsonl")
    sink.write([_event(event_for(prospect_id(1)))])
    sink.flush_durably()  # a pipe or a capture cannot be fsynced: no error either
    sink.close()
    sink.close()
    assert json.loads(capsys.readouterr().out)["prospect_id"] == prospect_id(1)
    print("still open")
    assert capsys.readouterr().out == "still open\n"


def test_a_sink_falls_back_to_text_when_stdout_has_no_binary_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replaced sys.stdout without .buffer still receives the events, as text."""
    text = io.StringIO()
    monkeypatch.setattr("sys.stdout", text)
    with open_sink(None, "csv") as sink:
        sink.write([_event(event_for(prospect_id(1)))])
    assert text.getvalue().startswith("event_id,")


def test_flush_durably_fsyncs_a_regular_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flush_durably() ends in os.fsync on the file's descriptor."""
    synced: list[int] = []
    monkeypatch.setattr("os.fsync", synced.append)
    with open_sink(str(tmp_path / "e.jsonl"), "jsonl") as sink:
        sink.write([_event(event_for(prospect_id(1)))])
        sink.flush_durably()
    assert len(synced) == 1


def test_format_comes_from_the_flag_then_the_extension_then_jsonl() -> None:
    """An explicit format wins; else .csv and .jsonl/.ndjson decide; else JSONL."""
    assert format_for("x.csv") == "csv"
    assert format_for("X.CSV") == "csv"
    assert format_for("x.ndjson") == "jsonl"
    assert format_for("x.txt") == "jsonl"
    assert format_for(None) == "jsonl"
    assert format_for("x.csv", "jsonl") == "jsonl"
    assert format_for("x.db") == "sqlite"


def test_every_extension_names_a_registered_format_and_unknown_ones_are_refused() -> None:
    """The extensions come from the one registry; an unknown format is a ConfigurationError."""
    assert set(EXTENSIONS.values()) == set(FORMATS)
    with pytest.raises(ConfigurationError, match="unknown output format 'xlsx'"):
        format_for("x.csv", "xlsx")


def test_open_sink_refuses_an_unknown_format(tmp_path: Path) -> None:
    """An unregistered format is a ConfigurationError naming the known ones; no file made."""
    with pytest.raises(ConfigurationError, match="csv, json, jsonl, parquet, sqlite"):
        open_sink(str(tmp_path / "x"), "xlsx")
    assert not (tmp_path / "x").exists()


def test_the_registry_opens_each_format_with_its_sink_and_resume_rule(tmp_path: Path) -> None:
    """open_sink finds its classes through FORMATS, which also says how a resume treats each."""
    with open_sink(str(tmp_path / "e.csv"), "csv") as sink:
        assert isinstance(sink, CsvSink) and sink.format == "csv"
    with open_sink(str(tmp_path / "e.jsonl"), "jsonl") as sink:
        assert isinstance(sink, JsonlSink) and sink.format == "jsonl"
    with open_sink(str(tmp_path / "e.db"), "sqlite") as sink:
        assert isinstance(sink, SqliteSink) and sink.format == "sqlite"
    assert {name: fmt.resume for name, fmt in FORMATS.items()} == {
        "jsonl": "truncate",
        "csv": "truncate",
        "sqlite": "upsert",
        "json": "none",
        "parquet": "truncate",
    }
