"""Automatic batching for single-ID awaits: many concurrent calls, few requests.

The DataLoader pattern. Each ``load(prospect_id, query)`` joins the open batch of its
query; a batch goes out when it holds ``batch_size`` IDs or when ``window`` seconds
have passed since its first ID arrived, whichever comes first. Calls for an ID and
query already waiting or in flight share that slot (single-flight). Batches are run by
the client's BatchRunner: the same limiter, concurrency limit and retry policy as
``fetch``. Answers can be kept for ``cache_ttl`` seconds, ``cache_size``
entries at most (least recently used leave first).

Every waiter awaits a shielded future, so a caller that is cancelled leaves the
request, and the other callers of its batch, untouched.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass, field
from typing import Any, Generic

from ._clock import Clock
from ._engine import BatchRunner
from ._entity import PROSPECT, Entity
from ._errors import ClientClosedError
from ._ids import invalid_reason, normalize_prospect_id
from ._query import Query
from ._results import AnyEvent, E, FetchStats
from ._settings import DEFAULT_CACHE_SIZE

logger = logging.getLogger("explorium_events")

Key = tuple[str, Query]
Answer = tuple[AnyEvent, ...]


class AnswerCache:
    """Answers per (ID, query) for ``ttl`` seconds on ``clock``; at most ``size``, LRU."""

    def __init__(self, *, ttl: float, size: int, clock: Clock) -> None:
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._entries: collections.OrderedDict[Key, tuple[float, Answer]] = (
            collections.OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Answer | None:
        """The answer kept for ``key``, or None when there is none or it expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, answer = entry
        if self._clock.monotonic() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return answer

    def put(self, key: Key, answer: Answer) -> None:
        """Keep ``answer`` for ``ttl`` seconds, dropping the least recently used if full."""
        self._entries[key] = (self._clock.monotonic() + self._ttl, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


@dataclass(slots=True)
class _OpenBatch:
    """IDs waiting for their batch to go, and the timer that sends it at the window's end."""

    ids: list[str] = field(default_factory=list)
    timer: asyncio.Task[None] | None = None


class Batcher(Generic[E]):
    """Gathers concurrent single-ID loads of one entity into batched requests.

    A client has one per entity, all on its one BatchRunner: a batch never mixes
    prospects with businesses, and both spend the same rate-limit budget. Binds to the
    loop lazily. Its settings are checked by the client (``_settings.check_client_settings``).
    """

    def __init__(
        self,
        *,
        runner: BatchRunner,
        stats: FetchStats,
        batch_size: int,
        window: float,
        cache_ttl: float | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        entity: Entity[E] = PROSPECT,  # type: ignore[assignment]
    ) -> None:
        self._entity: Entity[E] = entity
        # Its batches run there, and its timers and senders are tracked there: the
        # runner's aclose() cancels and drains whatever is left.
        self._runner = runner
        self._stats = stats
        self._batch_size = batch_size
        self._window = window
        self._clock = runner.clock
        self._cache = (
            AnswerCache(ttl=cache_ttl, size=cache_size, clock=runner.clock)
            if cache_ttl is not None
            else None
        )
        self._open: dict[Query, _OpenBatch] = {}
        # One future per (ID, query) waiting or in flight: the single-flight slots.
        self._slots: dict[Key, asyncio.Future[Answer]] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def waiting(self) -> int:
        """IDs waiting for their batch to go out."""
        return sum(len(batch.ids) for batch in self._open.values())

    @property
    def in_flight(self) -> int:
        """Batches sent and not yet answered."""
        return len(self._sending)

    async def load(self, prospect_id: str, query: Query) -> list[E]:
        """This ID's events for ``query``, newest first, from a shared batch."""
        if self._closed:
            raise ClientClosedError("this EventsClient is closed; create a new one")
        entity = self._entity
        normalized = normalize_prospect_id(prospect_id) if isinstance(prospect_id, str) else None
        if normalized is None or invalid_reason(normalized, entity=entity) is not None:
            raise entity.invalid_error([str(prospect_id)], count=1, rule=entity.id_rule)
        key = (normalized, query)
        if self._cache is not None and (cached := self._cache.get(key)) is not None:
            return self._typed(cached)
        slot = self._slots.get(key)
        if slot is None:
            slot = asyncio.get_running_loop().create_future()
            self._slots[key] = slot
            self._enqueue(normalized, query)
        # Shielded: a cancelled caller must not cancel the slot the others await.
        return self._typed(await asyncio.shield(slot))

    def _typed(self, answer: Answer) -> list[E]:
        # Every event in this batcher's answers is of its entity's kind.
        events: list[Any] = list(answer)
        return events

    def _enqueue(self, prospect_id: str, query: Query) -> None:
        batch = self._open.get(query)
        if batch is None:
            batch = self._open[query] = _OpenBatch()
        batch.ids.append(prospect_id)
        if len(batch.ids) >= self._batch_size:
            self._dispatch(query)
        elif batch.timer is None:
            timer = asyncio.create_task(
                self._send_after_window(query, batch), name="explorium-events-batch-window"
            )
            batch.timer = self._runner.track(timer)
            timer.add_done_callback(lambda task: self._after_timer(task, query, batch))

    async def _send_after_window(self, query: Query, batch: _OpenBatch) -> None:
        await self._clock.sleep(self._window)
        if self._open.get(query) is batch:
            self._dispatch(query)

    def _after_timer(self, task: asyncio.Task[None], query: Query, batch: _OpenBatch) -> None:
        # Cancelled with its batch still open (not by _dispatch): nobody will send it.
        if task.cancelled() and self._open.get(query) is batch:
            del self._open[query]
            self._fail(
                tuple(batch.ids),
                query,
                ClientClosedError("the EventsClient was closed before this request was sent"),
            )

    def _dispatch(self, query: Query) -> None:
        batch = self._open.pop(query)
        timer = batch.timer
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        ids = tuple(batch.ids)
        sender = self._runner.track(
            asyncio.create_task(self._send(ids, query), name="explorium-events-batch")
        )
        self._sending.add(sender)
        sender.add_done_callback(self._sending.discard)
        # A callback, not an except clause: a task cancelled before its first step never
        # enters its body, and its callers must not wait forever.
        sender.add_done_callback(lambda task: self._after_cancel(task, ids, query))

    async def _send(self, batch: tuple[str, ...], query: Query) -> None:
        try:
            result = await self._runner.run_batch(batch, query, self._stats, self._entity)
        except Exception as error:  # e.g. AuthenticationError: raised as is to each caller
            self._fail(batch, query, error)
            return
        self._stats.batches += 1
        if result.failure is not None:
            self._stats.failed_batches += 1
            self._fail(batch, query, result.failure.error)
            return
        found: dict[str, list[AnyEvent]] = {prospect_id: [] for prospect_id in batch}
        for event in result.events:  # already newest first; grouping keeps the order
            events = found.get(normalize_prospect_id(self._entity.id_of(event)))
            if events is not None:
                events.append(event)
        self._stats.events += len(result.events)
        for prospect_id, events in found.items():
            answer = tuple(events)
            if self._cache is not None:
                self._cache.put((prospect_id, query), answer)
            slot = self._slots.pop((prospect_id, query), None)
            if slot is not None and not slot.done():
                slot.set_result(answer)

    def _after_cancel(self, task: asyncio.Task[None], batch: tuple[str, ...], query: Query) -> None:
        if task.cancelled():
            self._fail(
                batch,
                query,
                ClientClosedError("the EventsClient was closed before this request was answered"),
            )

    def _fail(self, batch: tuple[str, ...], query: Query, error: BaseException) -> None:
        for prospect_id in batch:
            slot = self._slots.pop((prospect_id, query), None)
            if slot is not None and not slot.done():
                slot.set_exception(error)
                # Each caller gets it through its own shield; if every caller has gone,
                # nobody is left to retrieve it and asyncio must not log it as lost.
                slot.exception()

    async def aclose(self) -> None:
        """Refuse new loads, send every waiting batch now, and wait for all answers.

        If this wait is cancelled, the client's own aclose() cancels the requests and
        their callers get ClientClosedError. Safe to call more than once.
        """
        self._closed = True
        for query in list(self._open):
            self._dispatch(query)
        while self._sending:
            await asyncio.wait(set(self._sending))

    def __repr__(self) -> str:
        cached = len(self._cache) if self._cache is not None else None
        return (
            f"<Batcher window={self._window:g}s batch_size={self._batch_size} "
            f"waiting={self.waiting} in_flight={self.in_flight} cached={cached} "
            f"closed={self._closed}>"
        )
