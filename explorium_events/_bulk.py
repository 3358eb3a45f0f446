"""Bulk pulls: millions of prospect IDs into a file or a database, resumable, exactly once.

    async with EventsClient() as client:
        summary = await pull(client, "ids.txt", "events.jsonl", "events.checkpoint")

How it holds together:

- **Resumable.** The input is read twice: a scan fingerprints the deduplicated stream of
  valid IDs and counts the input; the pull then reads it again, in batches numbered by
  position in that stream. The checkpoint (``_checkpoint.py``) records each finished
  batch; a rerun skips what is done and does the rest. A checkpoint refuses a pull with
  a different input, query or output.
- **Exactly once.** Events are written as each batch arrives; about once a second (and at
  the end, and when stopped) the output is made durable (flush + fsync, or commit) and
  only then are those batches marked done, together with the output's durable length.
  A JSONL or CSV output is cut back to that length on resume, so events of batches that
  were written but not yet marked are dropped before those batches run again. An SQLite
  output upserts by event_id, so a batch written twice is still one row per event.
- **Bounded memory.** IDs stream from the input; the scan's seen-set keeps 20-byte
  digests packed in byte buckets (about 25 bytes an ID); the client works through the
  input in segments, so its own per-stream seen-sets stay small; no events are kept
  beyond the batch being written.
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from ._accounting import unaccounted
from ._checkpoint import (
    STATE_DONE,
    STATE_FAILED,
    STATE_PENDING,
    Checkpoint,
    FinishedBatch,
    InputTotals,
    PullSpec,
)
from ._client import BatchResult, EventsClient, FetchStats
from ._digests import DigestSet
from ._errors import ConfigurationError, InvalidProspectIdError
from ._formats import format_for
from ._ids import (
    PROSPECT_ID_RULE,
    InvalidProspectId,
    chunked,
    invalid_reason,
    normalize_prospect_id,
)
from ._models import Event, EventType
from ._paths import read_once
from ._query import Query, Timestamp, build_query
from ._sqlite_sink import SqliteSink

logger = logging.getLogger("explorium_events")
_T = TypeVar("_T")

SEGMENT_BATCHES = 1024  # batches per client.stream(): bounds the client's own seen-sets
COMMIT_INTERVAL = 1.0  # seconds between durable flushes + checkpoint commits
COMMIT_BATCHES = 256  # ... or this many finished batches, whichever comes first
_SCAN_YIELD_EVERY = 20_000  # values between yields to the event loop while scanning
_EXAMPLES = 5


@runtime_checkable
class EventSink(Protocol):
    """Where a pull writes events: anything with these three methods.

    A sink of your own (a database, a queue) may receive a batch's events again after
    a crash, so make ``write`` idempotent by ``event_id`` (an upsert), as SqliteSink does.
    """

    def write(self, events: Sequence[Event]) -> object:
        """Write one batch's events."""
        ...

    def flush_durably(self) -> None:
        """Make everything written so far survive a crash (fsync, or commit)."""
        ...

    def close(self) -> None:
        """Flush and release the output."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PullSummary:
    """Where a pull stands: every input value is in exactly one state.

    ``done + failed + not_tried + invalid + duplicates == input_values``. ``done`` and
    ``failed`` count over every run of the pull; ``events_written``, ``requests`` and
    the like count this run only.
    """

    input_values: int
    unique_ids: int
    done: int
    failed: int
    not_tried: int
    invalid: int
    duplicates: int
    failed_batches: int
    events_total: int
    events_written: int
    batches_run: int
    requests: int
    retries: int
    rate_limited: int
    duplicates_dropped: int
    elapsed: float
    interrupted: bool
    checkpoint: str
    output: str
    invalid_examples: tuple[InvalidProspectId, ...] = ()

    @property
    def unaccounted(self) -> int:
        """Input values neither done, failed, invalid nor a repeat: what is left, or was lost.

        After a run that was not interrupted this must be 0 (see ``_accounting.py``).
        """
        return unaccounted(
            values=self.input_values,
            repeated=self.duplicates,
            invalid=self.invalid,
            succeeded=self.done,
            failed=self.failed,
        )

    @property
    def complete(self) -> bool:
        """Whether every unique valid ID is done: nothing failed, nothing left or lost."""
        return self.failed == 0 and self.not_tried == 0 and self.unaccounted == 0


# ---------------------------------------------------------------------------------------
# The input


def _valid(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    normalized = normalize_prospect_id(value)
    return normalized if invalid_reason(normalized) is None else None


class _Source:
    """The input: a file with one ID per line, or an iterable that can be read twice."""

    def __init__(self, prospect_ids: str | os.PathLike[str] | Iterable[str]) -> None:
        self._path: str | None = None
        self._iterable: Iterable[str] | None = None
        if isinstance(prospect_ids, str | os.PathLike):
            self._path = os.fspath(prospect_ids)
            once = read_once(self._path)
            if once is not None:
                # Its second reading would find it empty (a pipe), or wait forever (a FIFO).
                raise ConfigurationError(
                    f"{self._path} is {once}, which can be read only once; a bulk pull reads "
                    "its input twice (to fingerprint it, then to pull) and again on resume. "
                    "Save the IDs to a file first (e.g. `cat ... > ids.txt`) and pass its "
                    "path, or pass a list"
                )
            if not os.path.isfile(self._path):
                raise ConfigurationError(f"{self._path}: no such file of prospect IDs")
            self.name = self._path
        elif isinstance(prospect_ids, Iterator | bytes):
            raise ConfigurationError(
                "a bulk pull reads its input twice (to fingerprint it, then to pull), and "
                "again on resume: pass a file path or a re-iterable collection such as a "
                "list, not a one-shot iterator"
            )
        else:
            self._iterable = prospect_ids
            self.name = f"<{type(prospect_ids).__name__}>"

    def values(self) -> Iterator[tuple[int, object]]:
        """(where, value): a file's line number (blank lines skipped), else the 0-based index."""
        if self._path is not None:
            with open(self._path, encoding="utf-8-sig") as lines:
                try:
                    for number, line in enumerate(lines, 1):
                        text = line.strip()
                        if text:
                            yield number, text
                except UnicodeDecodeError as exc:
                    # Not an ExploriumError, and it would not say which file.
                    raise ConfigurationError(
                        f"{self._path} is not UTF-8 text ({exc.reason}): save it as UTF-8"
                    ) from None
        else:
            assert self._iterable is not None
            yield from enumerate(self._iterable)


