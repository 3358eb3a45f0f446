"""Wire shapes with aioresponses (on aiohttp 3.14+ through tests/_aioresponses_compat.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aioresponses import aioresponses

from explorium_events import (
    AuthenticationError,
    EventsClient,
    PermissionDeniedError,
    RetryPolicy,
    ServerError,
    UnprocessableEntityError,
)
from tests.conftest import TEST_KEY, FakeClock, events_body, prospect_id

URL = "https://api.explorium.ai/v1/prospects/events"


@pytest.fixture
def mocked() -> Any:
    with aioresponses() as mock:
        yield mock


def client(clock: FakeClock, **settings: Any) -> EventsClient:
    settings.setdefault("retry", RetryPolicy(max_attempts=1))
    return EventsClient(api_key=TEST_KEY, clock=clock, **settings)


async def test_posts_json_to_the_documented_url_with_the_key_header(
    mocked: Any, clock: FakeClock
) -> None:
    """One POST to /v1/prospects/events with header api_key and a JSON body."""
    ids = [prospect_id(0), prospect_id(1)]
    mocked.post(URL, payload=events_body(ids))
    async with client(clock) as api:
        result = await api.fetch(ids)
    [(key, [call])] = list(mocked.requests.items())
    assert key[0] == "POST"
    assert str(key[1]) == URL
    assert call.kwargs["headers"]["api_key"] == TEST_KEY
    assert call.kwargs["headers"]["Content-Type"] == "application/json"
    assert json.loads(call.kwargs["data"])["prospect_ids"] == ids
    assert len(result.events) == 2


async def test_large_response_bodies_decode(mocked: Any, clock: FakeClock) -> None:
    """A 40-prospect answer of about 300 KiB decodes (the shim's roomy stream reader)."""
    ids = [prospect_id(number) for number in range(40)]
    body = events_body(ids)
    body["output_events"] = body["output_events"] * 100  # duplicates, dropped by the client
    mocked.post(URL, payload=body)
    async with client(clock) as api:
        result = await api.fetch(ids)
    assert len(result.events) == 40
    assert result.stats.duplicates_dropped == 3960


@pytest.mark.parametrize(
    ("status", "payload", "kind", "message", "correlation"),
    [
        (
            422,
            {
                "detail": [
                    {
                        "loc": ["body", "prospect_ids", 0],
                        "msg": "string does not match",
                        "type": "value_error",
                    }
                ]
            },
            UnprocessableEntityError,
            "body.prospect_ids.0: string does not match",
            None,
        ),
        (
            401,
            {"details": "Invalid API key", "correlation_id": "1" * 32},
            AuthenticationError,
            "Invalid API key",
            "1" * 32,
        ),
        (
            403,
            {"error": "forbidden", "message": "out of credits"},
            PermissionDeniedError,
            "forbidden: out of credits",
            None,
        ),
        (503, {"error": "unavailable"}, ServerError, "unavailable", None),
    ],
)
async def test_error_bodies_of_every_documented_shape_are_parsed(
    mocked: Any,
    clock: FakeClock,
    status: int,
    payload: dict[str, Any],
    kind: type[Exception],
    message: str,
    correlation: str | None,
) -> None:
    """Each documented error shape yields the right class, message and correlation id."""
    mocked.post(URL, status=status, payload=payload)
    async with client(clock) as api:
        result = await api.fetch([prospect_id(0)], raise_on_error=False)
    [failure] = result.failed
    assert isinstance(failure.error, kind)
    assert failure.status == status
    assert message in failure.message
    assert failure.correlation_id == correlation


async def test_rate_limit_headers_and_retry_after_reach_the_limiter(
    mocked: Any, clock: FakeClock
) -> None:
    """A 429 with Retry-After: 5 pauses the client 5 s, then the retry succeeds."""
    ids = [prospect_id(0)]
    mocked.post(
        URL,
        status=429,
        payload={"error": "rate", "retry_after": 5},
        headers={
            "Retry-After": "5",
            "X-RateLimit-Limit": "200",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(clock.time()) + 5),
        },
    )
    mocked.post(
        URL,
        payload=events_body(ids),
        headers={
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Remaining": "99",
            "X-RateLimit-Reset": str(int(clock.time()) + 65),
        },
    )
    async with client(clock, retry=RetryPolicy(max_attempts=3)) as api:
        result = await api.fetch(ids)
        assert api.rate_limit_state().server_limit == 100
    assert len(result.events) == 1
    assert result.stats.rate_limited == 1
    assert clock.now >= 5.0


async def test_html_error_page_gives_a_readable_message(mocked: Any, clock: FakeClock) -> None:
    """An HTML 502 from a proxy becomes a one-line message, not a page of markup."""
    mocked.post(
        URL,
        status=502,
        body="<html><body><h1>Bad gateway</h1></body></html>",
        content_type="text/html",
    )
    async with client(clock) as api:
        result = await api.fetch([prospect_id(0)], raise_on_error=False)
    assert "HTML page" in result.failed[0].message
    assert not re.search(r"<h1>", str(result.failed[0].error))
