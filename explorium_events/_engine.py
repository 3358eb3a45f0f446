"""BatchRunner: runs one batch to its end, with its retries, for fetch, stream and events_for.

A batch is of prospect or business IDs (its ``Entity``). Any other request runs the
same way (``call``: enrollments, webhooks), so that every request of a client shares
one limiter, one retry policy, one 429 pause and one verdict on the key. One request
takes a concurrency slot, then a rate-limit slot, then the request; a failure is
retried as the RetryPolicy says; a 429 pauses the whole limiter (every worker waits
together); a rejected key (401/403) stops everything sent with it; and once the server
has answered nothing usable for ``give_up_after`` seconds the next failure raises
ServerUnavailableError. The runner also owns the lifecycle the stream and the batcher
share: the event loop it belongs to, the closed flag, the tasks drained on close, and
the inboxes of the streams being consumed.

Its interface for the rest of the package: ``run_batch``, ``call``, ``clock``,
``max_concurrency``, ``check_open``, ``track``, ``add_stream``/``discard_stream`` and
``aclose``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)

from ._clock import Clock
from ._entity import PROSPECT, Entity
from ._errors import (
    ApiError,
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    ExploriumError,
    RateLimitError,
    ServerError,
    ServerUnavailableError,
    TransportError,
)
from ._merge import EventDeduper, newest_first, unique_events
from ._query import Query
from ._ratelimit import SlidingWindowLimiter
from ._results import BatchResult, E, FetchStats, batch_failure
from ._retry import RetryPolicy, pause_after_429
from ._transport import Call, Transport, events_call

logger = logging.getLogger("explorium_events")

_T = TypeVar("_T")


@dataclass(slots=True)
class Attempts:
    """How many attempts a call made so far: read after it returned or raised."""

    count: int = 0


class BatchRunner:
    """Runs batches for one client: the limiter, retries, the shared 429 pause, accounting.

    Binds to the event loop lazily, on first use; one runner belongs to one loop.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        limiter: SlidingWindowLimiter,
        retry: RetryPolicy,
        clock: Clock,
        max_concurrency: int,
        give_up_after: float | None,
    ) -> None:
        self._transport = transport
        self._limiter = limiter
        self._retry = retry
        self._clock = clock
        self._max_concurrency = max_concurrency
        # Created lazily, inside the running loop.
        self._concurrency: asyncio.Semaphore | None = None
        # The loop the client first ran in: its session, locks and tasks belong to it.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # The inboxes of the streams being consumed: aclose() puts ClientClosedError in
        # each, so that no consumer waits forever on workers that were cancelled.
        self._streams: weakref.WeakSet[asyncio.Queue[Any]] = weakref.WeakSet()
        self._in_flight = 0
        self._peak_in_flight = 0
        self._closed = False
        # Once the server rejects the key (401/403), nothing more is sent with it.
        self._key_rejected: AuthenticationError | None = None
        # Since when (on the clock) the server has answered nothing usable, and what the
        # last unusable outcome was: for give_up_after.
        self._give_up_after = give_up_after
        self._silent_since: float | None = None
        self._last_usable_at: float | None = None
        self._last_unusable: ExploriumError | None = None

    @property
    def clock(self) -> Clock:
        """The clock every wait and timing of this client uses."""
        return self._clock

    @property
    def max_concurrency(self) -> int:
        """The most requests in flight at once."""
        return self._max_concurrency

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most requests that were in flight at once so far."""
        return self._peak_in_flight

    @property
    def closed(self) -> bool:
        """Whether aclose() was called."""
        return self._closed

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        """The tasks aclose() would cancel now."""
        return frozenset(self._tasks)

    def check_open(self) -> None:
        """Raise ClientClosedError once closed, ConfigurationError from another event loop."""
        if self._closed:
            raise ClientClosedError("this EventsClient is closed; create a new one")
        self.check_loop()

    def check_loop(self) -> None:
        """Bind to the running loop on first use; ConfigurationError from another one."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in a loop yet (stream() may be called outside one)
            return
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            # Its session, semaphore and limiter belong to the first loop: used from
            # another, they hang or fail deep inside aiohttp.
            raise ConfigurationError(
                "this EventsClient was first used in another event loop (another "
                "asyncio.run() or thread); create one client per event loop"
            )

    @property
    def loop_is_closed(self) -> bool:
        """Whether the loop this runner is bound to has been closed."""
        return self._loop is not None and self._loop.is_closed()

    def track(self, task: asyncio.Task[_T]) -> asyncio.Task[_T]:
        """Make ``task`` the client's: aclose() cancels and awaits it. Forgotten once done."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def add_stream(self, inbox: asyncio.Queue[Any]) -> None:
        """A stream is being consumed from ``inbox``: aclose() ends it with ClientClosedError."""
        self._streams.add(inbox)

    def discard_stream(self, inbox: asyncio.Queue[Any]) -> None:
        """The stream consumed from ``inbox`` has ended."""
        self._streams.discard(inbox)

    async def aclose(self) -> None:
        """End the streams, cancel and await every tracked task, close the transport.

        Idempotent. When the bound loop is already closed, only marks the runner closed:
        its session, connections and tasks died with that loop.
        """
        if self._closed:
            return
        self._closed = True
        if self.loop_is_closed:
            return
        for inbox in list(self._streams):
            inbox.put_nowait(ClientClosedError("the EventsClient was closed during this pull"))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self._transport.aclose()
        finally:
            await self._limiter.aclose()

    async def run_batch(
        self,
        batch: tuple[str, ...],
        query: Query,
        stats: FetchStats,
        entity: Entity[E] = PROSPECT,  # type: ignore[assignment]
        deduper: EventDeduper | None = None,
    ) -> BatchResult[E]:
        """One batch of ``entity``'s IDs with its retries: a result, a failure record, or a
        fatal error raised. Every entity's batches share this runner's limiter and pause.

        The answer's events are deduplicated by event_id against ``deduper`` (a pull's,
        so that one pass drops repeats within and across its answers), or within the
        answer alone without one. Fatal: AuthenticationError (the key was rejected) and
        ServerUnavailableError.
        """
        body = entity.encode_request(
            list(batch), list(query.event_types), query.timestamp_from, query.timestamp_to
        )
        attempts = Attempts()
        try:
            response = await self.call(events_call(entity, body, batch), stats, attempts)
        except (AuthenticationError, ServerUnavailableError):
            raise
        except (ApiError, TransportError) as error:
            logger.error(
                "batch of %d IDs failed after %d attempts: %s", len(batch), attempts.count, error
            )
            return BatchResult(
                prospect_ids=batch,
                events=(),
                failure=batch_failure(batch, error, attempts.count),
                attempts=attempts.count,
                correlation_id=error.correlation_id,
            )
        if deduper is None:
            events, repeats = unique_events(response.output_events)
        else:
            before = deduper.duplicates
            events = deduper.first_sightings(response.output_events)
            repeats = deduper.duplicates - before
        stats.duplicates_dropped += repeats
        return BatchResult(
            prospect_ids=batch,
            events=tuple(newest_first(events)),
            failure=None,
            attempts=attempts.count,
            correlation_id=response.response_context.correlation_id,
        )

    async def call(self, call: Call[_T], stats: FetchStats, attempts: Attempts | None = None) -> _T:
        """One request with its retries: the decoded 200 answer, or the last error raised.

        ``attempts`` (when given) counts the attempts made, also when this raises.

        The first attempt goes without the retry machinery: most succeed, and building a
        tenacity AsyncRetrying per request cost more than the rest of the bookkeeping. A
        retryable failure enters it (``_retry``), which takes that failure as its first
        attempt's outcome: one retry layer, the same waits, stops and logs as ever.
        """
        units = self._limiter.cost_of(max(1, len(call.ids)))
        tally = attempts if attempts is not None else Attempts()
        # tenacity's own clock, for stop_before_delay: the first attempt counts too.
        started = time.monotonic()
        tally.count += 1
        try:
            return await self._attempt(call, units, tally.count, stats)
        except Exception as error:
            if not self._retry.is_retryable(error):
                raise
            first_failure = error
        return await self._retry_after(first_failure, call, units, tally, stats, started)

    async def _retry_after(
        self,
        first_failure: Exception,
        call: Call[_T],
        units: int,
        tally: Attempts,
        stats: FetchStats,
        started: float,
    ) -> _T:
        """Retry ``call``, whose first attempt failed with ``first_failure``, as the policy says."""
        policy = self._retry

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
        pending: Exception | None = first_failure
        async for attempt in retrying:
            with attempt:
                if pending is not None:
                    # The attempt already made, as tenacity's first: its outcome, and the
                    # time since it started.
                    attempt.retry_state.start_time = started
                    failure, pending = pending, None
                    raise failure
                tally.count += 1
                return await self._attempt(call, units, tally.count, stats)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def _attempt(self, call: Call[_T], units: int, attempt: int, stats: FetchStats) -> _T:
        """One request: a concurrency slot, then a rate-limit slot, then the request."""
        self.check_open()
        if self._concurrency is None:
            self._concurrency = asyncio.Semaphore(self._max_concurrency)
        async with self._concurrency:
            grant = await self._limiter.acquire(units, max_pause=self._retry.max_retry_after)
            if self._key_rejected is not None:
                self._limiter.cancel(units)
                raise self._key_rejected
            # No check of the silence before sending: after a long Retry-After pause the
            # probe must go, and its answer decides; a failure past the deadline gives up.
            sent_at = self._clock.monotonic()
            stats.requests += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            headers = None
            try:
                answer = await self._transport.send(call)
                headers = answer.headers
            except TransportError as error:
                self._unusable(error, sent_at)
                raise
            finally:
                self._in_flight -= 1
                self._limiter.release(units, headers, grant)
        outcome = answer.outcome
        if isinstance(outcome, RateLimitError | ServerError):
            # Checked after the 429's pause is set below, so that the pause stays shared.
            unusable: ExploriumError | None = outcome
        else:
            unusable = None
            self._usable()
        if isinstance(outcome, ApiError):
            logger.debug(
                "%s (%d IDs): HTTP %d, attempt %d, correlation_id %s",
                call.describe(),
                len(call.ids),
                outcome.status,
                attempt,
                outcome.correlation_id,
            )
            if isinstance(outcome, AuthenticationError):
                self._key_rejected = outcome
            if isinstance(outcome, RateLimitError):
                stats.rate_limited += 1
                pause = pause_after_429(
                    outcome,
                    headers,
                    now=self._clock.time(),
                    attempt=attempt,
                    policy=self._retry,
                )
                self._limiter.pause(pause)
                await self._limiter.share_pause(pause)
            if unusable is not None:
                self._unusable(unusable, sent_at)
            raise outcome
        context = getattr(outcome, "response_context", None)
        found = getattr(outcome, "output_events", None)
        logger.debug(
            "%s (%d IDs): HTTP 200, attempt %d, correlation_id %s%s",
            call.describe(),
            len(call.ids),
            attempt,
            getattr(context, "correlation_id", None),
            f", {len(found)} events" if isinstance(found, list) else "",
        )
        return outcome

    def _usable(self) -> None:
        """An answer that settles a batch came back: the server is alive."""
        self._silent_since = None
        self._last_usable_at = self._clock.monotonic()

    def _unusable(self, error: ExploriumError, sent_at: float) -> None:
        """A request sent at ``sent_at`` got nothing usable; raises once that lasted too long."""
        self._last_unusable = error
        if self._silent_since is None:
            # A usable answer that came back after this request left shows the server
            # was alive then: the silence starts no earlier.
            usable = self._last_usable_at
            self._silent_since = sent_at if usable is None else max(sent_at, usable)
        self._check_silence(self._clock.monotonic(), cause=error)

    def _check_silence(self, now: float, cause: ExploriumError) -> None:
        """Raise ServerUnavailableError when nothing usable came for give_up_after seconds."""
        if self._give_up_after is None or self._silent_since is None:
            return
        silent_for = now - self._silent_since
        if silent_for < self._give_up_after:
            return
        error = ServerUnavailableError(
            silent_for=silent_for,
            give_up_after=self._give_up_after,
            last_error=self._last_unusable,
        )
        # The pull this ends is over; a later one (or another events_for batch) gets its
        # own give_up_after before it is given up too.
        self._silent_since = None
        logger.error("%s", error)
        raise error from cause

    def __repr__(self) -> str:
        return (
            f"<BatchRunner in_flight={self._in_flight} max_concurrency={self._max_concurrency} "
            f"tasks={len(self._tasks)} closed={self._closed}>"
        )
