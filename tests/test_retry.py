"""Retry policy: what is retried, how long to wait, and Retry-After parsing."""

from __future__ import annotations

import asyncio
import random

import pytest

from explorium_events import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConnectionFailed,
    MalformedResponse,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeout,
    RetryPolicy,
    ServerError,
    UnprocessableEntityError,
)
from explorium_events._ratelimit import RateLimitHeaders
from explorium_events._retry import backoff_delay, parse_retry_after, pause_after_429

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    "error",
    [
        RateLimitError("x", status=429),
        RateLimitError("x", status=429, retry_after=10),
        ServerError("x", status=500),
        ServerError("x", status=502),
        ServerError("x", status=503),
        ServerError("x", status=504),
        ConnectionFailed("x"),
        RequestTimeout("x"),
        MalformedResponse("x"),
    ],
)
def test_transient_failures_are_retried(error: Exception) -> None:
    """429, 500/502/503/504, connection errors, timeouts and malformed 200s are retried."""
    assert RetryPolicy().is_retryable(error)


@pytest.mark.parametrize(
    "error",
    [
        BadRequestError("x", status=400),
        BadRequestError("x", status=404),
        AuthenticationError("x", status=401),
        PermissionDeniedError("x", status=403),
        UnprocessableEntityError("x", status=422),
        ServerError("x", status=501),
        asyncio.CancelledError(),
        ValueError("bug"),
    ],
)
def test_permanent_failures_and_cancellation_are_not_retried(error: BaseException) -> None:
    """400, 401, 403, 404, 422, 501, a cancellation and a plain bug are never retried."""
    assert not RetryPolicy().is_retryable(error)


def test_retry_after_beyond_the_cap_is_not_retried() -> None:
    """A 429 asking for more than max_retry_after fails instead of sleeping."""
    policy = RetryPolicy(max_retry_after=60)
    assert not policy.is_retryable(RateLimitError("x", status=429, retry_after=61))
    assert policy.is_retryable(RateLimitError("x", status=429, retry_after=60))


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    """Waits lie in [ceiling/2, ceiling] with ceiling = min(cap, initial * 2**(n-1))."""
    rng = random.Random(0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 30.0), (200, 30.0)]:
        delay = backoff_delay(attempt, initial=0.5, cap=30.0, rng=rng)
        assert ceiling / 2 <= delay <= ceiling


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 12 ", 12.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("Wed, 15 Jan 2027 08:00:10 GMT", None),  # computed below
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_parses_seconds_and_http_dates(
    header: str | None, seconds: float | None
) -> None:
    """Delta-seconds and HTTP dates become seconds from now; junk becomes None."""
    parsed = parse_retry_after(header, now=NOW)
    if header and "GMT" in header:
        import email.utils

        expected = email.utils.parsedate_to_datetime(header).timestamp() - NOW
        assert parsed == pytest.approx(max(0.0, expected))
    else:
        assert parsed == seconds


def test_http_date_in_the_past_means_no_wait() -> None:
    """A Retry-After date already past gives 0, never a negative wait."""
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=NOW) == 0.0


def test_policy_rejects_nonsense() -> None:
    """Zero attempts or negative waits are configuration errors."""
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigurationError):
        RetryPolicy(cap=-1)


@pytest.mark.parametrize(
    ("retry_after", "reset", "expected"),
    [
        (12.0, NOW + 40, 12.0),  # the server's Retry-After wins
        (None, NOW + 40, 40.0),  # else until the window resets
        (None, NOW - 5, 0.0),  # a reset already past: no wait
        (None, None, None),  # else the policy's backoff for this attempt
    ],
)
def test_pause_after_429_prefers_retry_after_then_reset_then_backoff(
    retry_after: float | None, reset: float | None, expected: float | None
) -> None:
    """The pause after a 429 is the server's Retry-After, else until the reset, else backoff."""
    policy = RetryPolicy(initial=1.0, cap=30.0, rng=random.Random(0))
    backoff = RetryPolicy(initial=1.0, cap=30.0, rng=random.Random(0)).backoff(2)
    error = RateLimitError("slow down", status=429, retry_after=retry_after)
    headers = RateLimitHeaders(limit=200, remaining=0, reset=reset)
    pause = pause_after_429(error, headers, now=NOW, attempt=2, policy=policy)
    assert pause == (backoff if expected is None else expected)
