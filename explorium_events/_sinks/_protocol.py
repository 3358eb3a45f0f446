"""What a sink is: the public ``EventSink`` protocol, and what the built-in sinks add to it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from .._results import AnyEvent


@runtime_checkable
class EventSink(Protocol):
    """Where a pull writes events: anything with these three methods.

    A sink of your own (a database, a queue) may receive a batch's events again after
    a crash, so make ``write`` idempotent by ``event_id`` (an upsert), as SqliteSink does.
    """

    # Sequence[Any], so that a sink written for Event stays one: a prospect pull hands
    # it Events, a business pull (pull(..., entity="business")) BusinessEvents.
    def write(self, events: Sequence[Any]) -> object:
        """Write one batch's events: Event objects, or BusinessEvent in a business pull."""
        ...

    def flush_durably(self) -> None:
        """Make everything written so far survive a crash (fsync, or commit)."""
        ...

    def close(self) -> None:
        """Flush and release the output."""
        ...


class BuiltinSink(EventSink, Protocol):
    """A sink of a registered format: an EventSink that also says where and how much.

    ``name`` says where (for messages), ``format`` is its registry name, ``written``
    counts the events written; ``write`` flushes each batch to the OS and returns how
    many events it held.
    """

    name: str
    format: str
    written: int

    def write(self, events: Iterable[AnyEvent]) -> int:
        """Write these events (one batch), flush to the OS, and return how many."""
        ...
