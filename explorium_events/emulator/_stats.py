"""Counters of what the emulator saw and did, readable from Python and over HTTP."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

__all__ = ["EmulatorStats"]


@dataclasses.dataclass(kw_only=True, eq=False)
class EmulatorStats:
    """Live counters of one emulator app.

    Attributes:
        requests: requests that reached the events endpoint, whatever the outcome.
        requests_by_status: how many responses each status code got; dropped
            connections have no status and are counted in ``dropped`` only.
        in_flight: requests being handled right now.
        peak_in_flight: the most requests ever handled at once (since the last reset).
        ids_seen: prospect IDs in requests that passed auth, validation and the
            rate limit (duplicates across requests count again).
        unique_ids_seen: distinct prospect IDs among those.
        dropped: connections closed without an answer.
        truncated: 200 responses whose body was cut short.
        duplicated_events: events sent twice.
        latency_seconds: the latency drawn for the requests (``latency_ms`` and its
            jitter, not spikes), summed: a benchmark's ideal pull time is this over its
            concurrency, whatever the draws.
    """

    requests: int = 0
    requests_by_status: dict[int, int] = dataclasses.field(default_factory=dict)
    in_flight: int = 0
    peak_in_flight: int = 0
    ids_seen: int = 0
    dropped: int = 0
    truncated: int = 0
    duplicated_events: int = 0
    latency_seconds: float = 0.0
    _unique: set[bytes] = dataclasses.field(default_factory=set, init=False, repr=False)

    @property
    def unique_ids_seen(self) -> int:
        """Number of distinct prospect IDs in accepted requests."""
        return len(self._unique)

    def as_dict(self) -> dict[str, Any]:
        """Return the counters as a JSON-ready dict (status codes become string keys).

        This is exactly what ``GET /_emulator/stats`` answers.
        """
        return {
            "requests": self.requests,
            "requests_by_status": {
                str(status): count for status, count in sorted(self.requests_by_status.items())
            },
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "ids_seen": self.ids_seen,
            "unique_ids_seen": self.unique_ids_seen,
            "dropped": self.dropped,
            "truncated": self.truncated,
            "duplicated_events": self.duplicated_events,
            "latency_seconds": self.latency_seconds,
        }

    def reset(self) -> None:
        """Zero every counter; requests still in flight stay counted in ``in_flight``."""
        self.requests = 0
        self.requests_by_status.clear()
        self.peak_in_flight = self.in_flight
        self.ids_seen = 0
        self.dropped = 0
        self.truncated = 0
        self.duplicated_events = 0
        self.latency_seconds = 0.0
        self._unique.clear()

    def enter(self) -> None:
        """Count a request that starts being handled."""
        self.requests += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        """Count a request that is done being handled."""
        self.in_flight -= 1

    def answered(self, status: int) -> None:
        """Count a response by its status code."""
        self.requests_by_status[status] = self.requests_by_status.get(status, 0) + 1

    def fetched(self, prospect_ids: Iterable[str]) -> None:
        """Count the prospect IDs of an accepted request."""
        for prospect_id in prospect_ids:
            self.ids_seen += 1
            # 20 raw bytes instead of the 40-char string halves the set's memory.
            self._unique.add(bytes.fromhex(prospect_id))

    def __repr__(self) -> str:
        return (
            f"<EmulatorStats requests={self.requests} in_flight={self.in_flight} "
            f"by_status={dict(sorted(self.requests_by_status.items()))} "
            f"ids_seen={self.ids_seen}>"
        )
