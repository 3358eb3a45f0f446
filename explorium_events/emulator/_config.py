"""The emulator's knobs: one frozen, keyword-only dataclass, checked when built."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Callable
from typing import Literal

__all__ = ["EmulatorConfig", "RateLimitCost", "start_of_today_utc"]

RateLimitCost = Literal["request", "id"]

_RATE_FIELDS = (
    "error_rate",
    "rate_limit_error_rate",
    "drop_rate",
    "truncate_rate",
    "duplicate_rate",
    "slow_rate",
)
_NON_NEGATIVE_FIELDS = (
    "rate_window",
    "latency_ms",
    "latency_jitter_ms",
    "retry_after_seconds",
    "slow_ms",
)


def start_of_today_utc() -> dt.datetime:
    """Return midnight of the current UTC day, as an aware datetime."""
    today = dt.datetime.now(dt.UTC).date()
    return dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class EmulatorConfig:
    """How the emulator behaves; every field has a default that mimics the real API.

    Rate limiting:
        api_key: ``None`` accepts any non-empty key (each key gets its own window);
            otherwise only exactly this key is accepted.
        rate_limit: units allowed per sliding window, per key; ``None`` or ``0``
            disables the limit (and the ``X-RateLimit-*`` headers).
        rate_window: length of the sliding window, in seconds.
        rate_limit_cost: ``"request"`` (one unit per request) or ``"id"`` (one unit
            per prospect ID in the request).
        clock: wall clock in Unix seconds that the window reads; inject a fake one
            in tests instead of sleeping. Moving the emulator's clock (``Emulator.clock``)
            forward adds to it, so the windows age with the events' ``now``.

    Faults, each drawn from one ``random.Random(seed)`` owned by the app:
        latency_ms, latency_jitter_ms: how long every answer takes, from the request's
            arrival (uniform jitter, +-).
        error_rate: probability of a 500/502/503/504.
        rate_limit_error_rate: probability of an injected 429 that waits
            ``retry_after_seconds``.
        drop_rate: probability of closing the connection without an answer.
        truncate_rate: probability of a 200 whose body stops short of its
            ``Content-Length``. Drops, 5xx and truncations exclude each other, so
            these three rates may add up to 1 at most.
        duplicate_rate: probability, per event, that it is sent twice.
        slow_rate, slow_ms: probability of an extra delay of ``slow_ms``.

    Data:
        seed: drives the synthetic events and the fault draws, pulled and pushed
            (enrollment ids, pushed events and their delivery faults) alike.
        now: aware datetime the events are anchored to (they fall in the 90 days
            before it); ``None`` means midnight UTC of the day the app is created.
    """

    api_key: str | None = dataclasses.field(default=None, repr=False)  # never shown
    rate_limit: int | None = 200
    rate_window: float = 60.0
    rate_limit_cost: RateLimitCost = "request"
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit_error_rate: float = 0.0
    retry_after_seconds: float = 1.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    duplicate_rate: float = 0.0
    slow_rate: float = 0.0
    slow_ms: float = 0.0
    seed: int = 0
    now: dt.datetime | None = None
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key must be None (accept any key) or a non-empty string")
        if self.rate_limit is not None and self.rate_limit < 0:
            raise ValueError(f"rate_limit must be None or >= 0, not {self.rate_limit!r}")
        if self.rate_limit_cost not in ("request", "id"):
            raise ValueError(
                f"rate_limit_cost must be 'request' or 'id', not {self.rate_limit_cost!r}"
            )
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], not {value!r}")
        for name in _NON_NEGATIVE_FIELDS:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if self.drop_rate + self.error_rate + self.truncate_rate > 1.0:
            # They are exclusive outcomes of one request, so their sum is a probability too.
            raise ValueError("drop_rate + error_rate + truncate_rate must not exceed 1")
        if self.rate_limit and self.rate_window <= 0:
            raise ValueError("rate_window must be > 0 when a rate limit is set")
        if self.now is not None and self.now.utcoffset() is None:
            raise ValueError("now must be an aware datetime (for example tzinfo=datetime.UTC)")

    @property
    def rate_limited(self) -> bool:
        """Whether the sliding-window limit is on."""
        return bool(self.rate_limit)

    def anchor(self) -> dt.datetime:
        """Return ``now`` in UTC, or midnight UTC of today when ``now`` is None."""
        if self.now is None:
            return start_of_today_utc()
        return self.now.astimezone(dt.UTC)