@dataclass(slots=True)
class _Scan:
    fingerprint: str = ""
    values: int = 0
    unique: int = 0
    invalid: int = 0
    duplicates: int = 0
    examples: list[InvalidProspectId] = field(default_factory=list)
    # Indexes (among the input's values) of repeats: the pull skips them without a set.
    repeats: array.array[int] = field(default_factory=lambda: array.array("q"))


async def _scan(source: _Source) -> _Scan:
    """Fingerprint and count the input; yields to the loop now and then, so it can be stopped."""
    scan = _Scan()
    seen = DigestSet()
    fingerprint = hashlib.sha256()
    index = -1
    for index, (where, value) in enumerate(source.values()):
        if index % _SCAN_YIELD_EVERY == 0:
            await asyncio.sleep(0)
        normalized = _valid(value)
        if normalized is None:
            scan.invalid += 1
            if len(scan.examples) < _EXAMPLES:
                reason = invalid_reason(value.strip().lower() if isinstance(value, str) else value)
                scan.examples.append(InvalidProspectId(str(value), where, reason or "invalid"))
            continue
        digest = bytes.fromhex(normalized)
        if not seen.add(digest):
            scan.duplicates += 1
            scan.repeats.append(index)
            continue
        fingerprint.update(digest)
        scan.unique += 1
    scan.values = index + 1
    scan.fingerprint = fingerprint.hexdigest()
    return scan


def _unique_ids(source: _Source, scan: _Scan) -> Iterator[str]:
    """The input's valid IDs, normalised, each once, in the scan's order."""
    repeats = iter(scan.repeats)
    skip = next(repeats, -1)
    fingerprint = hashlib.sha256()
    for index, (_where, value) in enumerate(source.values()):
        if index == skip:
            skip = next(repeats, -1)
            continue
        normalized = _valid(value)
        if normalized is None:
            continue
        fingerprint.update(bytes.fromhex(normalized))
        yield normalized
    if fingerprint.hexdigest() != scan.fingerprint:
        raise ConfigurationError(
            f"{source.name} changed while it was being pulled; the checkpoint no longer "
            "matches it. Restore the input and rerun, or start anew with a new checkpoint"
        )


