"""BatchStream: the results of a pull, one per batch, as each completes.

Workers (``max_concurrency`` of them) take batches from the lazily read input and run
each through the client's BatchRunner; the consumer gets the results in the order they
complete, with duplicates within and across batches dropped (in one pass, by the
worker, against the stream's one EventDeduper) and the stats kept up to date.
``collect`` consumes a stream whole into the FetchResult that ``fetch`` returns.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Generic, Self

from ._engine import BatchRunner
from ._entity import PROSPECT, Entity
from ._errors import (
    AuthenticationError,
    FetchError,
    InvalidIdError,
    ServerUnavailableError,
)
from ._ids import IdStream, chunked
from ._merge import EventDeduper, newest_first
from ._query import Query
from ._results import (
    BatchFailure,
    BatchResult,
    E,
    FetchResult,
    FetchStats,
    InvalidProspectId,
    batch_failure,
)


class _Done:
    """A worker has no more batches."""


class BatchStream(Generic[E]):
    """The results of a pull, one per batch, in the order they complete.

    ``BatchStream[Event]`` for prospects, ``BatchStream[BusinessEvent]`` for businesses.

    Iterate it with ``async for``; use it as an async context manager (or call
    ``aclose()``) to stop early and cancel what is left deterministically. ``stats``
    and ``invalid`` fill in as it runs.
    """

    def __init__(
        self,
        runner: BatchRunner,
        ids: IdStream,
        query: Query,
        batch_size: int,
        entity: Entity[E] = PROSPECT,  # type: ignore[assignment]
    ) -> None:
        self._runner = runner
        self._entity: Entity[E] = entity
        self._ids = ids
        self._batches: Iterator[tuple[str, ...]] = chunked(ids, batch_size)
        self._query = query
        self._taken: dict[int, tuple[str, ...]] = {}
        # A weak reference: the workers hold this stream, so a strong one would keep the
        # generator alive after a bare `break`, and its finaliser (the clean-up) never runs.
        self._iterator: weakref.ref[AsyncGenerator[BatchResult[E], None]] | None = None
        self._queue: asyncio.Queue[Any] | None = None
        self._deduper = EventDeduper()
        self.stats = FetchStats()

    @property
    def invalid(self) -> list[InvalidProspectId]:
        """Input values skipped as invalid so far."""
        return self._ids.invalid

    def unfinished(self) -> Iterator[tuple[str, ...]]:
        """After a fatal error: the batches that were taken but not finished, then the rest.

        Results that arrived but were not yet handed out count as not finished too.
        """
        queue = self._queue
        while queue is not None and not queue.empty():
            item = queue.get_nowait()
            if isinstance(item, BatchResult):
                yield item.prospect_ids
        yield from self._taken.values()
        self._taken.clear()
        yield from self._batches
        # Reading the rest met new IDs and repeats too: the books at the end count them.
        self.stats.ids = self._ids.unique
        self.stats.duplicate_ids = self._ids.duplicates
        self.stats.invalid_ids = len(self._ids.invalid)

    def __aiter__(self) -> AsyncIterator[BatchResult[E]]:
        if self._iterator is not None:
            raise RuntimeError("a BatchStream can be iterated only once")
        iterator = self._run()
        self._iterator = weakref.ref(iterator)
        return iterator

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop: cancel the requests in flight and wait for them. Idempotent."""
        iterator = self._iterator() if self._iterator is not None else None
        if iterator is not None:
            await iterator.aclose()

    async def _work(self, number: int, queue: asyncio.Queue[Any], room: asyncio.Semaphore) -> None:
        try:
            while True:
                # Backpressure: a batch is taken only when its result will have room.
                await room.acquire()
                batch = next(self._batches, None)
                if batch is None:
                    break
                self._taken[number] = batch
                result = await self._runner.run_batch(
                    batch, self._query, self.stats, self._entity, self._deduper
                )
                queue.put_nowait(result)
                del self._taken[number]
        except Exception as exc:  # fatal for the whole stream; the consumer re-raises it
            queue.put_nowait(exc)
        else:
            queue.put_nowait(_Done())

    async def _run(self) -> AsyncGenerator[BatchResult[E], None]:
        runner = self._runner
        runner.check_open()
        clock = runner.clock
        started = clock.monotonic()
        worker_count = runner.max_concurrency
        # Unbounded, so that an abort always fits; `room` bounds the results waiting: as
        # many as there are workers, so that a worker whose answer is in sends its next
        # request at once rather than after the consumer's turn on the loop (about 1% of
        # a pull at concurrency 16 and 32 in benchmarks/latency.py), and a consumer that
        # works on each batch overlaps the requests instead of holding them back.
        queue: asyncio.Queue[Any] = asyncio.Queue()
        room = asyncio.Semaphore(2 * worker_count)
        self._queue = queue
        workers = [
            runner.track(
                asyncio.create_task(
                    self._work(number, queue, room), name=f"explorium-events-worker-{number}"
                )
            )
            for number in range(worker_count)
        ]
        # A closing client puts ClientClosedError in the queue: the consumer re-raises it.
        runner.add_stream(queue)
        stats = self.stats
        try:
            remaining = worker_count
            while remaining:
                item = await queue.get()
                if isinstance(item, _Done):
                    remaining -= 1
                    continue
                if isinstance(item, BaseException):
                    raise item
                room.release()
                result: BatchResult[E] = item
                stats.batches += 1
                stats.failed_batches += result.failure is not None
                stats.events += len(result.events)
                stats.ids = self._ids.unique
                stats.duplicate_ids = self._ids.duplicates
                stats.invalid_ids = len(self._ids.invalid)
                stats.elapsed = clock.monotonic() - started
                yield result
            if self._ids.error is not None:
                # A one-shot input stopped at an invalid value: the IDs before it are done.
                raise self._ids.error
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            runner.discard_stream(queue)
            # self._queue stays: after a fatal error, unfinished() hands back the results
            # other workers queued behind it (their IDs would be in no state otherwise).
            stats.ids = self._ids.unique
            stats.duplicate_ids = self._ids.duplicates
            stats.invalid_ids = len(self._ids.invalid)
            stats.elapsed = clock.monotonic() - started


