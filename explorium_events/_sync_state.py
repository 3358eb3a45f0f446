"""The state file of an incremental sync: per-ID cursors, the event ids emitted, the runs.

One SQLite file, written only by ``sync()``. Schema version 1 (``PRAGMA user_version``)::

    meta      (key TEXT PRIMARY KEY, value TEXT NOT NULL)
              -- kind = 'explorium-events sync state', created, event_types ('a,b'),
              -- output, output_format, output_length, output_file ('dev:ino'),
              -- server_limit ('{"cost": "request", "limit": 200}': X-RateLimit-Limit as
              -- the last run read it, so that the next run probes first; never the key)
    prospects (prospect_id TEXT PRIMARY KEY, cursor INTEGER NOT NULL) WITHOUT ROWID
              -- cursor: Unix seconds when the last run that fetched this ID STARTED
    emitted   (event_id TEXT PRIMARY KEY, event_time INTEGER NOT NULL) WITHOUT ROWID
              -- every event written to the output, with its event_time (Unix seconds;
              -- for one dated before the retention window plus the lookback, the start
              -- of the last run that saw it), kept until older than that window
    runs      (run INTEGER PRIMARY KEY, started INTEGER NOT NULL, finished INTEGER,
               status TEXT NOT NULL, ids INTEGER, new_ids INTEGER, removed_ids INTEGER,
               failed_ids INTEGER, new_events INTEGER, requests INTEGER)
              -- status: running (or killed), done, failed, interrupted

How it stays honest: a batch's events are written to the output and made durable
(fsync, or commit) first; only then, in ONE transaction, are its event ids added to
``emitted``, its IDs' cursors moved to the run's start, and the output's durable length
recorded. A crash in between leaves the state as it was: the next run cuts a JSONL or
CSV output back to the recorded length and fetches those IDs again.

A run's list is loaded into a temporary table and joined here, so neither the list nor
the cursors are ever held in Python: memory does not grow with the number of IDs.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar

from ._errors import ConfigurationError, OutputWriteError
from ._ratelimit_types import ServerLimit

_T = TypeVar("_T")
SCHEMA_VERSION = 1
_KIND = "explorium-events sync state"
_PAGE = 4000  # IDs read from the plan per query

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE prospects (prospect_id TEXT PRIMARY KEY, cursor INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE emitted (event_id TEXT PRIMARY KEY, event_time INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX emitted_event_time ON emitted (event_time)",
    "CREATE TABLE runs (run INTEGER PRIMARY KEY, started INTEGER NOT NULL, finished INTEGER, "
    "status TEXT NOT NULL, ids INTEGER, new_ids INTEGER, removed_ids INTEGER, "
    "failed_ids INTEGER, new_events INTEGER, requests INTEGER)",
)


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """Where the last run wrote, and how much of it is durable and accounted for."""

    path: str
    format: str
    length: int | None
    file: str  # "dev:ino" of the file when it was recorded, "" if unknown


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of the log."""

    run: int
    started: int
    finished: int | None
    status: str
    new_events: int | None


