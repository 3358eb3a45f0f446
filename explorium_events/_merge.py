"""Merge events from many batches: one copy per event_id, newest first. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable

from ._models import Event

_LOWER_HEX = frozenset("0123456789abcdef")


def _digest(event_id: str) -> bytes | str:
    # A 32-hex event id packs into 16 bytes; anything else is kept as it is. Only the
    # canonical lowercase form is packed: fromhex() ignores case and whitespace, so
    # "AB.." and "ab..", or ids with spaces in different places, would collide.
    if len(event_id) == 32 and _LOWER_HEX.issuperset(event_id):
        return bytes.fromhex(event_id)
    return event_id


class EventDeduper:
    """Remembers which event ids were seen; compact enough for millions of events."""

    def __init__(self) -> None:
        self._seen: set[bytes | str] = set()
        self.duplicates = 0

    def first_sightings(self, events: Iterable[Event]) -> list[Event]:
        """The events whose id was not seen before, in their order; counts the rest."""
        fresh: list[Event] = []
        for event in events:
            key = _digest(event.event_id)
            if key in self._seen:
                self.duplicates += 1
                continue
            self._seen.add(key)
            fresh.append(event)
        return fresh


def newest_first(events: Iterable[Event]) -> list[Event]:
    """Events sorted newest first, ties broken by event_id, so the order is deterministic."""
    ordered = sorted(events, key=lambda event: event.event_id)
    ordered.sort(key=lambda event: event.event_time, reverse=True)
    return ordered