async def collect(stream: BatchStream[E], *, raise_on_error: bool) -> FetchResult[E]:
    """Consume ``stream`` whole into a FetchResult: what ``EventsClient.fetch`` returns.

    Every ID ends in exactly one of succeeded, failed and invalid: after a rejected key or
    ServerUnavailableError, the batches not yet done fail with that error. Raises
    InvalidIdError (an iterator's invalid value) and FetchError (failed batches,
    unless ``raise_on_error`` is false), each carrying the result.
    """
    events: list[E] = []
    failed: list[BatchFailure] = []
    succeeded: list[str] = []
    stopped: InvalidIdError | None = None
    async with stream:
        try:
            async for batch in stream:
                if batch.failure is None:
                    events.extend(batch.events)
                    succeeded.extend(batch.prospect_ids)
                else:
                    failed.append(batch.failure)
        except InvalidIdError as invalid:
            stopped = invalid
        except (AuthenticationError, ServerUnavailableError) as fatal:
            # Nothing more can succeed with this key (or from this server): every batch
            # not yet done fails with the same error, so that no ID goes unaccounted for.
            for batch_ids in stream.unfinished():
                failed.append(batch_failure(batch_ids, fatal, attempts=0))
                stream.stats.failed_batches += 1
                stream.stats.batches += 1
    result = FetchResult(
        events=newest_first(events),
        failed=failed,
        invalid=list(stream.invalid),
        succeeded=succeeded,
        stats=stream.stats,
    )
    if stopped is not None:
        stopped.result = result
        raise stopped
    if failed and raise_on_error:
        raise FetchError(result) from failed[0].error
    return result
