"""EventsClient: the async facade. Batches IDs, fans requests out, retries, merges events."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)

from ._batcher import DEFAULT_BATCH_WINDOW, DEFAULT_CACHE_SIZE, Batcher
from ._clock import Clock, SystemClock
from ._errors import (
    ApiError,
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    ExploriumError,
    FetchError,
    RateLimitError,
    TransportError,
)
from ._ids import (
    MAX_BATCH_SIZE,
    InvalidProspectId,
    ProspectIdStream,
    check_batch_size,
    chunked,
    prepare_prospect_ids,
)
from ._merge import EventDeduper, newest_first
from ._models import Event, EventsRequest, EventsResponse, EventType, encode_request
from ._query import Query, Timestamp, build_query, older_than_retention
from ._ratelimit import RateLimitCost, RateLimitHeaders, RateLimitState, SlidingWindowLimiter
from ._retry import RetryPolicy
from ._transport import Transport, check_base_url

logger = logging.getLogger("explorium_events")

DEFAULT_BASE_URL = "https://api.explorium.ai"
DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_RATE_LIMIT = 200
DEFAULT_RATE_WINDOW = 60.0
DEFAULT_REQUEST_TIMEOUT = 30.0
API_KEY_VARIABLE = "EXPLORIUM_API_KEY"
BASE_URL_VARIABLE = "EXPLORIUM_BASE_URL"


def settings_from_environment() -> dict[str, str]:
    """The settings read from the environment; the one place that reads it."""
    found = {}
    if key := os.environ.get(API_KEY_VARIABLE, "").strip():
        found["api_key"] = key
    if url := os.environ.get(BASE_URL_VARIABLE, "").strip():
        found["base_url"] = url
    return found


def mask_key(api_key: str) -> str:
    """A form of the key safe to show: its last four characters at most."""
    return "****" + api_key[-4:] if len(api_key) >= 16 else "****"


@dataclass(frozen=True, slots=True)
class BatchFailure:
    """A batch that still failed after its retries: what it was, and what went wrong."""

    prospect_ids: tuple[str, ...]
    status: int | None
    message: str
    correlation_id: str | None
    attempts: int
    error: ExploriumError = field(repr=False)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The outcome of one batch: its events (newest first) or its failure."""

    prospect_ids: tuple[str, ...]
    events: tuple[Event, ...]
    failure: BatchFailure | None
    attempts: int
    correlation_id: str | None

    @property
    def ok(self) -> bool:
        """Whether the batch succeeded."""
        return self.failure is None


