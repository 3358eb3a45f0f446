"""EntityEvents: fetch, stream and events_for for one entity, on the client's one runner.

``client.prospects`` and ``client.businesses`` are EntityEvents: the same three calls,
each checked by its entity's ID rule and event types and sent to its endpoint. Both
run their batches through the client's one BatchRunner, so they share its rate
limiter, its 429 pause, its concurrency limit and its retry policy: one budget per
key, whichever kind of events is pulled.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from enum import StrEnum
from typing import Generic

from ._batcher import Batcher
from ._engine import BatchRunner
from ._entity import Entity
from ._ids import prepare_prospect_ids
from ._query import Query, Timestamp, build_query, older_than_retention
from ._results import E, FetchResult, FetchStats
from ._stream import BatchStream, collect

logger = logging.getLogger("explorium_events")


class EntityEvents(Generic[E]):
    """The events of one entity: ``client.prospects`` or ``client.businesses``.

    Made by EventsClient, never directly. ``fetch``, ``stream`` and ``events_for``
    behave exactly as the client's own (which are ``client.prospects``'s), with this
    entity's IDs, event types and event class::

        async with EventsClient() as client:
            accounts = await client.businesses.fetch(business_ids, event_types=["new_office"])
            for event in accounts.events:  # BusinessEvent
                print(event.business_id, event.event_name, event.data)
    """

    def __init__(
        self,
        entity: Entity[E],
        *,
        runner: BatchRunner,
        batch_size: int,
        batch_window: float,
        cache_ttl: float | None,
        cache_size: int,
    ) -> None:
        self._entity: Entity[E] = entity
        self._runner = runner
        self._batch_size = batch_size
        # events_for(): its batches run through the same runner as fetch's.
        self._batcher: Batcher[E] = Batcher(
            runner=runner,
            stats=FetchStats(),
            batch_size=batch_size,
            window=batch_window,
            cache_ttl=cache_ttl,
            cache_size=cache_size,
            entity=entity,
        )
        self._warned_windows: set[Query] = set()
        # The query of a call that names no types and no window: built once, since
        # events_for's callers each ask for it (it never warns: it has no end).
        self._default_query: Query | None = None

    @property
    def entity(self) -> str:
        """Which entity: "prospect" or "business"."""
        return self._entity.name

    @property
    def event_types(self) -> tuple[str, ...]:
        """Every event type of this entity, in the API's order: what None asks for."""
        return self._entity.event_types

    def __repr__(self) -> str:
        return f"<EntityEvents {self._entity.plural} path={self._entity.path!r}>"

    def _query(
        self,
        event_types: Iterable[StrEnum | str] | None,
        timestamp_from: Timestamp | None,
        timestamp_to: Timestamp | None,
    ) -> Query:
        if event_types is None and timestamp_from is None and timestamp_to is None:
            if self._default_query is None:
                self._default_query = build_query(None, None, None, entity=self._entity)
            return self._default_query
        query = build_query(event_types, timestamp_from, timestamp_to, entity=self._entity)
        if query in self._warned_windows:
            return query
        now = dt.datetime.fromtimestamp(self._runner.clock.time(), dt.UTC)
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
        ids: Iterable[str],
        *,
        event_types: Iterable[StrEnum | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
        skip_invalid: bool = False,
    ) -> BatchStream[E]:
        """Results one batch at a time, as each completes; see ``EventsClient.stream``."""
        self._runner.check_open()
        query = self._query(event_types, timestamp_from, timestamp_to)
        prepared = prepare_prospect_ids(ids, skip_invalid=skip_invalid, entity=self._entity)
        return BatchStream(self._runner, prepared, query, self._batch_size, self._entity)

    async def fetch(
        self,
        ids: Iterable[str],
        *,
        event_types: Iterable[StrEnum | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
        skip_invalid: bool = False,
        raise_on_error: bool = True,
    ) -> FetchResult[E]:
        """All events of these IDs, unique by event_id, newest first; see ``EventsClient.fetch``."""
        stream = self.stream(
            ids,
            event_types=event_types,
            timestamp_from=timestamp_from,
            timestamp_to=timestamp_to,
            skip_invalid=skip_invalid,
        )
        return await collect(stream, raise_on_error=raise_on_error)

    async def events_for(
        self,
        entity_id: str,
        *,
        event_types: Iterable[StrEnum | str] | None = None,
        timestamp_from: Timestamp | None = None,
        timestamp_to: Timestamp | None = None,
    ) -> list[E]:
        """One ID's events, newest first, batched with concurrent calls.

        See ``EventsClient.events_for``.
        """
        self._runner.check_open()
        query = self._query(event_types, timestamp_from, timestamp_to)
        return await self._batcher.load(entity_id, query)

    async def aclose(self) -> None:
        """Send the waiting events_for batches now and wait for their answers."""
        await self._batcher.aclose()
