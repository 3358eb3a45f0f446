"""An SQLite output: one ``events`` row per event_id, upserted, so pulling again never duplicates.

The table has the common fields, the data fields of every known event type (empty
where an event's type does not have them), and the event's exact JSON::

    CREATE TABLE events (
        event_id TEXT PRIMARY KEY, event_name TEXT NOT NULL,
        event_time TEXT NOT NULL,            -- ISO 8601 in UTC, so text order is time order
        prospect_id TEXT NOT NULL,
        current_company_name TEXT, ...,      -- the data fields: the column table, _columns
        years_at_company INTEGER, ...,
        raw_json TEXT NOT NULL               -- the event object exactly as the API sent it
    );
    CREATE INDEX events_prospect_id ON events (prospect_id);

Business events go to a table of their own, ``business_events``, with the business
column table (``business_id``, the common business data fields, ``raw_json``) and an
index on ``business_id``: one database file can hold both kinds, and a prospect
database made before keeps its ``events`` table as it was.

Rows are written by column name, so a table made by an earlier version, whose columns
are in another order (prospect_id second) or fewer, is upserted into as it is; it
gains the columns it lacks.

``flush_durably()`` commits (WAL, ``synchronous=FULL``): once it returns, the rows
survive a crash or a power cut. ``write`` also commits on its own once a second, so a
pull without a checkpoint that is killed keeps what it had written until then.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import sqlite3
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

import msgspec

from .._errors import ConfigurationError, OutputWriteError
from .._results import AnyEvent
from ._columns import TABLES, ColumnTable


def _names(table: ColumnTable) -> tuple[str, ...]:
    return (*(column.name for column in table.columns), "raw_json")


def _ddl(table: ColumnTable) -> list[str]:
    columns = [
        f"{column.name} {column.sql_type}"
        + (" PRIMARY KEY" if column.name == "event_id" else "")
        + (" NOT NULL" if column.required and column.name != "event_id" else "")
        for column in table.columns
    ]
    columns.append("raw_json TEXT NOT NULL")
    name, key = table.sql_table, table.id_column
    return [
        f"CREATE TABLE IF NOT EXISTS {name} (\n    " + ",\n    ".join(columns) + "\n)",
        f"CREATE INDEX IF NOT EXISTS {name}_{key} ON {name} ({key})",
    ]


def _upsert(table: ColumnTable) -> str:
    names = _names(table)
    return (
        f"INSERT INTO {table.sql_table} ({', '.join(names)}) "
        f"VALUES ({', '.join('?' for _ in names)}) "
        "ON CONFLICT (event_id) DO UPDATE SET "
        + ", ".join(f"{name} = excluded.{name}" for name in names[1:])
    )


_UPSERTS = {entity: _upsert(table) for entity, table in TABLES.items()}


_INT64 = range(-(2**63), 2**63)
_encode_json = msgspec.json.Encoder().encode


def _cell(value: Any, *, integer: bool = False) -> Any:
    """A value as SQLite can hold it exactly; whatever the API sent, never an error.

    An integer beyond 64 bits is its decimal text in a TEXT column; an INTEGER column
    would turn that text into an inexact REAL, so it gets NULL there (``raw_json``
    keeps the exact value). A time that cannot be moved to UTC (year 9999 at -14:00)
    keeps the offset it was sent with.
    """
    if value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        if value in _INT64:
            return value
        return None if integer else str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.isoformat()
        try:
            return value.astimezone(dt.UTC).isoformat()
        except OverflowError:
            return value.isoformat()
    if isinstance(value, dict | list):
        return _encode_json(value).decode()
    return str(value)


def event_row(event: AnyEvent, table: ColumnTable = TABLES["prospect"]) -> tuple[Any, ...]:
    """The row of one event: the column table's columns, then ``raw_json``."""
    data = event.data
    if isinstance(data, dict):
        values: dict[str, Any] = data
    else:
        values = {column.name: getattr(data, column.name, None) for column in table.data}
    row = [
        _cell(
            values.get(column.name) if column.in_data else getattr(event, column.name),
            integer=column.sql_type == "INTEGER",
        )
        for column in table.columns
    ]
    row.append(event.to_json().decode())
    return tuple(row)


