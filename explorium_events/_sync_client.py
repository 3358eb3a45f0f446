"""SyncEventsClient: the blocking facade, for scripts and notebooks, over an EventsClient.

    with SyncEventsClient(api_key="...") as client:
        result = client.fetch(prospect_ids)
        accounts = client.businesses.fetch(business_ids)

Each call runs the async client's coroutine on a private event loop in a background
thread (``_loop_thread``) and waits for it, so the results and errors are exactly the
async client's, and it works where an event loop already runs (a Jupyter cell).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine, Iterable, Iterator
from enum import StrEnum
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from ._bulk import pull
from ._business_models import BusinessEvent
from ._client import EventsClient
from ._entity_client import EntityEvents
from ._errors import ClientClosedError, ConfigurationError
from ._loop_thread import LoopThread
from ._models import Event
from ._query import Timestamp
from ._results import BatchResult, E, FetchResult, PullSummary
from ._sinks import EventSink
from ._stream import BatchStream

_T = TypeVar("_T")


class SyncEntityEvents(Generic[E]):
    """The blocking ``prospects`` or ``businesses`` of a SyncEventsClient: as EntityEvents."""

    def __init__(self, events: EntityEvents[E], owner: SyncEventsClient) -> None:
        self._events: EntityEvents[E] = events
        self._owner = owner

    @property
    def entity(self) -> str:
        """Which entity: "prospect" or "business"."""
        return self._events.entity

    def fetch(
        self,
        ids: Iterable[str],
        *,
        event_types: Iterable[StrEnum | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
        skip_invalid: bool = False,
        raise_on_error: bool = True,
    ) -> FetchResult[E]:
        """All events of these IDs, unique by event_id: as ``EntityEvents.fetch``."""
        return self._owner._run(
            self._events.fetch(
                ids,
                event_types=event_types,
                timestamp_from=timestamp_from,
                timestamp_to=timestamp_to,
                skip_invalid=skip_invalid,
                raise_on_error=raise_on_error,
            )
        )

    def events_for(
        self,
        entity_id: str,
        *,
        event_types: Iterable[StrEnum | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
    ) -> list[E]:
        """One ID's events, newest first: as ``EntityEvents.events_for``."""
        return self._owner._run(
            self._events.events_for(
                entity_id,
                event_types=event_types,
                timestamp_from=timestamp_from,
                timestamp_to=timestamp_to,
            )
        )

    def stream(
        self,
        ids: Iterable[str],
        *,
        event_types: Iterable[StrEnum | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
        skip_invalid: bool = False,
    ) -> Iterator[BatchResult[E]]:
        """Results one batch at a time, as each completes: as ``EntityEvents.stream``.

        A generator: stop early with ``close()`` (or ``contextlib.closing``), which
        cancels the batches still running.
        """

        async def start() -> BatchStream[E]:
            return self._events.stream(
                ids,
                event_types=event_types,
                timestamp_from=timestamp_from,
                timestamp_to=timestamp_to,
                skip_invalid=skip_invalid,
            )

        # Built here, not in the generator, so that bad arguments raise at the call.
        batches = self._owner._run(start())
        return self._owner._iterate(batches)

    def __repr__(self) -> str:
        return f"<SyncEntityEvents {self.entity}>"


class SyncEventsClient:
    """A blocking EventsClient: ``fetch``, ``stream``, ``events_for`` and ``pull``, same answers.

    Takes the same keyword-only settings as EventsClient (but ``session``: an aiohttp
    session belongs to one event loop, and this client runs its own). Use it as a
    context manager, or call ``close()``; a closed client raises ClientClosedError.
    ``client.prospects`` and ``client.businesses`` are the blocking views of the async
    client's, sharing its one rate limit; ``fetch``, ``stream`` and ``events_for`` are
    ``client.prospects``'s.

    Calls may come from several threads at once: ``events_for`` calls made concurrently
    share batched requests, as they do on the async client. Callbacks (``pull``'s
    ``progress``) run on the client's own thread. Ctrl-C during a call cancels it (a
    pull commits its checkpoint first) and raises KeyboardInterrupt.
    """

    def __init__(self, **settings: Any) -> None:
        if settings.get("session") is not None:
            raise ConfigurationError(
                "SyncEventsClient runs its own event loop, and an aiohttp session belongs to "
                "the loop it was made in: leave session out (use trust_env / trace_configs)"
            )
        # Settings are checked here, at once; the session is made later, on the loop.
        self._client = EventsClient(**settings)
        self._thread = LoopThread("explorium-events-sync")
        self.prospects: SyncEntityEvents[Event] = SyncEntityEvents(self._client.prospects, self)
        """Prospect events: ``fetch``, ``stream``, ``events_for`` (the client's own)."""
        self.businesses: SyncEntityEvents[BusinessEvent] = SyncEntityEvents(
            self._client.businesses, self
        )
        """Business events: ``fetch``, ``stream``, ``events_for`` with business IDs."""

    @property
    def async_client(self) -> EventsClient:
        """The EventsClient underneath (its coroutines run only on this client's loop)."""
        return self._client

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._client.closed

    def fetch(
        self,
        prospect_ids: Iterable[str],
        *,
        event_types: Iterable[StrEnum | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
        skip_invalid: bool = False,
        raise_on_error: bool = True,
    ) -> FetchResult[Event]:
        """All events of these prospects, unique by event_id: as ``EventsClient.fetch``."""
        return self.prospects.fetch(
            prospect_ids,
            event_types=event_types,
            timestamp_from=timestamp_from,
            timestamp_to=timestamp_to,
            skip_invalid=skip_invalid,
            raise_on_error=raise_on_error,
        )

    def events_for(
        self,
        prospect_id: str,
        *,
        event_types: Iterable[StrEnum | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
    ) -> list[Event]:
        """One prospect's events, newest first: ``EventsClient.events_for``."""
        return self.prospects.events_for(
            prospect_id,
            event_types=event_types,
            timestamp_from=timestamp_from,
            timestamp_to=timestamp_to,
        )

    def stream(
        self,
        prospect_ids: Iterable[str],
        *,
        event_types: Iterable[StrEnum | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
        skip_invalid: bool = False,
    ) -> Iterator[BatchResult[Event]]:
        """Results one batch at a time, as each completes: ``EventsClient.stream``.

        A generator: stop early with ``close()`` (or ``contextlib.closing``), which
        cancels the batches still running.
        """
        return self.prospects.stream(
            prospect_ids,
            event_types=event_types,
            timestamp_from=timestamp_from,
            timestamp_to=timestamp_to,
            skip_invalid=skip_invalid,
        )

    def _iterate(self, batches: BatchStream[E]) -> Iterator[BatchResult[E]]:
        async def aiter_() -> Any:
            return batches.__aiter__()

        iterator = self._run(aiter_())
        try:
            while True:
                try:
                    yield self._run(anext(iterator))
                except StopAsyncIteration:
                    return
        finally:
            if not self._thread.stopped:
                self._thread.run(batches.aclose())

    def pull(
        self,
        prospect_ids: str | os.PathLike[str] | Iterable[str],
        out: str | os.PathLike[str] | EventSink,
        checkpoint: str | os.PathLike[str] | None,
        *,
        format: str | None = None,
        event_types: Iterable[StrEnum | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
        skip_invalid: bool = False,
        retry_failed: bool = False,
        progress: Callable[[PullSummary], None] | None = None,
        csv_raw_cells: bool = False,
        entity: str = "prospect",
    ) -> PullSummary:
        """Pull into ``out``, resumably, exactly once: ``explorium_events.pull``, blocking.

        ``entity="business"`` pulls business events of business IDs, as ``pull`` does.
        """
        return self._run(
            pull(
                self._client,
                prospect_ids,
                out,
                checkpoint,
                format=format,
                event_types=event_types,
                timestamp_from=timestamp_from,
                timestamp_to=timestamp_to,
                skip_invalid=skip_invalid,
                retry_failed=retry_failed,
                progress=progress,
                csv_raw_cells=csv_raw_cells,
                entity=entity,
            )
        )

    def close(self) -> None:
        """Close the client (as ``EventsClient.aclose``) and stop its thread. Idempotent."""
        if self._thread.stopped:
            return
        try:
            self._run(self._client.aclose())
        finally:
            self._thread.stop()

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        if self._thread.stopped:
            coroutine.close()
            raise ClientClosedError("this SyncEventsClient is closed; create a new one")
        return self._thread.run(coroutine)

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
        return repr(self._client).replace("<EventsClient", "<SyncEventsClient", 1)
