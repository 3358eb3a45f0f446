"""The sinks package: one column table from the models, old SQLite files kept, no upward import."""

from __future__ import annotations

import ast
import contextlib
import json
import sqlite3
from pathlib import Path

import msgspec

import explorium_events._sinks as sinks
from explorium_events import EventSink, SqliteSink
from explorium_events._models import (
    AnniversaryData,
    CompanyChangeData,
    Event,
    RoleChangeData,
    decode_event,
)
from tests.conftest import event_for, prospect_id

# The CSV header users already have in their files: it must not move.
CSV_HEADER = (
    "event_id",
    "event_name",
    "event_time",
    "prospect_id",
    "current_company_name",
    "current_company_id",
    "current_job_title",
    "previous_company_name",
    "previous_company_id",
    "previous_job_title",
    "full_name",
    "company_name",
    "job_title",
    "years_at_company",
    "job_anniversary_date",
    "linkedin_url",
    "data_json",
)

# The table as explorium-events 3315d2c made it: prospect_id second.
OLD_DDL = """
CREATE TABLE events (
    event_id TEXT PRIMARY KEY, prospect_id TEXT NOT NULL, event_name TEXT NOT NULL,
    event_time TEXT NOT NULL, current_company_name TEXT, current_company_id TEXT,
    current_job_title TEXT, previous_company_name TEXT, previous_company_id TEXT,
    previous_job_title TEXT, full_name TEXT, company_name TEXT, job_title TEXT,
    years_at_company INTEGER, job_anniversary_date TEXT, linkedin_url TEXT,
    raw_json TEXT NOT NULL
);
CREATE INDEX events_prospect_id ON events (prospect_id);
"""


def _events(count: int, start: int = 0) -> list[Event]:
    return [
        decode_event(json.dumps(event_for(prospect_id(number), index)).encode())
        for number in range(start, start + count)
        for index in range(3)
    ]


def test_the_column_table_is_the_models_fields_in_the_csv_header_order() -> None:
    """Every field of Event and of the data structs is a column, in the header CSV users see."""
    names = tuple(column.name for column in sinks.COLUMNS)
    assert (*names, "data_json") == sinks.CSV_COLUMNS == CSV_HEADER
    fields = {
        name
        for kind in (CompanyChangeData, RoleChangeData, AnniversaryData)
        for name in kind.__struct_fields__
    } - {"event_name"}
    assert {column.name for column in sinks.DATA_COLUMNS} == fields
    assert [column.name for column in sinks.COMMON_COLUMNS] == [
        field.name for field in msgspec.structs.fields(Event) if field.name != "data"
    ]
    assert {column.name for column in sinks.COLUMNS if column.sql_type == "INTEGER"} == {
        "years_at_company"
    }


def test_a_new_sqlite_table_has_the_column_table_in_order_then_raw_json(tmp_path: Path) -> None:
    """SQLite and CSV share one column order; the common columns are NOT NULL."""
    with SqliteSink(tmp_path / "e.db"):
        pass
    with contextlib.closing(sqlite3.connect(tmp_path / "e.db")) as db:
        info = db.execute("PRAGMA table_info(events)").fetchall()
    assert tuple(row[1] for row in info) == (*CSV_HEADER[:-1], "raw_json")
    not_null = {row[1] for row in info if row[3]}
    assert not_null == {"event_name", "event_time", "prospect_id", "raw_json"}


def test_an_events_db_made_by_the_previous_release_is_upserted_into(tmp_path: Path) -> None:
    """A table with prospect_id second gets rows by column name: appended, then upserted."""
    path = tmp_path / "events.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(OLD_DDL)
    first, second = _events(4), _events(4, start=2)
    with SqliteSink(path) as sink:
        sink.write(first)
    with SqliteSink(path) as sink:
        sink.write(second)  # half of them again: replaced, not duplicated
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        rows = {row["event_id"]: row for row in db.execute("SELECT * FROM events")}
        columns = [row[1] for row in db.execute("PRAGMA table_info(events)")]
    assert columns[:4] == ["event_id", "prospect_id", "event_name", "event_time"]
    expected = {event.event_id: event for event in first + second}
    assert set(rows) == set(expected)
    for event_id, event in expected.items():
        row = rows[event_id]
        assert row["prospect_id"] == event.prospect_id
        assert row["event_name"] == event.event_name
        assert row["raw_json"] == event.to_json().decode()


OPTIONAL = {"pyarrow"}


def test_the_sinks_package_imports_only_lower_modules() -> None:
    """No module of _sinks imports the client, the pull or the command line: models, errors."""
    allowed = {"_models", "_business_models", "_results", "_errors"}
    folder = Path(sinks.__file__).parent
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    assert not (node.module or "").startswith("explorium_events"), path
                elif node.level == 2:  # from .. or from ..x: a module of the package
                    assert node.module in allowed, (path, node.module)
                else:
                    assert node.level == 1, path
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("explorium_events") for a in node.names), path
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                # No lazy import inside a function to dodge a cycle; only an optional
                # dependency (pyarrow, the [parquet] extra) is imported when first needed.
                inner = [
                    name
                    for n in ast.walk(node)
                    for name in (
                        [alias.name for alias in n.names]
                        if isinstance(n, ast.Import)
                        else [n.module or "."]
                        if isinstance(n, ast.ImportFrom)
                        else []
                    )
                ]
                assert all(name.split(".")[0] in OPTIONAL for name in inner), (path, node.name)


def test_the_built_in_sinks_are_event_sinks(tmp_path: Path) -> None:
    """JSONL, CSV and SQLite sinks satisfy the public protocol users implement too."""
    for name, suffix in (("jsonl", "e.jsonl"), ("csv", "e.csv"), ("sqlite", "e.db")):
        with sinks.open_sink(str(tmp_path / suffix), name) as sink:
            assert isinstance(sink, EventSink)