class SyncState:
    """An open state file. Use as a context manager; every write is its own transaction."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open the sync state {self.path}: {exc}") from exc
        self._lock: int | None = None
        try:
            self.new = self._prepare()
            self._take_lock()
        except BaseException:
            self.close()
            raise

    def _take_lock(self) -> None:
        """One run at a time per state: a second one would write the same events again."""
        try:
            import fcntl
        except ImportError:  # Windows: no flock; SQLite's own locks still keep it whole
            return
        self._lock = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigurationError(
                f"another sync is running with the state {self.path}: wait for it to end "
                "(from cron, wrap the command in `flock -n`)"
            ) from None

    def _prepare(self) -> bool:
        db = self._db
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA temp_store=FILE")  # a million IDs' plan stays on disk
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            name = getattr(exc, "sqlite_errorname", "") or ""
            if name.startswith("SQLITE_IOERR") or name == "SQLITE_FULL":  # a full disk
                raise OutputWriteError(self.path, exc) from exc
            raise ConfigurationError(
                f"{self.path} is not a sync state ({exc}): give --state a file of its own"
            ) from exc
        if not tables:
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute("INSERT INTO meta VALUES ('kind', ?)", (_KIND,))
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
            return True
        kind = None
        if "meta" in tables:
            row = db.execute("SELECT value FROM meta WHERE key = 'kind'").fetchone()
            kind = row[0] if row else None
        if kind != _KIND:
            raise ConfigurationError(
                f"{self.path} is an SQLite file but not a sync state: give --state a file "
                "of its own (it is created on the first run)"
            )
        if version != SCHEMA_VERSION:
            raise ConfigurationError(
                f"{self.path} is a sync state of schema version {version}; this version of "
                f"explorium-events reads version {SCHEMA_VERSION}: upgrade explorium-events"
            )
        return False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (what is not committed is rolled back). Idempotent."""
        self._db.close()
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None

    def __repr__(self) -> str:
        return f"<SyncState {self.path!r}>"

    # -- meta ---------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, values: dict[str, str]) -> None:
        self._write(
            lambda db: db.executemany(
                "INSERT INTO meta VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                values.items(),
            )
        )

    def server_limit(self) -> ServerLimit | None:
        """The server's limit as the last run that read one recorded it, if any."""
        return ServerLimit.from_json(self.get("server_limit"))

    def output(self) -> OutputRecord | None:
        """The output the last commit recorded, or None before the first."""
        path = self.get("output")
        if path is None:
            return None
        length = self.get("output_length")
        return OutputRecord(
            path=path,
            format=self.get("output_format") or "",
            length=int(length) if length else None,
            file=self.get("output_file") or "",
        )

    # -- the run's list -----------------------------------------------------------------

    def load_ids(self, ids: Iterable[str]) -> tuple[int, int]:
        """Load this run's list into the plan; (unique IDs, repeats).

        Every ID is planned with its cursor (-1: none yet, the whole window is due).
        """
        db = self._db
        db.execute("DROP TABLE IF EXISTS temp.run_ids")
        db.execute("DROP TABLE IF EXISTS temp.plan")
        db.execute("CREATE TEMP TABLE run_ids (prospect_id TEXT PRIMARY KEY) WITHOUT ROWID")
        db.execute("BEGIN")
        values = 0

        def rows() -> Iterator[tuple[str]]:
            nonlocal values
            for prospect_id in ids:
                values += 1
                yield (prospect_id,)

        db.executemany("INSERT OR IGNORE INTO temp.run_ids VALUES (?)", rows())
        db.execute(
            "CREATE TEMP TABLE plan AS SELECT r.prospect_id AS prospect_id, "
            "COALESCE(p.cursor, -1) AS grp FROM temp.run_ids r "
            "LEFT JOIN prospects p ON p.prospect_id = r.prospect_id"
        )
        db.execute("CREATE INDEX temp.plan_order ON plan (grp, prospect_id)")
        db.execute("COMMIT")
        unique = db.execute("SELECT COUNT(*) FROM temp.run_ids").fetchone()[0]
        return unique, values - unique

    def forget_removed(self) -> int:
        """Drop the cursors of IDs no longer in the list; how many."""
        return self._write(
            lambda db: (
                db.execute(
                    "DELETE FROM prospects "
                    "WHERE prospect_id NOT IN (SELECT prospect_id FROM temp.run_ids)"
                ).rowcount
            )
        )

    def groups(self) -> list[tuple[int, int]]:
        """(cursor or -1, how many IDs) of the plan, oldest cursor first: one group each."""
        return [
            (int(grp), int(count))
            for grp, count in self._db.execute(
                "SELECT grp, COUNT(*) FROM temp.plan GROUP BY grp ORDER BY grp"
            )
        ]

    def ids_of(self, grp: int) -> Iterator[str]:
        """The plan's IDs with this cursor, in order, read a page at a time."""
        last = ""
        while True:
            page = [
                row[0]
                for row in self._db.execute(
                    "SELECT prospect_id FROM temp.plan WHERE grp = ? AND prospect_id > ? "
                    "ORDER BY prospect_id LIMIT ?",
                    (grp, last, _PAGE),
                )
            ]
            yield from page
            if len(page) < _PAGE:
                return
            last = page[-1]

    # -- events ---------------------------------------------------------------------------

    def emitted_among(self, event_ids: list[str]) -> set[str]:
        """Which of these event ids were emitted by an earlier commit."""
        found: set[str] = set()
        for start in range(0, len(event_ids), 500):
            part = event_ids[start : start + 500]
            marks = ",".join("?" * len(part))
            found.update(
                row[0]
                for row in self._db.execute(
                    f"SELECT event_id FROM emitted WHERE event_id IN ({marks})", part
                )
            )
        return found

    def commit(
        self,
        *,
        emitted: list[tuple[str, int]],
        covered: list[str],
        cursor: int,
        output: dict[str, str],
        server_limit: ServerLimit | None = None,
    ) -> None:
        """In one transaction: the emitted events, the covered IDs' cursor, the output's length.

        Call it only once the events are durable in the output. ``server_limit``, when the
        run has read one, is kept for the next run.
        """
        meta = dict(output)
        if server_limit is not None:
            meta["server_limit"] = server_limit.to_json()

        def write(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO emitted VALUES (?, ?) ON CONFLICT (event_id) "
                "DO UPDATE SET event_time = max(event_time, excluded.event_time)",
                emitted,
            )
            db.executemany(
                "INSERT INTO prospects VALUES (?, ?) "
                "ON CONFLICT (prospect_id) DO UPDATE SET cursor = excluded.cursor",
                ((prospect_id, cursor) for prospect_id in covered),
            )
            db.executemany(
                "INSERT INTO meta VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                meta.items(),
            )

        self._write(write)

    def prune(self, before: int) -> int:
        """Forget emitted events dated before ``before``: the API can no longer send them."""
        return self._write(
            lambda db: db.execute("DELETE FROM emitted WHERE event_time < ?", (before,)).rowcount
        )

    def emitted_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM emitted").fetchone()[0])

    # -- the run log ----------------------------------------------------------------------

    def begin_run(self, started: int) -> int:
        return self._write(
            lambda db: int(
                db.execute(
                    "INSERT INTO runs (started, status) VALUES (?, 'running')", (started,)
                ).lastrowid
                or 0
            )
        )

    def finish_run(self, run: int, *, finished: int, status: str, counts: dict[str, int]) -> None:
        columns = ", ".join(f"{name} = ?" for name in counts)
        self._write(
            lambda db: db.execute(
                f"UPDATE runs SET finished = ?, status = ?, {columns} WHERE run = ?",
                (finished, status, *counts.values(), run),
            )
        )

    def previous_run(self, run: int) -> RunRecord | None:
        """The run before ``run``, if any."""
        row = self._db.execute(
            "SELECT run, started, finished, status, new_events FROM runs WHERE run < ? "
            "ORDER BY run DESC LIMIT 1",
            (run,),
        ).fetchone()
        return None if row is None else RunRecord(*row)

    def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:  # the state's own disk is full, say
            raise OutputWriteError(self.path, exc) from exc
        return result
