"""One run of a pull: batches through the client, each written, committed and counted once.

``pull()`` (``_bulk``) sets a run up: the input read, the output and checkpoint opened.
A run then feeds the IDs through the client in segments and keeps the books:

- **Exactly once.** Events are written as each batch arrives; about once a second (and at
  the end, and when stopped) the output is made durable (flush + fsync, or commit) and
  only then are those batches marked done, together with the output's durable length.
  A JSONL or CSV output is cut back to that length on resume, so events of batches that
  were written but not yet marked are dropped before those batches run again. An SQLite
  output upserts by event_id, so a batch written twice is still one row per event.
- **Nothing unaccounted.** Each batch ends done, failed (recorded for ``retry_failed``),
  or, without a checkpoint, handed to ``on_unfinished``; the summary counts them all.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

from ._bulk_input import Scan, Segment, batches_to_do
from ._checkpoint import (
    STATE_DONE,
    STATE_FAILED,
    STATE_PENDING,
    Checkpoint,
    FinishedBatch,
)
from ._client import EventsClient
from ._entity_client import EntityEvents
from ._errors import OutputWriteError, ServerUnavailableError
from ._query import Query
from ._ratelimit_types import ServerLimit
from ._results import BatchResult, FetchStats, PullSummary
from ._results import batch_failure as _failure
from ._sinks import PullOutput

logger = logging.getLogger("explorium_events")

SEGMENT_BATCHES = 1024  # batches per client.stream(): bounds the client's own seen-sets
COMMIT_INTERVAL = 1.0  # seconds between durable flushes + checkpoint commits
COMMIT_BATCHES = 256  # ... or this many finished batches, whichever comes first


class _Run:
    """One run of a pull: feeds batches through the client, writes, commits."""

    def __init__(
        self,
        *,
        client: EventsClient,
        view: EntityEvents[Any],
        query: Query,
        checkpoint: Checkpoint | None,
        output: PullOutput,
        scan: Scan,
        retry_failed: bool,
        progress: Callable[[PullSummary], None] | None,
        commit_interval: float,
        on_batch: Callable[[FinishedBatch], None] | None = None,
        on_unfinished: Callable[[tuple[str, ...]], None] | None = None,
    ) -> None:
        self._client = client
        self._view = view
        self._query = query
        self._checkpoint = checkpoint
        self._output = output
        self._scan = scan
        self._retry_failed = retry_failed
        self._progress = progress
        self._commit_interval = commit_interval
        self._on_batch = on_batch
        self._on_unfinished = on_unfinished
        # Without a checkpoint every batch is new: no states, nothing done before.
        self._states = checkpoint.states() if checkpoint is not None else bytearray()
        self._done = self._failed = self._failed_batches = self._events_total = 0
        if checkpoint is not None:
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
        self._writing: tuple[str, ...] = ()  # the batch being written, until it is
        self._taken_back: list[tuple[str, ...]] = []  # done batches a failed flush undid
        self._taken: dict[str, int] = {}
        self._clock = client.clock
        self._started = self._clock.monotonic()
        self._last_commit = self._started
        self.interrupted = False

    async def go(self, ids: Iterator[str]) -> None:
        todo = batches_to_do(
            ids, self._states, self._client.batch_size, retry_failed=self._retry_failed
        )
        query = self._query
        try:
            self._report()
            while True:
                segment = Segment(todo, SEGMENT_BATCHES, self._taken)
                stream = self._view.stream(
                    segment.ids(),
                    event_types=query.event_types,
                    timestamp_from=query.timestamp_from,
                    timestamp_to=query.timestamp_to,
                    skip_invalid=True,  # already checked: skips nothing, reads lazily
                )
                self._live = stream.stats
                try:
                    async with stream:
                        try:
                            async for result in stream:
                                self._finish(result)
                        except ServerUnavailableError as error:
                            self._fail_the_rest(error, stream.unfinished(), todo)
                            raise
                        except Exception:
                            self._hand_back(stream.unfinished(), todo)
                            raise
                finally:
                    self._live = None
                    _add(self._stats, stream.stats)
                if segment.exhausted:
                    break
        except BaseException:
            # Also when cancelled or failing (a full disk): what is durably written and
            # finished gets recorded. If that fails too, the first error is the one to tell.
            try:
                self._commit()
            except OutputWriteError as exc:
                logger.warning("the checkpoint was not updated after the failure: %s", exc)
                self._hand_back(iter(()), iter(()))  # the batches that flush took back
            raise
        try:
            self._commit()
        except OutputWriteError:
            self._hand_back(iter(()), todo)
            raise

    def _hand_back(
        self,
        unfinished: Iterator[tuple[str, ...]],
        todo: Iterator[tuple[int, tuple[str, ...]]],
    ) -> None:
        """Without a checkpoint, after an error: every batch not done goes to ``on_unfinished``.

        A checkpointed run leaves them pending instead, for the rerun. This reads the rest
        of the input, so that the summary reported next counts all of it.
        """
        if self._checkpoint is not None or self._on_unfinished is None:
            self._report()  # the counts as the error left them (the requests it took)
            return
        writing = [self._writing] if self._writing else []
        self._writing = ()
        for batch in (*self._taken_back, *writing):
            self._on_unfinished(batch)
        self._taken_back = []
        for batch in unfinished:
            self._on_unfinished(batch)
        for _position, batch in todo:
            self._on_unfinished(batch)
        self._report()

    def _fail_the_rest(
        self,
        error: ServerUnavailableError,
        unfinished: Iterator[tuple[str, ...]],
        todo: Iterator[tuple[int, tuple[str, ...]]],
    ) -> None:
        """Record every batch not yet done as failed by ``error``, for --retry-failed."""
        for batch in unfinished:
            self._finish(_failed_result(batch, error))
        for position, batch in todo:
            self._taken[batch[0]] = position
            self._finish(_failed_result(batch, error))

    def _finish(self, result: BatchResult[Any]) -> None:
        position = self._taken.pop(result.prospect_ids[0])
        size = len(result.prospect_ids)
        previous = self._states[position] if position < len(self._states) else STATE_PENDING
        failure = result.failure
        if failure is None:
            self._writing = result.prospect_ids
            self._output.write(result.events)
            self._writing = ()
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
            self._set_state(position, STATE_DONE)
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
            self._set_state(position, STATE_FAILED)
        if previous == STATE_FAILED:
            self._failed -= size
            self._failed_batches -= 1
        self._batches_run += 1
        self._pending.append(record)
        if (
            len(self._pending) >= COMMIT_BATCHES
            or self._clock.monotonic() - self._last_commit >= self._commit_interval
        ):
            self._commit()
        self._report()

    def _commit(self) -> None:
        if not self._pending:
            return
        # Only a flush that succeeded says the pending batches are durable; if it raises,
        # nothing is recorded and those batches run again on resume.
        try:
            length = self._output.flush()
        except OutputWriteError:
            if self._checkpoint is None:
                self._take_back_undurable()
            raise
        if self._checkpoint is not None:
            try:
                learned = ServerLimit.of(self._client.rate_limit_state())
                self._checkpoint.record(self._pending, output_length=length, server_limit=learned)
            except sqlite3.Error as exc:  # the checkpoint's own disk is full, say
                raise OutputWriteError(self._checkpoint.path, exc) from exc
        records, self._pending = self._pending, []
        self._last_commit = self._clock.monotonic()
        self._tell(records)

    def _take_back_undurable(self) -> None:
        """Without a checkpoint, a flush failed: the done batches since the last one are not.

        Their events are cut from the output where it can be (a file), they leave the
        counts, and they wait in ``_taken_back`` for ``on_unfinished``; the failed ones
        stay failed.
        """
        self._output.discard_undurable()
        failed = []
        for record in self._pending:
            if record.failed:
                failed.append(record)
                continue
            self._done -= len(record.prospect_ids)
            self._events_total -= record.events
            self._events_written -= record.events
            self._batches_run -= 1
            self._taken_back.append(record.prospect_ids)
        self._pending = []
        self._tell(failed)

    def _tell(self, records: list[FinishedBatch]) -> None:
        if self._on_batch is not None:
            for record in records:
                self._on_batch(record)

    def _set_state(self, position: int, state: int) -> None:
        if position < len(self._states):  # else no checkpoint: nothing to resume from
            self._states[position] = state

    def _report(self) -> None:
        if self._progress is not None:
            self._progress(self.summary())

    def summary(self, *, interrupted: bool = False, checkpoint: str | None = None) -> PullSummary:
        """Where the pull stands now (``interrupted`` and ``checkpoint`` as given, if given)."""
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
            elapsed=self._clock.monotonic() - self._started,
            interrupted=self.interrupted or interrupted,
            checkpoint=checkpoint
            if checkpoint is not None
            else (self._checkpoint.path if self._checkpoint is not None else ""),
            output=self._output.name,
            invalid_examples=tuple(scan.examples),
        )


def _failed_result(batch: tuple[str, ...], error: ServerUnavailableError) -> BatchResult[Any]:
    return BatchResult(
        prospect_ids=batch,
        events=(),
        failure=_failure(batch, error, attempts=0),
        attempts=0,
        correlation_id=error.correlation_id,
    )


def _add(total: FetchStats, part: FetchStats) -> None:
    total.requests += part.requests
    total.retries += part.retries
    total.rate_limited += part.rate_limited
    total.duplicates_dropped += part.duplicates_dropped
