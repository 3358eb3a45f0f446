"""What the rate limiter reads, hands out and shows: headers, grants, the shared window's protocol.

The data types of ``_ratelimit`` (re-exported there), apart so that the limiter's module
holds only its logic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

RateLimitCost = Literal["request", "id"]


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """The rate-limit headers of one answer; None where a header was absent or unreadable."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # a Unix timestamp in this API
    retry_after: float | None = None  # seconds


@dataclass(frozen=True, slots=True)
class Grant:
    """What acquire() handed out, for release() to tell this client's units from others'.

    ``ours``: this client's units the server could hold when it stamps the request (those
    answered less than a window before it was sent, plus those in flight, itself included).
    ``sent``: this client's running total of units sent, itself included.
    ``probe``: whether it went alone, as the probe.
    """

    ours: int
    sent: int
    probe: bool = False
    token: str | None = None  # the shared window's entry, when it granted the request


@dataclass(frozen=True, slots=True)
class SharedDecision:
    """The shared window's answer: granted (its entry is ``token``), or wait ``wait`` seconds.

    ``paused``: the wait is a 429's pause that another process (or this one) shared.
    """

    granted: bool
    wait: float = 0.0
    paused: bool = False
    token: str | None = None
    used: int | None = None  # units in the shared window, this grant's included


class SharedWindow(Protocol):
    """A sliding window kept outside the process, shared by every process spending one key.

    Each call answers within a short timeout; None from ``acquire`` means the store is
    unreachable and the caller paces alone.
    """

    @property
    def available(self) -> bool:
        """Whether the store answered the last call (False while pacing locally)."""
        ...

    @property
    def outages(self) -> int:
        """How many times the store became unreachable so far."""
        ...

    async def acquire(
        self, units: int, limit: int | None, backlog: Sequence[tuple[float, int, str | None]]
    ) -> SharedDecision | None:
        """Check and record ``units`` at once, after recording ``backlog``.

        ``backlog``: (age in seconds, units, the shared entry or None) of requests
        answered in the last window, each recorded unless its entry is already there.
        """
        ...

    def answered(self, token: str) -> None:
        """The request of ``token`` was answered: its slot ages from now."""
        ...

    async def pause(self, seconds: float) -> None:
        """Hold every process back for ``seconds``."""
        ...

    async def aclose(self) -> None:
        """Stop background work and close the connection. Idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """A snapshot of the limiter, for progress displays and debugging."""

    limit: int | None
    window: float
    cost: RateLimitCost
    used: int
    in_flight: int
    paused_for: float
    waiting: bool
    server_limit: int | None
    server_remaining: int | None
    # None without a shared store; True while it paces every process, False while
    # this process paces alone because the store is unreachable.
    shared: bool | None = None


@dataclass(frozen=True, slots=True)
class ServerLimit:
    """The server's limit as a run read it (``X-RateLimit-Limit``, in units of ``cost``).

    A checkpoint or sync state keeps it (just these two values, never the key), so that a
    resumed run with no client-side limit still probes first (``SlidingWindowLimiter.recall``).
    """

    limit: int
    cost: RateLimitCost

    @classmethod
    def of(cls, state: RateLimitState) -> ServerLimit | None:
        """What the limiter has read from the server so far, if anything."""
        return None if state.server_limit is None else cls(state.server_limit, state.cost)

    def to_json(self) -> str:
        """As a checkpoint or sync state stores it."""
        return json.dumps({"limit": self.limit, "cost": self.cost}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> ServerLimit | None:
        """The stored value, or None when absent or not one (the next run reads it anew)."""
        try:
            raw = json.loads(text) if text is not None else None
        except ValueError:
            return None
        if not isinstance(raw, dict):
            return None
        limit, cost = raw.get("limit"), raw.get("cost")
        if type(limit) is not int or limit <= 0 or cost not in ("request", "id"):
            return None
        return cls(limit, cost)
