"""A sliding-window rate limit per API key, read from an injectable wall clock.

A unit stamped at ``t`` counts until ``t + window``. A request is admitted when
the units still in the window plus its own cost fit the limit; a rejected
request consumes nothing. Time is the wall clock plus ``skipped()``: how far the
emulator's clock was moved on (``_clock``), so that moving it ages the windows too;
``X-RateLimit-Reset`` is still told in wall-clock time.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
from collections.abc import Callable

__all__ = ["RateDecision", "SlidingWindowLimiter"]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RateDecision:
    """What the limiter decided, and what the ``X-RateLimit-*`` headers say.

    ``reset`` is the Unix time (whole seconds, rounded up) when the oldest counted
    unit leaves the window, or now when the window is empty. ``retry_after`` is
    0 when admitted, else whole seconds (rounded up, at least 1) until it would be.
    """

    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int = 0

    def headers(self) -> dict[str, str]:
        """Return the ``X-RateLimit-*`` headers (and ``Retry-After`` when rejected)."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class SlidingWindowLimiter:
    """Counts units per key over the last ``window`` seconds of ``clock``."""

    def __init__(
        self,
        *,
        limit: int,
        window: float,
        clock: Callable[[], float],
        skipped: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._skipped = skipped
        # Keyed by a digest so that the emulator never holds the keys themselves.
        self._stamps: dict[bytes, collections.deque[tuple[float, int]]] = {}
        self._used: dict[bytes, int] = {}

    def __repr__(self) -> str:
        return (
            f"<SlidingWindowLimiter limit={self._limit} window={self._window}s "
            f"keys={len(self._stamps)} used={sum(self._used.values())}>"
        )

    def peek(self, key: str) -> RateDecision:
        """Report the window of ``key`` without consuming anything."""
        digest, now = self._prune(key)
        return self._decision(digest, now, allowed=True)

    def acquire(self, key: str, cost: int) -> RateDecision:
        """Admit and count ``cost`` units for ``key`` if they fit, else reject them."""
        digest, now = self._prune(key)
        used = self._used.get(digest, 0)
        if used + cost > self._limit:
            return self._decision(
                digest, now, allowed=False, retry_after=self._wait(digest, now, cost)
            )
        self._stamps.setdefault(digest, collections.deque()).append((now, cost))
        self._used[digest] = used + cost
        return self._decision(digest, now, allowed=True)

    def reset(self) -> None:
        """Forget every counted unit of every key."""
        self._stamps.clear()
        self._used.clear()

    def _prune(self, key: str) -> tuple[bytes, float]:
        digest = hashlib.sha256(key.encode()).digest()
        now = self._clock() + self._skipped()
        stamps = self._stamps.get(digest)
        if stamps is not None:
            while stamps and stamps[0][0] + self._window <= now:
                _, cost = stamps.popleft()
                self._used[digest] -= cost
            if not stamps:
                del self._stamps[digest]
                del self._used[digest]
        return digest, now

    def _wait(self, digest: bytes, now: float, cost: int) -> int:
        if cost > self._limit:
            # It can never fit; a full window is the most honest wait to announce.
            return max(1, math.ceil(self._window))
        excess = self._used.get(digest, 0) + cost - self._limit
        for stamp, stamp_cost in self._stamps.get(digest, ()):
            excess -= stamp_cost
            if excess <= 0:
                return max(1, math.ceil(stamp + self._window - now))
        return 1  # unreachable: the loop frees everything counted

    def _decision(
        self, digest: bytes, now: float, *, allowed: bool, retry_after: int = 0
    ) -> RateDecision:
        stamps = self._stamps.get(digest)
        reset = math.ceil((stamps[0][0] + self._window if stamps else now) - self._skipped())
        return RateDecision(
            allowed=allowed,
            limit=self._limit,
            remaining=max(0, self._limit - self._used.get(digest, 0)),
            reset=reset,
            retry_after=retry_after,
        )