def _todo(
    ids: Iterator[str], states: bytearray, batch_size: int, *, retry_failed: bool
) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(position, IDs) of the batches this run must fetch."""
    for position, batch in enumerate(chunked(ids, batch_size)):
        state = states[position] if position < len(states) else STATE_PENDING
        if state == STATE_DONE or (state == STATE_FAILED and not retry_failed):
            continue
        yield position, batch


class _Segment:
    """Up to ``limit`` batches of the to-do list, as the flat ID stream client.stream() takes.

    Every batch but the input's last is exactly batch_size long, so the client's own
    chunking yields the same batches; ``taken`` maps each batch's first ID to its position.
    """

    def __init__(
        self, todo: Iterator[tuple[int, tuple[str, ...]]], limit: int, taken: dict[str, int]
    ) -> None:
        self._todo = todo
        self._limit = limit
        self._taken = taken
        self.exhausted = False

    def ids(self) -> Iterator[str]:
        for _ in range(self._limit):
            item = next(self._todo, None)
            if item is None:
                self.exhausted = True
                return
            position, batch = item
            self._taken[batch[0]] = position
            yield from batch


# ---------------------------------------------------------------------------------------
# The output


class _Output:
    """A pull's output: opened for the checkpoint's state, flushed durably before each commit."""

    name: str
    format: str

    def open(self, checkpoint: Checkpoint) -> None:
        raise NotImplementedError

    def write(self, events: Sequence[Event]) -> None:
        raise NotImplementedError

    def flush(self) -> int | None:
        """Make the output durable; its length in bytes when it is append-only."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _FileOutput(_Output):
    """JSONL or CSV: appended to, and cut back to the checkpointed length on resume."""

    def __init__(self, path: str, fmt: str) -> None:
        self.name = os.path.abspath(path)
        self.format = fmt
        self._sink: EventSink | None = None

    def open(self, checkpoint: Checkpoint) -> None:
        # The CLI's sinks: imported here because that module imports the package.
        from ._output import open_sink

        length = 0 if checkpoint.new else checkpoint.output_length
        if length == 0:
            self._sink = open_sink(self.name, self.format, append=False)
            return
        try:
            size = os.path.getsize(self.name)
        except FileNotFoundError:
            size = -1
        if size < length:
            found = "is missing" if size < 0 else f"holds {size:,} bytes"
            raise ConfigurationError(
                f"the output {self.name} {found}, but the checkpoint {checkpoint.path} "
                f"recorded {length:,} bytes of finished batches: it was moved, replaced or "
                "cut. Restore it, or start anew with a new checkpoint"
            )
        if size > length:
            # Events of batches written after the last commit: those batches run again.
            logger.info(
                "%s: dropping %d bytes written after the last checkpoint", self.name, size - length
            )
            os.truncate(self.name, length)
        self._sink = open_sink(self.name, self.format, append=True)

    def write(self, events: Sequence[Event]) -> None:
        assert self._sink is not None
        self._sink.write(events)

    def flush(self) -> int:
        assert self._sink is not None
        self._sink.flush_durably()
        return os.path.getsize(self.name)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()


class _SqliteOutput(_Output):
    """An SQLite file: rows upserted by event_id, so a batch written twice stays one row each."""

    def __init__(self, path: str) -> None:
        self.name = os.path.abspath(path)
        self.format = "sqlite"
        self._sink: SqliteSink | None = None

    def open(self, checkpoint: Checkpoint) -> None:
        if (
            not checkpoint.new
            and checkpoint.counts().done_batches
            and not os.path.exists(self.name)
        ):
            raise ConfigurationError(
                f"the output {self.name} is missing, but the checkpoint {checkpoint.path} "
                "has finished batches in it. Restore it, or start anew with a new checkpoint"
            )
        self._sink = SqliteSink(self.name)

    def write(self, events: Sequence[Event]) -> None:
        assert self._sink is not None
        self._sink.write(events)

    def flush(self) -> None:
        assert self._sink is not None
        self._sink.flush_durably()

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()


class _CustomOutput(_Output):
    """The caller's own sink: flushed by the pull, closed by the caller."""

    def __init__(self, sink: EventSink) -> None:
        kind = type(sink)
        self.name = getattr(sink, "name", None) or f"{kind.__module__}.{kind.__qualname__}"
        self.format = str(getattr(sink, "format", "") or "custom")
        self._sink = sink

    def open(self, checkpoint: Checkpoint) -> None:
        pass

    def write(self, events: Sequence[Event]) -> None:
        self._sink.write(events)

    def flush(self) -> None:
        self._sink.flush_durably()

    def close(self) -> None:
        pass


def _output_for(out: str | os.PathLike[str] | EventSink, fmt: str | None) -> _Output:
    if isinstance(out, str | os.PathLike):
        chosen = format_for(out, fmt)
        path = os.fspath(out)
        return _SqliteOutput(path) if chosen == "sqlite" else _FileOutput(path, chosen)
    if isinstance(out, EventSink):
        return _CustomOutput(out)
    raise ConfigurationError(
        f"out={out!r}: give an output path or a sink with write, flush_durably and close"
    )