class SqliteSink:
    """Writes events into an SQLite file, upserting by event_id.

    Prospect events go to the ``events`` table; with ``entity="business"``, business
    events go to ``business_events``.
    """

    format = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        append: bool = True,
        commit_every: float = 1.0,
        entity: str = "prospect",
    ) -> None:
        self._table = TABLES[entity]
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
        self._lost = False
        self._uncommitted = 0  # rows written since the last commit
        self._closed = False
        self._commit_every = commit_every
        self._committed_at = time.monotonic()
        self.written = 0

    def _prepare(self) -> None:
        db = self._db
        table = self._table
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            for statement in _ddl(table):
                db.execute(statement)
            present = {row[1] for row in db.execute(f"PRAGMA table_info({table.sql_table})")}
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(
                f"the SQLite output {self.path} cannot be used: {exc}"
            ) from exc
        if "event_id" not in present:
            raise ConfigurationError(
                f"{self.path} has an {table.sql_table} table without an event_id column; "
                "write to another file"
            )
        # A table made by an older version gains the columns it lacks; nothing is dropped.
        kinds = {column.name: column.sql_type for column in table.columns}
        for name in _names(table):
            if name not in present:
                kind = kinds.get(name, "TEXT")
                db.execute(f"ALTER TABLE {table.sql_table} ADD COLUMN {name} {kind}")

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

    def write(self, events: Iterable[AnyEvent]) -> int:
        """Upsert these events (durable at flush_durably()); returns how many.

        All of the batch or none of it: a failure (a full disk shows as "database or
        disk is full") undoes the batch's rows and raises OutputWriteError.
        """
        table = self._table
        rows = [event_row(event, table) for event in events]
        if not rows:
            return 0
        self._check_not_lost()
        db = self._db
        try:
            if not self._in_transaction:
                db.execute("BEGIN")
                self._in_transaction = True
            db.execute("SAVEPOINT batch")
            db.executemany(_UPSERTS[table.entity], rows)
            db.execute("RELEASE batch")
        except sqlite3.Error as exc:
            self._undo_batch()
            raise OutputWriteError(self.path, exc) from exc
        self.written += len(rows)
        self._uncommitted += len(rows)
        if time.monotonic() - self._committed_at >= self._commit_every:
            self.flush_durably()
        return len(rows)

    def _undo_batch(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK TO batch")
                self._db.execute("RELEASE batch")
                return
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
        # SQLite rolled back the whole transaction: earlier batches in it, if any, are gone.
        self._lost = self._uncommitted > 0
        self._in_transaction = False
        self._uncommitted = 0

    def _check_not_lost(self) -> None:
        if self._lost:
            raise OutputWriteError(
                self.path,
                OSError(
                    errno.EIO,
                    "an earlier write failed and took the rows written since the last "
                    "commit with it",
                ),
            )

    def flush_durably(self) -> None:
        """Commit: what was written survives a crash once this returns.

        Raises OutputWriteError when the commit fails, or when rows written since the
        last commit were lost to an earlier failure.
        """
        self._check_not_lost()
        if self._in_transaction:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if not self._db.in_transaction:
                    self._lost = self._uncommitted > 0
                    self._in_transaction = False
                    self._uncommitted = 0
                raise OutputWriteError(self.path, exc) from exc
            self._in_transaction = False
            self._uncommitted = 0
        self._committed_at = time.monotonic()

    def close(self) -> None:
        """Commit what was written and close the file. Idempotent.

        Rows lost to a failure that write or flush_durably already reported are not
        reported again.
        """
        if self._closed:
            return
        try:
            if not self._lost:
                self.flush_durably()
        finally:
            self._closed = True
            self._db.close()

    def count(self) -> int:
        """Rows in this sink's table (``events``, or ``business_events``)."""
        row = self._db.execute(f"SELECT COUNT(*) FROM {self._table.sql_table}").fetchone()
        return int(row[0])
