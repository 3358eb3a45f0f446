"""A user's own code: the prospects that changed company, counted with explorium-events."""

from __future__ import annotations

from explorium_events import EventsClient, EventType, SyncEventsClient


async def company_changes(client: EventsClient, prospect_ids: list[str]) -> dict[str, int]:
    """How many company changes each prospect had (async code)."""
    result = await client.fetch(prospect_ids, event_types=[EventType.PROSPECT_CHANGED_COMPANY])
    counts: dict[str, int] = {}
    for event in result.events:
        counts[event.prospect_id] = counts.get(event.prospect_id, 0) + 1
    return counts


def company_changes_blocking(client: SyncEventsClient, prospect_ids: list[str]) -> dict[str, int]:
    """The same, from a script or a notebook."""
    result = client.fetch(prospect_ids, event_types=[EventType.PROSPECT_CHANGED_COMPANY])
    counts: dict[str, int] = {}
    for event in result.events:
        counts[event.prospect_id] = counts.get(event.prospect_id, 0) + 1
    return counts