@dataclass(slots=True)
class FetchStats:
    """What a fetch or stream did, counted as it went."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    batches: int = 0
    failed_batches: int = 0
    ids: int = 0
    duplicate_ids: int = 0
    invalid_ids: int = 0
    events: int = 0
    duplicates_dropped: int = 0
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class FetchResult:
    """Everything a fetch produced.

    Every input ID is in exactly one of ``succeeded``, ``failed`` (by batch) and ``invalid``.
    """

    events: list[Event]
    failed: list[BatchFailure]
    invalid: list[InvalidProspectId]
    succeeded: list[str]
    stats: FetchStats

    @property
    def failed_ids(self) -> list[str]:
        """The prospect IDs of every failed batch."""
        return [prospect_id for failure in self.failed for prospect_id in failure.prospect_ids]


def _failure(batch: tuple[str, ...], error: ExploriumError, attempts: int) -> BatchFailure:
    status = getattr(error, "status", None)
    return BatchFailure(
        prospect_ids=batch,
        status=status if isinstance(status, int) else None,
        message=getattr(error, "message", str(error)),
        correlation_id=getattr(error, "correlation_id", None),
        attempts=attempts,
        error=error,
    )


class _Done:
    """A worker has no more batches."""


class BatchStream:
    """The results of a pull, one per batch, in the order they complete.

    Iterate it with ``async for``; use it as an async context manager (or call
    ``aclose()``) to stop early and cancel what is left deterministically. ``stats``
    and ``invalid`` fill in as it runs.
    """

    def __init__(
        self, client: EventsClient, ids: ProspectIdStream, query: Query, batch_size: int
    ) -> None:
        self._client = client
        self._ids = ids
        self._batches: Iterator[tuple[str, ...]] = chunked(ids, batch_size)
        self._query = query
        self._taken: dict[int, tuple[str, ...]] = {}
        # A weak reference: the workers hold this stream, so a strong one would keep the
        # generator alive after a bare `break`, and its finaliser (the clean-up) never runs.
        self._iterator: weakref.ref[AsyncGenerator[BatchResult, None]] | None = None
        self._queue: asyncio.Queue[Any] | None = None
        self.stats = FetchStats()

    @property
    def invalid(self) -> list[InvalidProspectId]:
        """Input values skipped as invalid so far."""
        return self._ids.invalid

    def unfinished(self) -> Iterator[tuple[str, ...]]:
        """After a fatal error: the batches that were taken but not finished, then the rest."""
        yield from self._taken.values()
        self._taken.clear()
        yield from self._batches
        # Reading the rest met repeats too: the books at the end of the run count them.
        self.stats.duplicate_ids = self._ids.duplicates

    def __aiter__(self) -> AsyncIterator[BatchResult]:
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

    def _abort(self, error: BaseException) -> None:
        """End the stream with this error (the client is closing under it)."""
        if self._queue is not None:
            self._queue.put_nowait(error)

    async def _work(self, number: int, queue: asyncio.Queue[Any], room: asyncio.Semaphore) -> None:
        try:
            while True:
                # Backpressure: a batch is taken only when its result will have room.
                await room.acquire()
                batch = next(self._batches, None)
                if batch is None:
                    break
                self._taken[number] = batch
                result = await self._client._run_batch(batch, self._query, self.stats)
                queue.put_nowait(result)
                del self._taken[number]
        except Exception as exc:  # fatal for the whole stream; the consumer re-raises it
            queue.put_nowait(exc)
        else:
            queue.put_nowait(_Done())

    async def _run(self) -> AsyncGenerator[BatchResult, None]:
        client = self._client
        client._check_open()
        clock = client._clock
        started = clock.monotonic()
        worker_count = client.max_concurrency
        # Unbounded, so that an abort always fits; `room` bounds the results waiting.
        queue: asyncio.Queue[Any] = asyncio.Queue()
        room = asyncio.Semaphore(worker_count)
        self._queue = queue
        workers = [
            asyncio.create_task(
                self._work(number, queue, room), name=f"explorium-events-worker-{number}"
            )
            for number in range(worker_count)
        ]
        client._tasks.update(workers)
        client._streams.add(self)
        deduper = EventDeduper()
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
                result: BatchResult = item
                fresh = deduper.first_sightings(result.events)
                stats.duplicates_dropped += len(result.events) - len(fresh)
                if len(fresh) != len(result.events):
                    result = BatchResult(
                        prospect_ids=result.prospect_ids,
                        events=tuple(fresh),
                        failure=result.failure,
                        attempts=result.attempts,
                        correlation_id=result.correlation_id,
                    )
                stats.batches += 1
                stats.failed_batches += not result.ok
                stats.events += len(fresh)
                stats.ids = self._ids.unique
                stats.duplicate_ids = self._ids.duplicates
                stats.invalid_ids = len(self._ids.invalid)
                stats.elapsed = clock.monotonic() - started
                yield result
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            client._tasks.difference_update(workers)
            client._streams.discard(self)
            self._queue = None
            stats.ids = self._ids.unique
            stats.duplicate_ids = self._ids.duplicates
            stats.invalid_ids = len(self._ids.invalid)
            stats.elapsed = clock.monotonic() - started


class EventsClient:
    """Fetches prospect events for any number of prospect IDs, at the rate limit.

    Use it as an async context manager, or call ``aclose()`` when done::

        async with EventsClient(api_key="...") as client:
            result = await client.fetch(prospect_ids)

    All settings are keyword-only. ``api_key`` and ``base_url`` default to the
    ``EXPLORIUM_API_KEY`` and ``EXPLORIUM_BASE_URL`` environment variables.
    ``rate_limit`` units per ``rate_window`` seconds (``None``: no client-side limit),
    where a unit is a request or, with ``rate_limit_cost="id"``, a prospect ID.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        batch_size: int = MAX_BATCH_SIZE,
        rate_limit: int | None = DEFAULT_RATE_LIMIT,
        rate_window: float = DEFAULT_RATE_WINDOW,
        rate_limit_cost: RateLimitCost = "request",
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        batch_window: float = DEFAULT_BATCH_WINDOW,
        cache_ttl: float | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        environment = settings_from_environment()
        key = (api_key if api_key is not None else environment.get("api_key", "")).strip()
        if not key:
            raise ConfigurationError(
                f"no API key: pass api_key=... or set the {API_KEY_VARIABLE} environment variable"
            )
        url = check_base_url(base_url or environment.get("base_url") or DEFAULT_BASE_URL)
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency={max_concurrency}: must be at least 1")
        if request_timeout <= 0:
            raise ConfigurationError(f"request_timeout={request_timeout}: must be positive")
        if rate_limit_cost not in ("request", "id"):
            raise ConfigurationError(
                f"rate_limit_cost={rate_limit_cost!r}: must be 'request' or 'id'"
            )
        self._batch_size = check_batch_size(batch_size)
        if rate_limit_cost == "id" and rate_limit is not None and rate_limit < batch_size:
            raise ConfigurationError(
                f"rate_limit={rate_limit} per ID is less than batch_size={batch_size}: "
                "a single request would exceed the limit; lower batch_size"
            )
        self._key_hint = mask_key(key)
        self._max_concurrency = max_concurrency
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._retry = retry or RetryPolicy(rng=self._rng)
        self._limiter = SlidingWindowLimiter(
            limit=rate_limit,
            window=rate_window,
            cost=rate_limit_cost,
            clock=self._clock,
            rng=self._rng,
        )
        self._transport = Transport(
            base_url=url,
            api_key=key,
            session=session,
            max_connections=max_concurrency,
            request_timeout=request_timeout,
            clock=self._clock,
        )
        self._base_url = str(url)
        # Created lazily, inside the running loop.
        self._concurrency: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Streams being consumed: aclose() ends them with ClientClosedError, so that no
        # consumer waits forever on workers that were cancelled.
        self._streams: weakref.WeakSet[BatchStream] = weakref.WeakSet()
        self._in_flight = 0
        self._peak_in_flight = 0
        self._warned_windows: set[Query] = set()
        self._closed = False
        # Once the server rejects the key (401/403), nothing more is sent with it.
        self._key_rejected: AuthenticationError | None = None
        # events_for(): its batches go through _run_batch, like fetch's.
        self._batcher = Batcher(
            run_batch=self._run_batch,
            stats=FetchStats(),
            batch_size=self._batch_size,
            window=batch_window,
            clock=self._clock,
            tasks=self._tasks,
            cache_ttl=cache_ttl,
            cache_size=cache_size,
        )

    @property
    def max_concurrency(self) -> int:
        """The most requests this client has in flight at once."""
        return self._max_concurrency

    @property
    def batch_size(self) -> int:
        """Prospect IDs per request."""
        return self._batch_size

    @property
    def peak_in_flight(self) -> int:
        """The most requests that were in flight at once so far."""
        return self._peak_in_flight

    @property
    def closed(self) -> bool:
        """Whether aclose() was called."""
        return self._closed

    def rate_limit_state(self) -> RateLimitState:
        """The rate limiter's state now: the limit in force, use, any pause."""
        return self._limiter.state()

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client. Idempotent.

        ``events_for`` calls still waiting for their batch window are sent at once, and
        their answers (and those of batches already in flight) are awaited, within the
        retry policy's limits; new ``events_for`` calls raise ClientClosedError. Then
        whatever else runs (fetch, stream) is cancelled and the HTTP session is closed
        (unless it was passed in).
        """
        if self._closed:
            return
        try:
            await self._batcher.aclose()
        finally:
            # Even if that wait is cancelled: cancel the rest, close the session.
            self._closed = True
            for stream in list(self._streams):
                stream._abort(ClientClosedError("the EventsClient was closed during this pull"))
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._transport.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this EventsClient is closed; create a new one")

    def __repr__(self) -> str:
        return (
            f"<EventsClient base_url={self._base_url!r} in_flight={self._in_flight} "
            f"max_concurrency={self._max_concurrency} closed={self._closed} key={self._key_hint}>"
        )

    def _query(
        self,
        event_types: Iterable[EventType | str] | None,
        timestamp_from: Timestamp | None,
        timestamp_to: Timestamp | None,
    ) -> Query:
        query = build_query(event_types, timestamp_from, timestamp_to)
        if query in self._warned_windows:
            return query
        now = dt.datetime.fromtimestamp(self._clock.time(), dt.UTC)
        if older_than_retention(query, now=now):
            # Once per window and client: 10,000 events_for calls need one warning.
            if len(self._warned_windows) >= 1024:
                self._warned_windows.clear()
            self._warned_windows.add(query)
            logger.warning(
                "the window ends %s, more than 3 months ago: the API keeps only the last "
                "3 months of events, so this will find nothing",
                query.timestamp_to,
            )
        return query

    def stream(
        self,
        prospect_ids: Iterable[str],
        *,
        event_types: Iterable[EventType | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
        skip_invalid: bool = False,
    ) -> BatchStream:
        """Results one batch at a time, as each completes: events or a failure record.

        The input is pulled lazily; at most ``max_concurrency`` batches are in flight.
        Raises InvalidProspectIdError at once (before any request) unless
        ``skip_invalid``; a rejected key (401/403) ends the stream with that error.
        """
        self._check_open()
        query = self._query(event_types, timestamp_from, timestamp_to)
        ids = prepare_prospect_ids(prospect_ids, skip_invalid=skip_invalid)
        return BatchStream(self, ids, query, self._batch_size)

    async def fetch(
        self,
        prospect_ids: Iterable[str],
        *,
        event_types: Iterable[EventType | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
        skip_invalid: bool = False,
        raise_on_error: bool = True,
    ) -> FetchResult:
        """All events of these prospects, unique by event_id, newest first.

        Raises FetchError (whose ``.result`` holds everything that did arrive) when a
        batch failed for good, unless ``raise_on_error=False``: then the failures are
        in ``result.failed``.
        """
        stream = self.stream(
            prospect_ids,
            event_types=event_types,
            timestamp_from=timestamp_from,
            timestamp_to=timestamp_to,
            skip_invalid=skip_invalid,
        )
        events: list[Event] = []
        failed: list[BatchFailure] = []
        succeeded: list[str] = []
        async with stream:
            try:
                async for batch in stream:
                    if batch.failure is None:
                        events.extend(batch.events)
                        succeeded.extend(batch.prospect_ids)
                    else:
                        failed.append(batch.failure)
            except AuthenticationError as fatal:
                # Nothing more can succeed with this key: every batch not yet done fails
                # with the same error, so that no input ID goes unaccounted for.
                for batch_ids in stream.unfinished():
                    failed.append(_failure(batch_ids, fatal, attempts=0))
                    stream.stats.failed_batches += 1
                    stream.stats.batches += 1
        result = FetchResult(
            events=newest_first(events),
            failed=failed,
            invalid=list(stream.invalid),
            succeeded=succeeded,
            stats=stream.stats,
        )
        if failed and raise_on_error:
            raise FetchError(result) from failed[0].error
        return result

    async def events_for(
        self,
        prospect_id: str,
        *,
        event_types: Iterable[EventType | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
    ) -> list[Event]:
        """One prospect's events, newest first; concurrent calls share batched requests.

        Meant for code that handles one prospect per task (a web handler, a queue
        worker)::

            async def enrich(prospect_id: str) -> dict[str, Any]:
                events = await client.events_for(prospect_id)
                return {"prospect_id": prospect_id, "events": len(events)}

            rows = await asyncio.gather(*(enrich(pid) for pid in prospect_ids))

        Calls with the same event types and window are gathered into one request of up
        to ``batch_size`` IDs; a batch goes when it is full or ``batch_window`` seconds
        after its first ID arrived. Concurrent calls for the same ID share one slot. The
        requests share the rate limit, concurrency limit and retry policy of ``fetch``.
        With ``cache_ttl`` set, answers are reused for that many seconds.

        Raises InvalidProspectIdError at once for an invalid ID; the batch's error
        (e.g. ServerError, RateLimitError, TransportError, AuthenticationError) when
        the request of its batch failed for good; ClientClosedError once closed.
        """
        self._check_open()
        query = self._query(event_types, timestamp_from, timestamp_to)
        return await self._batcher.load(prospect_id, query)

    async def _run_batch(
        self, batch: tuple[str, ...], query: Query, stats: FetchStats
    ) -> BatchResult:
        """One batch with its retries: a result, a failure record, or a fatal error raised."""
        body = encode_request(
            EventsRequest(
                prospect_ids=list(batch),
                event_types=list(query.event_types),
                timestamp_from=query.timestamp_from,
                timestamp_to=query.timestamp_to,
            )
        )
        units = self._limiter.cost_of(len(batch))
        policy = self._retry
        attempts = 0

        def wait(state: RetryCallState) -> float:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            # A 429 already paused the shared limiter until its Retry-After moment: the
            # next acquire waits there, together with every other worker.
            if isinstance(error, RateLimitError):
                return 0.0
            return policy.backoff(state.attempt_number)

        def before_sleep(state: RetryCallState) -> None:
            stats.retries += 1
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            # The error names the batch (its first IDs and size) and the correlation id.
            logger.warning(
                "%s; retry %d of %d in %.2fs",
                error,
                state.attempt_number,
                policy.max_attempts - 1,
                delay,
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(policy.max_elapsed),
            wait=wait,
            retry=retry_if_exception(policy.is_retryable),
            sleep=self._clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    response = await self._attempt(batch, body, units, attempts, stats)
        except AuthenticationError:
            raise
        except (ApiError, TransportError) as error:
            logger.error(
                "batch of %d IDs failed after %d attempts: %s", len(batch), attempts, error
            )
            return BatchResult(
                prospect_ids=batch,
                events=(),
                failure=_failure(batch, error, attempts),
                attempts=attempts,
                correlation_id=error.correlation_id,
            )
        # Duplicates inside one response are dropped here; across batches, by the stream.
        deduper = EventDeduper()
        events = deduper.first_sightings(response.output_events)
        stats.duplicates_dropped += deduper.duplicates
        return BatchResult(
            prospect_ids=batch,
            events=tuple(newest_first(events)),
            failure=None,
            attempts=attempts,
            correlation_id=response.response_context.correlation_id,
        )

    async def _attempt(
        self, batch: tuple[str, ...], body: bytes, units: int, attempt: int, stats: FetchStats
    ) -> EventsResponse:
        """One request: a concurrency slot, then a rate-limit slot, then the POST."""
        self._check_open()
        if self._concurrency is None:
            self._concurrency = asyncio.Semaphore(self._max_concurrency)
        async with self._concurrency:
            grant = await self._limiter.acquire(units, max_pause=self._retry.max_retry_after)
            if self._key_rejected is not None:
                self._limiter.cancel(units)
                raise self._key_rejected
            stats.requests += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            headers = None
            try:
                answer = await self._transport.post(body, batch)
                headers = answer.headers
            finally:
                self._in_flight -= 1
                self._limiter.release(units, headers, grant)
        outcome = answer.outcome
        if isinstance(outcome, ApiError):
            logger.debug(
                "POST %d IDs: HTTP %d, attempt %d, correlation_id %s",
                len(batch),
                outcome.status,
                attempt,
                outcome.correlation_id,
            )
            if isinstance(outcome, AuthenticationError):
                self._key_rejected = outcome
            if isinstance(outcome, RateLimitError):
                stats.rate_limited += 1
                self._limiter.pause(self._pause_after_429(outcome, headers, attempt))
            raise outcome
        logger.debug(
            "POST %d IDs: HTTP 200, attempt %d, correlation_id %s, %d events",
            len(batch),
            attempt,
            outcome.response_context.correlation_id,
            len(outcome.output_events),
        )
        return outcome

    def _pause_after_429(
        self, error: RateLimitError, headers: RateLimitHeaders | None, attempt: int
    ) -> float:
        if error.retry_after is not None:
            return error.retry_after
        if headers is not None and headers.reset is not None:
            return max(0.0, headers.reset - self._clock.time())
        return self._retry.backoff(attempt)
