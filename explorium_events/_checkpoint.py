"""The checkpoint of a bulk pull: a small SQLite file that says what is done.

A pull is identified by what it asks for (``PullSpec``): the entity (prospects or
businesses), a fingerprint of its input, the event types, the time window, the batch
size and the output. A checkpoint created
for one pull refuses to be resumed by another (``CheckpointMismatchError``). The API
key is never part of it.

Batches are numbered by their position in the deduplicated stream of valid input IDs:
batch ``n`` holds IDs ``n * batch_size`` to ``(n + 1) * batch_size - 1`` of that stream.
The input fingerprint is a SHA-256 over exactly that stream, so when it matches, every
batch number means the same IDs as before. An unordered input (a set) is pulled in
sorted order, so its stream, fingerprint and batches do not depend on the hash seed of
the process that reads it; a list's order is part of its identity. Only finished
batches have a row: ``done`` (their events are durably in the output) or ``failed``
(with the error, the status, the correlation id and the IDs themselves). Everything
else is not yet tried.

Schema (version 1)::

    meta(key TEXT PRIMARY KEY, value TEXT)     -- JSON values:
        schema         1
        pull           the PullSpec, compared on resume
        input          {"values", "unique", "invalid", "duplicates", "name"} of the input
        output_length  bytes of a JSONL/CSV output that are durably covered by done batches
        server_limit   {"limit", "cost"}: the server's X-RateLimit-Limit as the last run
                       read it (absent until one did), so that a resumed run probes first
        created_at, updated_at   Unix times
    batches(position INTEGER PRIMARY KEY, state TEXT ('done'|'failed'), ids INTEGER,
            events INTEGER, attempts INTEGER, status INTEGER, error TEXT,
            correlation_id TEXT, prospect_ids TEXT, updated_at REAL)

Rows are written in one transaction together with ``output_length``, after the output
itself was made durable: the checkpoint may lag the output, never lead it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from types import TracebackType
from typing import IO, Any, Self

from ._errors import CheckpointMismatchError, ConfigurationError, OutputWriteError
from ._ratelimit_types import ServerLimit

SCHEMA_VERSION = 1
STATE_PENDING = 0
STATE_DONE = 1
STATE_FAILED = 2
_STATE_CODES = {"done": STATE_DONE, "failed": STATE_FAILED}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    position INTEGER PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('done', 'failed')),
    ids INTEGER NOT NULL,
    events INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    status INTEGER,
    error TEXT,
    correlation_id TEXT,
    prospect_ids TEXT,
    updated_at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class PullSpec:
    """What a pull is: resuming is allowed only when every field is equal."""

    input_fingerprint: str  # SHA-256 over the deduplicated, normalised valid IDs
    unique_ids: int
    event_types: tuple[str, ...]  # sorted
    timestamp_from: str | None
    timestamp_to: str | None
    batch_size: int
    output: str  # absolute path of the output, or a custom sink's name
    output_format: str
    # Which events: "prospect" or "business". A checkpoint made before businesses came
    # has no such key, and was a prospect pull.
    entity: str = "prospect"

    def to_json(self) -> str:
        """The spec as stored in the checkpoint."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PullSpec:
        """The spec stored in a checkpoint."""
        raw: dict[str, Any] = json.loads(text)
        raw["event_types"] = tuple(raw["event_types"])
        return cls(**raw)

    def differences(self, other: PullSpec) -> list[str]:
        """What differs between this (stored) spec and ``other``, in words."""
        labels = {
            "input_fingerprint": "the input IDs",
            "unique_ids": "the number of input IDs",
            "event_types": "the event types",
            "timestamp_from": "the window start",
            "timestamp_to": "the window end",
            "batch_size": "the batch size",
            "output": "the output",
            "output_format": "the output format",
            "entity": "the entity",
        }
        found = []
        for spec_field in fields(self):
            name = spec_field.name
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine == theirs:
                continue
            if name == "input_fingerprint":
                found.append("the input IDs differ")
            else:
                found.append(
                    f"{labels[name]}: {_show(mine)} in the checkpoint, {_show(theirs)} now"
                )
        return found


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value) or "none"
    return "none" if value is None else str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputTotals:
    """How the input's values divide: unique valid IDs, invalid values, repeats."""

    values: int
    unique: int
    invalid: int
    duplicates: int
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FinishedBatch:
    """A batch to record: done (with its event count) or failed (with its error)."""

    position: int
    prospect_ids: tuple[str, ...]
    events: int = 0
    attempts: int = 0
    failed: bool = False
    status: int | None = None
    error: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FailedBatchRecord:
    """A failed batch as the checkpoint holds it."""

    position: int
    prospect_ids: tuple[str, ...]
    status: int | None
    error: str
    correlation_id: str | None
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointCounts:
    """IDs and batches by state, and events written, over every run of the pull."""

    done_ids: int
    failed_ids: int
    done_batches: int
    failed_batches: int
    events: int