# ---------------------------------------------------------------------------------------
# The pull


class _Run:
    """One run of a pull: feeds batches through the client, writes, commits."""

    def __init__(
        self,
        *,
        client: EventsClient,
        query: Query,
        checkpoint: Checkpoint,
        output: _Output,
        scan: _Scan,
        retry_failed: bool,
        progress: Callable[[PullSummary], None] | None,
        commit_interval: float,
    ) -> None:
        self._client = client
        self._query = query
        self._checkpoint = checkpoint
        self._output = output
        self._scan = scan
        self._retry_failed = retry_failed
        self._progress = progress
        self._commit_interval = commit_interval
        self._states = checkpoint.states()
        counts = checkpoint.counts()
        self._done = counts.done_ids
        self._failed = counts.failed_ids
        self._failed_batches = counts.failed_batches
        self._events_total = counts.events
        self._events_written = 0
        self._batches_run = 0
        self._stats = FetchStats()
        self._live: FetchStats | None = None
        self._pending: list[FinishedBatch] = []
        self._taken: dict[str, int] = {}
        self._started = time.monotonic()
        self._last_commit = self._started
        self.interrupted = False

    async def go(self, ids: Iterator[str]) -> None:
        todo = _todo(
            ids, self._states, self._checkpoint.spec.batch_size, retry_failed=self._retry_failed
        )
        query = self._query
        try:
            self._report()
            while True:
                segment = _Segment(todo, SEGMENT_BATCHES, self._taken)
                stream = self._client.stream(
                    segment.ids(),
                    event_types=query.event_types,
                    timestamp_from=query.timestamp_from,
                    timestamp_to=query.timestamp_to,
                    skip_invalid=True,  # already checked: skips nothing, reads lazily
                )
                self._live = stream.stats
                try:
                    async with stream:
                        async for result in stream:
                            self._finish(result)
                finally:
                    self._live = None
                    _add(self._stats, stream.stats)
                if segment.exhausted:
                    break
        finally:
            # Also when cancelled or failing: what is written and finished gets recorded.
            self._commit()

    def _finish(self, result: BatchResult) -> None:
        position = self._taken.pop(result.prospect_ids[0])
        size = len(result.prospect_ids)
        previous = self._states[position]
        failure = result.failure
        if failure is None:
            self._output.write(result.events)
            count = len(result.events)
            record = FinishedBatch(
                position=position,
                prospect_ids=result.prospect_ids,
                events=count,
                attempts=result.attempts,
            )
            self._done += size
            self._events_total += count
            self._events_written += count
            self._states[position] = STATE_DONE
        else:
            record = FinishedBatch(
                position=position,
                prospect_ids=result.prospect_ids,
                attempts=result.attempts,
                failed=True,
                status=failure.status,
                error=str(failure.error),
                correlation_id=failure.correlation_id,
            )
            self._failed += size
            self._failed_batches += 1
            self._states[position] = STATE_FAILED
        if previous == STATE_FAILED:
            self._failed -= size
            self._failed_batches -= 1
        self._batches_run += 1
        self._pending.append(record)
        if (
            len(self._pending) >= COMMIT_BATCHES
            or time.monotonic() - self._last_commit >= self._commit_interval
        ):
            self._commit()
        self._report()

    def _commit(self) -> None:
        if not self._pending:
            return
        length = self._output.flush()
        self._checkpoint.record(self._pending, output_length=length)
        self._pending = []
        self._last_commit = time.monotonic()

    def _report(self) -> None:
        if self._progress is not None:
            self._progress(self.summary())

    def summary(self) -> PullSummary:
        """Where the pull stands now."""
        stats = FetchStats()
        _add(stats, self._stats)
        if self._live is not None:
            _add(stats, self._live)
        scan = self._scan
        return PullSummary(
            input_values=scan.values,
            unique_ids=scan.unique,
            done=self._done,
            failed=self._failed,
            not_tried=scan.unique - self._done - self._failed,
            invalid=scan.invalid,
            duplicates=scan.duplicates,
            failed_batches=self._failed_batches,
            events_total=self._events_total,
            events_written=self._events_written,
            batches_run=self._batches_run,
            requests=stats.requests,
            retries=stats.retries,
            rate_limited=stats.rate_limited,
            duplicates_dropped=stats.duplicates_dropped,
            elapsed=time.monotonic() - self._started,
            interrupted=self.interrupted,
            checkpoint=self._checkpoint.path,
            output=self._output.name,
            invalid_examples=tuple(scan.examples),
        )


