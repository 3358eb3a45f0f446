"""EventsClient: the async facade users hold; settings in, then fetch, stream and events_for.

It builds the pieces and hands the work to them: the settings (``_settings``), the rate
limiter, the transport, the BatchRunner that runs each batch (``_engine``), one
EntityEvents per entity (``_entity_client``: ``client.prospects``, ``client.businesses``),
which make the queries, streams and events_for batches, and the push side
(``client.enrollments``, ``client.webhooks``). Every piece exists once per
client, so prospects and businesses spend one rate-limit budget. The client's own
``fetch``, ``stream`` and ``events_for`` are ``client.prospects``'s.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Self

import aiohttp

from ._business_models import BusinessEvent
from ._clock import Clock, SystemClock
from ._engine import BatchRunner
from ._enrollments import Enrollments
from ._entity import BUSINESS, PROSPECT, entity_named
from ._entity_client import EntityEvents
from ._errors import ConfigurationError
from ._ids import MAX_BATCH_SIZE
from ._models import Event, EventType
from ._query import Timestamp
from ._ratelimit import (
    RateLimitCost,
    RateLimitState,
    ServerLimit,
    SharedWindow,
    SlidingWindowLimiter,
)
from ._results import FetchResult
from ._retry import RetryPolicy
from ._settings import (
    DEFAULT_BASE_URL,
    DEFAULT_BATCH_WINDOW,
    DEFAULT_CACHE_SIZE,
    DEFAULT_GIVE_UP_AFTER,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_RATE_LIMIT,
    DEFAULT_RATE_WINDOW,
    DEFAULT_REQUEST_TIMEOUT,
    check_client_settings,
    check_namespace,
    mask_key,
    resolve_api_key,
    resolve_rate_limit_store,
    settings_from_environment,
)
from ._stream import BatchStream
from ._transport import Transport, check_base_url
from ._webhooks import Webhooks

logger = logging.getLogger("explorium_events")


class EventsClient:
    """Fetches prospect and business events for any number of IDs, at the rate limit.

    Use it as an async context manager, or call ``aclose()`` when done::

        async with EventsClient(api_key="...") as client:
            result = await client.fetch(prospect_ids)            # = client.prospects.fetch
            accounts = await client.businesses.fetch(business_ids)

    ``client.prospects`` and ``client.businesses`` (EntityEvents) each have ``fetch``,
    ``stream`` and ``events_for``; both share this client's rate limiter, concurrency
    limit and retry policy: one budget for the key. Two clients made with the same key
    do not know of each other: give each its share of the limit (``rate_limit=``), or
    use one client for both kinds of events.

    All settings are keyword-only. ``api_key`` and ``base_url`` default to the
    ``EXPLORIUM_API_KEY`` and ``EXPLORIUM_BASE_URL`` environment variables.
    ``rate_limit`` units per ``rate_window`` seconds (``None``: no client-side limit),
    where a unit is a request or, with ``rate_limit_cost="id"``, a prospect ID.

    ``give_up_after``: once the server has answered nothing usable (no answer that
    settles a batch: a decoded 200, or a definite client error such as a 422) for this
    many seconds, timed from the first request that went unanswered, the next failure
    stops the pull with ServerUnavailableError and every ID not yet fetched counts as
    failed, instead of grinding through every batch's retries for hours. The default,
    300 s, outlasts ten request timeouts, a deploy or a short outage, and the longest
    ``Retry-After`` the default retry policy waits for; a dead server then costs
    minutes, not hours. ``None``: never give up.

    ``rate_limit_store``: a Redis URL (``redis://host:6379/0``; default: the
    ``EXPLORIUM_RATE_LIMIT_STORE`` environment variable) through which every process
    spending this key shares one sliding window and one 429 pause; needs
    ``pip install 'explorium-events[redis]'``. Every such process must use the same
    store, ``rate_window`` and ``rate_limit_cost``. The Redis keys are named after
    ``rate_limit_namespace``, by default a keyed hash of the API key (never the key
    itself). While the store is unreachable each process paces itself alone, as
    without one, and shares again once it answers.

    ``trust_env`` (default True): use the proxy that ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
    ``NO_PROXY`` name, read once when the session is made. ``trace_configs``: aiohttp
    TraceConfigs (timing, OpenTelemetry) for that session. Neither goes with ``session=``.
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
        give_up_after: float | None = DEFAULT_GIVE_UP_AFTER,
        rate_limit_store: str | None = None,
        rate_limit_namespace: str | None = None,
        trust_env: bool = True,
        trace_configs: Sequence[aiohttp.TraceConfig] | None = None,
    ) -> None:
        if session is not None and (trace_configs or not trust_env):
            raise ConfigurationError(
                "trust_env and trace_configs configure the session the client makes: "
                "with session=..., set them on that session instead"
            )
        environment = settings_from_environment()
        key = resolve_api_key(api_key, environment)
        url = check_base_url(base_url or environment.get("base_url") or DEFAULT_BASE_URL)
        check_client_settings(
            max_concurrency=max_concurrency,
            batch_size=batch_size,
            rate_limit=rate_limit,
            rate_window=rate_window,
            rate_limit_cost=rate_limit_cost,
            request_timeout=request_timeout,
            give_up_after=give_up_after,
            batch_window=batch_window,
            cache_ttl=cache_ttl,
            cache_size=cache_size,
        )
        self._batch_size = batch_size
        self._key_hint = mask_key(key)
        self._base_url = str(url)
        self._clock: Clock = clock or SystemClock()
        rng = rng or random.Random()
        store = resolve_rate_limit_store(rate_limit_store, environment)
        shared: SharedWindow | None = None
        if store:
            # Imported only with a store: users without one never load redis.
            from ._ratelimit_redis import RedisWindow, namespace_for

            namespace = (
                namespace_for(key)
                if rate_limit_namespace is None
                else check_namespace(rate_limit_namespace)
            )
            shared = RedisWindow(url=store, namespace=namespace, window=rate_window)
        self._limiter = SlidingWindowLimiter(
            limit=rate_limit,
            window=rate_window,
            cost=rate_limit_cost,
            clock=self._clock,
            rng=rng,
            shared=shared,
            concurrency=max_concurrency,
        )
        transport = Transport(
            base_url=url,
            api_key=key,
            session=session,
            max_connections=max_concurrency,
            request_timeout=request_timeout,
            clock=self._clock,
            trust_env=trust_env,
            trace_configs=trace_configs or (),
        )
        self._runner = BatchRunner(
            transport=transport,
            limiter=self._limiter,
            retry=retry or RetryPolicy(rng=rng),
            clock=self._clock,
            max_concurrency=max_concurrency,
            give_up_after=give_up_after,
        )
        views = functools.partial(
            EntityEvents,
            runner=self._runner,
            batch_size=batch_size,
            batch_window=batch_window,
            cache_ttl=cache_ttl,
            cache_size=cache_size,
        )
        self.prospects: EntityEvents[Event] = views(PROSPECT)
        """Prospect events: ``fetch``, ``stream``, ``events_for`` (the client's own)."""
        self.businesses: EntityEvents[BusinessEvent] = views(BUSINESS)
        """Business events: ``fetch``, ``stream``, ``events_for`` with business IDs."""
        # Push (enrollments and webhooks): the same runner, so the same limit and retries.
        self._enrollments = Enrollments(self._runner)
        self._webhooks = Webhooks(self._runner)

    @property
    def enrollments(self) -> Enrollments:
        """Enroll IDs for pushed events, and list, update and delete enrollments."""
        return self._enrollments

    @property
    def webhooks(self) -> Webhooks:
        """Register, show, delete and test the webhook that receives pushed events."""
        return self._webhooks

    def entity(self, name: str) -> EntityEvents[Event] | EntityEvents[BusinessEvent]:
        """``client.prospects`` or ``client.businesses``, by name ("prospect", "business")."""
        return self.businesses if entity_named(name) is BUSINESS else self.prospects

    @property
    def max_concurrency(self) -> int:
        """The most requests this client has in flight at once."""
        return self._runner.max_concurrency

    @property
    def clock(self) -> Clock:
        """The clock this client waits and measures time with (injected, or the system's)."""
        return self._clock

    @property
    def batch_size(self) -> int:
        """Prospect IDs per request."""
        return self._batch_size

    @property
    def peak_in_flight(self) -> int:
        """The most requests that were in flight at once so far."""
        return self._runner.peak_in_flight

    @property
    def closed(self) -> bool:
        """Whether aclose() was called."""
        return self._runner.closed

    def rate_limit_state(self) -> RateLimitState:
        """The rate limiter's state now: the limit in force, use, any pause."""
        return self._limiter.state()

    def _recall_server_limit(self, remembered: ServerLimit) -> None:
        """For pull() and sync() resuming: the server's limit as their earlier run read it.

        Not public: only a checkpoint or sync state knows it. See SlidingWindowLimiter.recall.
        """
        self._limiter.recall(remembered)

    async def __aenter__(self) -> Self:
        self._runner.check_open()
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
        runner = self._runner
        if runner.closed:
            return
        if runner.loop_is_closed:
            # Its session, connections and tasks died with that loop: nothing is left to
            # wait for, and awaiting them from this loop would fail inside aiohttp.
            await runner.aclose()
            return
        runner.check_loop()
        try:
            await self.prospects.aclose()
            await self.businesses.aclose()
        finally:
            # Even if that wait is cancelled: cancel the rest, close the session.
            await runner.aclose()

    def __repr__(self) -> str:
        return (
            f"<EventsClient base_url={self._base_url!r} in_flight={self._runner.in_flight} "
            f"max_concurrency={self.max_concurrency} closed={self.closed} key={self._key_hint}>"
        )

    def stream(
        self,
        prospect_ids: Iterable[str],
        *,
        event_types: Iterable[EventType | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
        skip_invalid: bool = False,
    ) -> BatchStream[Event]:
        """Results one batch at a time, as each completes: events or a failure record.

        The input is pulled lazily, at most ``max_concurrency`` batches ahead of the
        answers; at most ``max_concurrency`` batches are in flight. A one-shot iterator
        is read once and never held whole.

        Invalid values are skipped (and listed in ``invalid``) with ``skip_invalid``.
        Without it, a sized input (list, tuple, set: anything with ``len()``) is checked
        whole first: InvalidProspectIdError at once, before any request. An iterator is
        checked as it is consumed: the first invalid value ends the reading, the batches
        before it complete (and are yielded), then the stream raises
        InvalidProspectIdError. A rejected key (401/403) ends the stream with that error.
        """
        return self.prospects.stream(
            prospect_ids,
            event_types=event_types,
            timestamp_from=timestamp_from,
            timestamp_to=timestamp_to,
            skip_invalid=skip_invalid,
        )

    async def fetch(
        self,
        prospect_ids: Iterable[str],
        *,
        event_types: Iterable[EventType | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
        skip_invalid: bool = False,
        raise_on_error: bool = True,
    ) -> FetchResult[Event]:
        """All events of these prospects, unique by event_id, newest first.

        Raises FetchError (whose ``.result`` holds everything that did arrive) when a
        batch failed for good, unless ``raise_on_error=False``: then the failures are
        in ``result.failed``.

        Invalid values are checked as in ``stream()``: up front for a sized input, as
        consumed for an iterator. An invalid value in an iterator raises
        InvalidProspectIdError whose ``.result`` holds what every ID before it fetched
        (the value itself is in ``result.invalid``; nothing after it was read).
        """
        return await self.prospects.fetch(
            prospect_ids,
            event_types=event_types,
            timestamp_from=timestamp_from,
            timestamp_to=timestamp_to,
            skip_invalid=skip_invalid,
            raise_on_error=raise_on_error,
        )

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
        return await self.prospects.events_for(
            prospect_id,
            event_types=event_types,
            timestamp_from=timestamp_from,
            timestamp_to=timestamp_to,
        )