def _cannot_write(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite failed to write (I/O error, disk full), not to read a database."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith("SQLITE_IOERR") or name == "SQLITE_FULL"


class Checkpoint:
    """A pull's progress in an SQLite file (WAL mode). Open with ``Checkpoint.open``."""

    def __init__(self, path: str, connection: sqlite3.Connection, spec: PullSpec, *, new: bool):
        self.path = path
        self.spec = spec
        self.new = new
        self._db = connection
        self._lock: IO[bytes] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], spec: PullSpec) -> Checkpoint:
        """Create the checkpoint for ``spec``, or open the existing one if it is for ``spec``.

        Raises CheckpointMismatchError when the file records a different pull, and
        ConfigurationError when it is not a checkpoint at all.
        """
        name = os.fspath(path)
        try:
            connection = sqlite3.connect(name, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open the checkpoint {name}: {exc}") from exc
        try:
            checkpoint = cls._adopt(name, connection, spec)
        except BaseException:
            connection.close()
            raise
        try:
            checkpoint._lock_for_this_run()
        except BaseException:
            checkpoint.close()
            raise
        return checkpoint

    def _lock_for_this_run(self) -> None:
        """Refuse a second process pulling into the same checkpoint at the same time."""
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; one run at a time is on you
            return
        lock = open(self.path, "rb")  # noqa: SIM115 (held until close())
        try:
            # flock, not fcntl locks: SQLite's own POSIX locks never meet this one.
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise ConfigurationError(
                f"another process is pulling with the checkpoint {self.path} right now; "
                "wait for it to finish, or stop it (it can be resumed)"
            ) from None
        self._lock = lock

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Open an existing checkpoint to look at it (counts, failed batches), whatever its pull."""
        name = os.fspath(path)
        if not os.path.isfile(name):
            raise ConfigurationError(f"{name}: no such checkpoint")
        connection = sqlite3.connect(name, isolation_level=None)
        try:
            return cls._adopt(name, connection, None)
        except BaseException:
            connection.close()
            raise

    @classmethod
    def _adopt(cls, name: str, db: sqlite3.Connection, spec: PullSpec | None) -> Checkpoint:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # A commit lost in a power cut only makes the checkpoint lag the output,
            # which resuming repairs; so NORMAL (no fsync per commit) is safe here.
            db.execute("PRAGMA synchronous=NORMAL")
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            if _cannot_write(exc):  # a full disk, a file-size limit: not the file's fault
                raise OutputWriteError(name, exc) from exc
            raise ConfigurationError(
                f"{name} is not a checkpoint (not an SQLite database: {exc}); "
                "pass a new path or the checkpoint of this pull"
            ) from exc
        if tables and not {"meta", "batches"} <= tables:
            raise ConfigurationError(
                f"{name} is an SQLite database but not a checkpoint; pass a new path"
            )
        now = json.dumps(time.time())
        with _transaction(db):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if not meta and spec is None:
                raise ConfigurationError(f"{name} is an empty checkpoint: no pull has used it")
            if not meta:
                assert spec is not None
                db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("schema", json.dumps(SCHEMA_VERSION)),
                        ("pull", spec.to_json()),
                        ("output_length", json.dumps(0)),
                        ("created_at", now),
                        ("updated_at", now),
                    ],
                )
                return cls(name, db, spec, new=True)
        if json.loads(meta.get("schema", "null")) != SCHEMA_VERSION:
            raise ConfigurationError(
                f"the checkpoint {name} has schema {meta.get('schema')}, this version reads "
                f"{SCHEMA_VERSION}; finish it with the version that made it, or start anew"
            )
        stored = PullSpec.from_json(meta["pull"])
        if spec is not None:
            differences = stored.differences(spec)
            if differences:
                raise CheckpointMismatchError(name, differences)
        return cls(name, db, stored, new=False)

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
        """Close the file (and release the run's lock). Idempotent."""
        self._db.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __repr__(self) -> str:
        return f"<Checkpoint path={self.path!r} new={self.new}>"

    def _meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    @property
    def output_length(self) -> int:
        """Bytes of a JSONL/CSV output covered by done batches (0 for a new pull)."""
        value = self._meta("output_length")
        return int(value) if value is not None else 0

    @property
    def server_limit(self) -> ServerLimit | None:
        """The server's limit as the last run that read one recorded it, if any."""
        # The text, not _meta's decoded value: a value edited into nonsense, even text
        # that is not JSON, reads as none (the next run learns it anew), never as an error.
        row = self._db.execute("SELECT value FROM meta WHERE key = 'server_limit'").fetchone()
        return ServerLimit.from_json(None if row is None else row[0])

    @property
    def input_totals(self) -> InputTotals | None:
        """How the input's values divided, as recorded by the latest run."""
        value = self._meta("input")
        return InputTotals(**value) if value is not None else None

    def set_input_totals(self, totals: InputTotals) -> None:
        """Record how the input's values divide (the spec already pins the unique IDs)."""
        with _transaction(self._db):
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('input', ?)",
                (json.dumps(asdict(totals)),),
            )

    def states(self) -> bytearray:
        """One byte per batch position: STATE_PENDING, STATE_DONE or STATE_FAILED."""
        unique = self.spec.unique_ids
        size = self.spec.batch_size
        states = bytearray(-(-unique // size))
        for position, state in self._db.execute("SELECT position, state FROM batches"):
            if 0 <= position < len(states):
                states[position] = _STATE_CODES[state]
        return states

    def record(
        self,
        batches: Iterable[FinishedBatch],
        *,
        output_length: int | None,
        server_limit: ServerLimit | None = None,
    ) -> None:
        """Mark batches done or failed, and the output's durable length, in one transaction.

        Call only after the events of the done batches are durably in the output.
        ``server_limit``, when the run has read one, is kept for the next run.
        """
        now = time.time()
        rows = [
            (
                batch.position,
                "failed" if batch.failed else "done",
                len(batch.prospect_ids),
                batch.events,
                batch.attempts,
                batch.status,
                batch.error,
                batch.correlation_id,
                "\n".join(batch.prospect_ids) if batch.failed else None,
                now,
            )
            for batch in batches
        ]
        with _transaction(self._db):
            self._db.executemany(
                """INSERT INTO batches (position, state, ids, events, attempts, status, error,
                                        correlation_id, prospect_ids, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (position) DO UPDATE SET
                       state = excluded.state, ids = excluded.ids, events = excluded.events,
                       attempts = excluded.attempts, status = excluded.status,
                       error = excluded.error, correlation_id = excluded.correlation_id,
                       prospect_ids = excluded.prospect_ids, updated_at = excluded.updated_at""",
                rows,
            )
            if output_length is not None:
                self._db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'output_length'",
                    (json.dumps(output_length),),
                )
            if server_limit is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('server_limit', ?)",
                    (server_limit.to_json(),),
                )
            self._db.execute(
                "UPDATE meta SET value = ? WHERE key = 'updated_at'", (json.dumps(now),)
            )

    def counts(self) -> CheckpointCounts:
        """IDs, batches and events by state, over every run."""
        found = {
            state: (ids or 0, batches, events or 0)
            for state, ids, batches, events in self._db.execute(
                "SELECT state, SUM(ids), COUNT(*), SUM(events) FROM batches GROUP BY state"
            )
        }
        done = found.get("done", (0, 0, 0))
        failed = found.get("failed", (0, 0, 0))
        return CheckpointCounts(
            done_ids=done[0],
            failed_ids=failed[0],
            done_batches=done[1],
            failed_batches=failed[1],
            events=done[2],
        )

    def failed_batches(self) -> Iterator[FailedBatchRecord]:
        """The failed batches, in input order, with their IDs and error."""
        cursor = self._db.execute(
            "SELECT position, prospect_ids, status, error, correlation_id, attempts "
            "FROM batches WHERE state = 'failed' ORDER BY position"
        )
        for position, ids, status, error, correlation_id, attempts in cursor:
            yield FailedBatchRecord(
                position=position,
                prospect_ids=tuple(ids.split("\n")) if ids else (),
                status=status,
                error=error or "",
                correlation_id=correlation_id,
                attempts=attempts,
            )


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an error (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
