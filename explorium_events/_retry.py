"""Which failures are retried, and how long to wait before the next attempt. Pure: no I/O.

How long to wait includes the pause after a 429 (``pause_after_429``), which the client
applies to its whole rate limiter so that every worker waits together.
"""

from __future__ import annotations

import email.utils
import math
import random
from dataclasses import dataclass, field

from ._checks import check_count, check_seconds
from ._errors import RateLimitError, ServerError, TransportError
from ._ratelimit import RateLimitHeaders

RETRYABLE_SERVER_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How a failed batch is retried.

    ``max_attempts`` and ``max_elapsed`` (seconds) bound every batch; waits grow
    exponentially from ``initial`` up to ``cap``, with jitter drawn from ``rng``. A 429
    whose ``Retry-After`` exceeds ``max_retry_after`` fails its batch instead of sleeping.
    """

    max_attempts: int = 6
    max_elapsed: float = 300.0
    initial: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 300.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_count("max_attempts", self.max_attempts)
        # Zero is a real choice for each of these (no waiting, no retry by time); NaN and
        # infinity are not: a NaN cap or elapsed bound silently disables the bound.
        for name in ("max_elapsed", "initial", "cap", "max_retry_after"):
            check_seconds(name, getattr(self, name), zero_ok=True)

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based): equal jitter, capped."""
        return backoff_delay(attempt, initial=self.initial, cap=self.cap, rng=self.rng)

    def is_retryable(self, error: BaseException) -> bool:
        """Whether the batch should be tried again after this error."""
        if isinstance(error, RateLimitError):
            return error.retry_after is None or error.retry_after <= self.max_retry_after
        # TransportError covers dropped connections, timeouts and truncated or malformed
        # 200 bodies; a CancelledError is not an ExploriumError and is never retried.
        if isinstance(error, ServerError):
            return error.status in RETRYABLE_SERVER_STATUSES
        return isinstance(error, TransportError)


def pause_after_429(
    error: RateLimitError,
    headers: RateLimitHeaders | None,
    *,
    now: float,
    attempt: int,
    policy: RetryPolicy,
) -> float:
    """Seconds every worker waits after ``error``, a 429 answered to attempt ``attempt``.

    The server's ``Retry-After`` when it sent one; else until the window's reset
    (``X-RateLimit-Reset``, a Unix time, compared with ``now``); else ``policy``'s backoff.
    """
    if error.retry_after is not None:
        return error.retry_after
    if headers is not None and headers.reset is not None:
        return max(0.0, headers.reset - now)
    return policy.backoff(attempt)


def backoff_delay(attempt: int, *, initial: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: between half and all of min(cap, initial*2**n)."""
    exponent = min(max(attempt - 1, 0), 62)  # 2**62 already dwarfs any cap; avoids overflow
    ceiling = min(cap, initial * math.ldexp(1.0, exponent))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    ``now`` is the current Unix time. Returns None when the header is absent or
    unreadable, and never a negative number.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - now
    if math.isnan(seconds):
        return None
    return max(0.0, min(seconds, 1e9))