def _add(total: FetchStats, part: FetchStats) -> None:
    total.requests += part.requests
    total.retries += part.retries
    total.rate_limited += part.rate_limited
    total.duplicates_dropped += part.duplicates_dropped


async def pull(
    client: EventsClient,
    prospect_ids: str | os.PathLike[str] | Iterable[str],
    out: str | os.PathLike[str] | EventSink,
    checkpoint: str | os.PathLike[str],
    *,
    format: str | None = None,
    event_types: Iterable[EventType | str] | None = None,
    timestamp_from: Timestamp | None = None,
    timestamp_to: Timestamp | None = None,
    skip_invalid: bool = False,
    retry_failed: bool = False,
    progress: Callable[[PullSummary], None] | None = None,
    stop: asyncio.Event | None = None,
    commit_interval: float = COMMIT_INTERVAL,
) -> PullSummary:
    """Pull the events of a large list of prospects into ``out``, resumably, exactly once.

    ``prospect_ids`` is a text file with one ID per line (a regular file: a pipe or FIFO
    cannot be read again, so it is refused), or a collection that can be read more than
    once (a list). ``out`` is a path (``.jsonl``, ``.csv``, or ``.db``
    for SQLite; or say ``format=``) or your own EventSink. ``checkpoint`` is the path of
    the pull's checkpoint: run the same call again after any interruption, a crash or
    ``kill -9`` included, and it carries on where the last durable commit left off.

    Batches that fail after their retries are recorded and skipped by later runs, unless
    ``retry_failed=True``, which retries exactly those (and does any not yet tried).
    ``progress`` is called with a PullSummary after every batch. Setting ``stop`` ends
    the run promptly: no new requests, the checkpoint committed, and the summary
    returned with ``interrupted=True``; cancelling the task also commits, then raises.

    Raises InvalidProspectIdError before any request when the input holds invalid IDs
    (unless ``skip_invalid``), CheckpointMismatchError when ``checkpoint`` belongs to a
    different pull, ConfigurationError when the output no longer matches the checkpoint,
    and AuthenticationError when the key is refused (what was done stays recorded).
    """
    query = build_query(event_types, timestamp_from, timestamp_to)
    source = _Source(prospect_ids)
    output = _output_for(out, format)
    scan, _ = await _until_stopped(_scan(source), stop)
    if scan is None:  # stopped before anything was sent: nothing to record
        return PullSummary(
            input_values=0,
            unique_ids=0,
            done=0,
            failed=0,
            not_tried=0,
            invalid=0,
            duplicates=0,
            failed_batches=0,
            events_total=0,
            events_written=0,
            batches_run=0,
            requests=0,
            retries=0,
            rate_limited=0,
            duplicates_dropped=0,
            elapsed=0.0,
            interrupted=True,
            checkpoint=os.fspath(checkpoint),
            output=output.name,
        )
    if scan.invalid and not skip_invalid:
        raise InvalidProspectIdError(
            [f"{example.value} (at {example.position})" for example in scan.examples],
            count=scan.invalid,
            rule=PROSPECT_ID_RULE,
        )
    spec = PullSpec(
        input_fingerprint=scan.fingerprint,
        unique_ids=scan.unique,
        event_types=tuple(sorted(query.event_types)),
        timestamp_from=query.timestamp_from,
        timestamp_to=query.timestamp_to,
        batch_size=client.batch_size,
        output=output.name,
        output_format=output.format,
    )
    with Checkpoint.open(checkpoint, spec) as ledger:
        ledger.set_input_totals(
            InputTotals(
                values=scan.values,
                unique=scan.unique,
                invalid=scan.invalid,
                duplicates=scan.duplicates,
                name=source.name,
            )
        )
        output.open(ledger)
        try:
            run = _Run(
                client=client,
                query=query,
                checkpoint=ledger,
                output=output,
                scan=scan,
                retry_failed=retry_failed,
                progress=progress,
                commit_interval=commit_interval,
            )
            _, run.interrupted = await _until_stopped(run.go(_unique_ids(source, scan)), stop)
        finally:
            output.close()
        return run.summary()


async def _until_stopped(
    work: Coroutine[Any, Any, _T], stop: asyncio.Event | None
) -> tuple[_T | None, bool]:
    """Run ``work`` to its end, or cancel it once ``stop`` is set: (its result, stopped)."""
    if stop is None:
        return await work, False
    task = asyncio.create_task(work, name="explorium-events-pull")
    stopper = asyncio.create_task(stop.wait(), name="explorium-events-pull-stop")
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for each in (task, stopper):
            each.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)
    if task.cancelled():
        return None, True
    return task.result(), False  # the work's own error, if it had one
