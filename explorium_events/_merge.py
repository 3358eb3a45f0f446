"""Merge events from many batches: one copy per event_id, newest first. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import compress, count, islice
from operator import attrgetter, eq

from ._digests import SMALL, DigestSet
from ._results import E

_LOWER_HEX = frozenset("0123456789abcdef")
_EVENT_ID_HEX = 32


class EventDeduper:
    """Remembers which event ids were seen; compact enough for millions of events.

    The first ``SMALL`` ids are kept as they are, in a plain set: the fastest check,
    at a fixed price of a few MB. Past that, the documented 32-hex ids are packed into a
    DigestSet (about 20 bytes each instead of about 100); any other id is kept as it
    is. Only the canonical lowercase form is packed: fromhex() ignores case and
    whitespace, so "AB.." and "ab.." must not meet.
    """

    def __init__(self) -> None:
        self._small: set[str] | None = set()
        self._packed = DigestSet(_EVENT_ID_HEX // 2, small=0)
        self._other: set[str] = set()
        self.duplicates = 0

    def _first_time(self, event_id: str) -> bool:
        if len(event_id) == _EVENT_ID_HEX and _LOWER_HEX.issuperset(event_id):
            return self._packed.add(bytes.fromhex(event_id))
        if event_id in self._other:
            return False
        self._other.add(event_id)
        return True

    def first_sightings(self, events: Iterable[E]) -> list[E]:
        """The events whose id was not seen before, in their order; counts the rest."""
        fresh: list[E] = []
        small = self._small
        if small is not None:
            for event in events:
                event_id = event.event_id
                if event_id in small:
                    self.duplicates += 1
                else:
                    small.add(event_id)
                    fresh.append(event)
            if len(small) > SMALL:
                self._small = None
                for event_id in small:
                    self._first_time(event_id)
            return fresh
        first_time = self._first_time
        for event in events:
            if first_time(event.event_id):
                fresh.append(event)
            else:
                self.duplicates += 1
        return fresh


def unique_events(events: Iterable[E]) -> tuple[list[E], int]:
    """One answer's events, the first of each event_id, in their order; and how many repeats.

    For one answer alone: its few dozen ids fit a plain set, which is faster than an
    EventDeduper and is gone with the answer.
    """
    seen: set[str] = set()
    fresh: list[E] = []
    repeats = 0
    for event in events:
        event_id = event.event_id
        if event_id in seen:
            repeats += 1
        else:
            seen.add(event_id)
            fresh.append(event)
    return fresh, repeats


_by_id = attrgetter("event_id")
_by_time = attrgetter("event_time")


def newest_first(events: Iterable[E]) -> list[E]:
    """Events sorted newest first, ties broken by event_id, so the order is deterministic.

    Sorted by time alone, then each run of equal times by id: a second full sort by id
    cost twice the first, and ties are few (the index scan below runs in C).
    """
    ordered = sorted(events, key=_by_time, reverse=True)
    times = list(map(_by_time, ordered))
    ties = compress(count(1), map(eq, times, islice(times, 1, None)))
    end = -1
    for index in ties:  # ordered[index] has the time of ordered[index - 1]
        if index <= end:
            continue
        start = index - 1
        end = index
        while end + 1 < len(times) and times[end + 1] == times[start]:
            end += 1
        ordered[start : end + 1] = sorted(ordered[start : end + 1], key=_by_id)
    return ordered
