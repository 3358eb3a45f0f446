"""An SQLite output: one ``events`` row per event_id, upserted, so pulling again never duplicates.

The table has the common fields, the data fields of every known event type (empty
where an event's type does not have them), and the event's exact JSON::

    CREATE TABLE events (
        event_id TEXT PRIMARY KEY, prospect_id TEXT NOT NULL, event_name TEXT NOT NULL,
        event_time TEXT NOT NULL,            -- ISO 8601 in UTC, so text order is time order
        current_company_name TEXT, ...,      -- the data fields, see DATA_COLUMNS
        years_at_company INTEGER, ...,
        raw_json TEXT NOT NULL               -- the event object exactly as the API sent it
    );
    CREATE INDEX events_prospect_id ON events (prospect_id);

``flush_durably()`` commits (WAL, ``synchronous=FULL``): once it returns, the rows
survive a crash or a power cut. ``write`` also commits on its own once a second, so a
pull without a checkpoint that is killed keeps what it had written until then.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

from ._errors import ConfigurationError
from ._models import AnniversaryData, CompanyChangeData, Event, RoleChangeData

COMMON_COLUMNS = ("event_id", "prospect_id", "event_name", "event_time")


def _data_columns() -> tuple[str, ...]:
    names: list[str] = []
    for kind in (CompanyChangeData, RoleChangeData, AnniversaryData):
        for name in kind.__struct_fields__:
            if name != "event_name" and name not in names:
                names.append(name)
    return tuple(names)


DATA_COLUMNS = _data_columns()
_INTEGER_COLUMNS = frozenset({"years_at_company"})
COLUMNS = (*COMMON_COLUMNS, *DATA_COLUMNS, "raw_json")


def _ddl() -> list[str]:
    columns = [
        "event_id TEXT PRIMARY KEY",
        "prospect_id TEXT NOT NULL",
        "event_name TEXT NOT NULL",
        "event_time TEXT NOT NULL",
        *(f"{name} {'INTEGER' if name in _INTEGER_COLUMNS else 'TEXT'}" for name in DATA_COLUMNS),
        "raw_json TEXT NOT NULL",
    ]
    return [
        "CREATE TABLE IF NOT EXISTS events (\n    " + ",\n    ".join(columns) + "\n)",
        "CREATE INDEX IF NOT EXISTS events_prospect_id ON events (prospect_id)",
    ]


_UPSERT = (
    f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    "ON CONFLICT (event_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in COLUMNS[1:])
)


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    return str(value)


def event_row(event: Event) -> tuple[Any, ...]:
    """The row of one event, in COLUMNS order."""
    data = event.data
    if isinstance(data, dict):
        values: dict[str, Any] = data
    else:
        values = {name: getattr(data, name, None) for name in DATA_COLUMNS}
    return (
        event.event_id,
        event.prospect_id,
        event.event_name,
        _cell(event.event_time),
        *(_cell(values.get(name)) for name in DATA_COLUMNS),
        event.to_json().decode(),
    )


class SqliteSink:
    """Writes events into the ``events`` table of an SQLite file, upserting by event_id."""

    format = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        append: bool = True,
        commit_every: float = 1.0,
    ) -> None:
        # ``append`` is accepted for the sink registry's sake: rows are always upserted.
        if path is None:
            raise ConfigurationError("the sqlite format writes to a file: give an output path")
        self.path = self.name = os.fspath(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open the SQLite output {self.path}: {exc}") from exc
        try:
            self._prepare()
        except BaseException:
            self._db.close()
            raise
        self._in_transaction = False
        self._closed = False
        self._commit_every = commit_every
        self._committed_at = time.monotonic()
        self.written = 0

    def _prepare(self) -> None:
        db = self._db
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            for statement in _ddl():
                db.execute(statement)
            present = {row[1] for row in db.execute("PRAGMA table_info(events)")}
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(
                f"the SQLite output {self.path} cannot be used: {exc}"
            ) from exc
        if "event_id" not in present:
            raise ConfigurationError(
                f"{self.path} has an events table without an event_id column; write to another file"
            )
        # A table made by an older version gains the columns it lacks; nothing is dropped.
        for name in COLUMNS:
            if name not in present:
                kind = "INTEGER" if name in _INTEGER_COLUMNS else "TEXT"
                db.execute(f"ALTER TABLE events ADD COLUMN {name} {kind}")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SqliteSink path={self.path!r} written={self.written} closed={self._closed}>"

    def write(self, events: Iterable[Event]) -> int:
        """Upsert these events (durable at flush_durably()); returns how many."""
        rows = [event_row(event) for event in events]
        if not rows:
            return 0
        if not self._in_transaction:
            self._db.execute("BEGIN")
            self._in_transaction = True
        self._db.executemany(_UPSERT, rows)
        self.written += len(rows)
        if time.monotonic() - self._committed_at >= self._commit_every:
            self.flush_durably()
        return len(rows)

    def flush_durably(self) -> None:
        """Commit: what was written survives a crash once this returns."""
        if self._in_transaction:
            self._db.execute("COMMIT")
            self._in_transaction = False
        self._committed_at = time.monotonic()

    def close(self) -> None:
        """Commit what was written and close the file. Idempotent."""
        if self._closed:
            return
        try:
            self.flush_durably()
        finally:
            self._closed = True
            self._db.close()

    def count(self) -> int:
        """Rows in the events table."""
        row = self._db.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(row[0])
