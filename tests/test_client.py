"""EventsClient end to end against a real server on 127.0.0.1, with an injected clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from explorium_events import (
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    EventsClient,
    EventType,
    FetchError,
    InvalidProspectIdError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    UnprocessableEntityError,
)
from tests.conftest import TEST_KEY, ApiServer, FakeClock, Seen, event_for, events_body

IdMaker = Callable[[int], list[str]]


def make_client(api: ApiServer, clock: FakeClock, **settings: Any) -> EventsClient:
    settings.setdefault("retry", RetryPolicy(max_attempts=4, initial=0.5, cap=4.0))
    return EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock, **settings)


async def test_fetch_returns_every_event_once_newest_first(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """A fetch of 100 IDs returns one event per ID, sorted newest first, ties by event_id."""
    async with make_client(api, clock) as client:
        result = await client.fetch(ids(100))
    assert len(result.events) == 100
    keys = [(event.event_time, event.event_id) for event in result.events]
    assert keys == sorted(keys, key=lambda key: (-key[0].timestamp(), key[1]))
    assert sorted(result.succeeded) == sorted(ids(100))
    assert result.failed == [] and result.invalid == []


async def test_duplicates_and_case_are_sent_once(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """10,000 inputs holding 2,500 unique IDs (upper, padded, repeated) make 63 requests."""
    unique = ids(2500)
    noisy = [f"  {pid.upper()} " if n % 2 else pid for n in range(4) for pid in unique]
    async with make_client(api, clock, rate_limit=None) as client:
        result = await client.fetch(noisy)
    assert len(api.requests) == 63  # ceil(2500 / 40)
    assert sorted(api.ids_requested) == sorted(unique)
    assert result.stats.ids == 2500 and result.stats.duplicate_ids == 7500
    assert all(len(seen.ids) <= 40 for seen in api.requests)


async def test_empty_input_makes_no_request(api: ApiServer, clock: FakeClock) -> None:
    """Fetching nothing returns an empty result without a request."""
    async with make_client(api, clock) as client:
        result = await client.fetch([])
    assert api.requests == [] and result.events == [] and result.stats.requests == 0


async def test_invalid_id_raises_before_any_request(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """An invalid ID raises an error naming it and the rule, and nothing is sent."""
    async with make_client(api, clock) as client:
        with pytest.raises(InvalidProspectIdError) as caught:
            await client.fetch([*ids(50), "not-an-id", "abc"])
    assert api.requests == []
    assert caught.value.count == 2
    assert "'not-an-id'" in str(caught.value) and "40 hexadecimal" in str(caught.value)


async def test_invalid_id_in_one_shot_iterator_raises_after_fetching_the_ids_before_it(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """A generator is checked as consumed: the IDs before its invalid value are fetched."""
    async with make_client(api, clock) as client:
        with pytest.raises(InvalidProspectIdError) as caught:
            await client.fetch(pid for pid in [*ids(200), "zz" * 20])
    assert sorted(api.ids_requested) == sorted(ids(200))
    result = caught.value.result
    assert result is not None and sorted(result.succeeded) == sorted(ids(200))
    assert [bad.value for bad in result.invalid] == ["zz" * 20]


async def test_skip_invalid_reports_skipped_ids(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """With skip_invalid the bad values are listed on the result and the rest is fetched."""
    async with make_client(api, clock) as client:
        result = await client.fetch([*ids(5), "nope", "G" * 40], skip_invalid=True)
    assert [item.value for item in result.invalid] == ["nope", "G" * 40]
    assert [item.position for item in result.invalid] == [5, 6]
    assert len(result.succeeded) == 5 and len(api.ids_requested) == 5


async def test_smaller_batch_size_is_honoured_and_larger_refused(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """batch_size=7 sends batches of at most 7; batch_size=41 is refused."""
    async with make_client(api, clock, batch_size=7) as client:
        await client.fetch(ids(50))
    assert [len(seen.ids) for seen in api.requests].count(7) == 7
    assert max(len(seen.ids) for seen in api.requests) == 7
    with pytest.raises(ConfigurationError, match="1 to 40"):
        make_client(api, clock, batch_size=41)


async def test_request_body_carries_types_and_window(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """The body holds the chosen event types and the normalised window, nothing else."""
    async with make_client(api, clock) as client:
        await client.fetch(
            ids(3),
            event_types=[EventType.PROSPECT_CHANGED_COMPANY],
            timestamp_from="2026-09-01",
            timestamp_to="2026-10-01T12:00:00Z",
        )
    body = api.requests[0].body
    assert body == {
        "prospect_ids": ids(3),
        "event_types": ["prospect_changed_company"],
        "timestamp_from": "2026-09-01",
        "timestamp_to": "2026-10-01T12:00:00+00:00",
    }


async def test_default_asks_for_all_three_event_types(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """Without event_types every known type is requested."""
    async with make_client(api, clock) as client:
        await client.fetch(ids(1))
    assert api.requests[0].body["event_types"] == [kind.value for kind in EventType]
    assert "timestamp_from" not in api.requests[0].body


async def test_concurrency_never_exceeds_max(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """With 50 batches waiting, the server never sees more than max_concurrency at once."""

    async def slow(server: ApiServer, seen: Seen) -> web.Response:
        await asyncio.sleep(0.005)
        return web.json_response(events_body(seen.ids))

    api.handler = slow
    async with make_client(api, clock, max_concurrency=5, rate_limit=None) as client:
        await client.fetch(ids(2000))
        assert client.peak_in_flight == 5
    assert api.peak_in_flight == 5


async def test_retries_5xx_then_succeeds(api: ApiServer, clock: FakeClock, ids: IdMaker) -> None:
    """Two 503s then a 200: the batch succeeds on attempt 3 after backoff sleeps."""
    answers = iter([503, 503])

    def flaky(server: ApiServer, seen: Seen) -> web.Response:
        status = next(answers, 200)
        if status != 200:
            return web.json_response({"error": "busy"}, status=status)
        return web.json_response(events_body(seen.ids))

    api.handler = flaky
    async with make_client(api, clock) as client:
        result = await client.fetch(ids(10))
    assert len(result.events) == 10
    assert result.stats.requests == 3 and result.stats.retries == 2
    assert len(clock.sleeps) == 2 and all(0.25 <= delay <= 1.0 for delay in clock.sleeps)


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_client_errors_are_not_retried(
    api: ApiServer, clock: FakeClock, ids: IdMaker, status: int
) -> None:
    """A 400, 404 or 422 fails its batch after one attempt, with the server's message."""
    api.handler = lambda server, seen: web.json_response(
        {"detail": [{"loc": ["body", "prospect_ids", 0], "msg": "bad id", "type": "x"}]},
        status=status,
    )
    async with make_client(api, clock) as client:
        result = await client.fetch(ids(3), raise_on_error=False)
    assert len(api.requests) == 1
    failure = result.failed[0]
    assert failure.status == status and failure.attempts == 1
    assert "body.prospect_ids.0: bad id" in failure.message
    if status == 422:
        assert isinstance(failure.error, UnprocessableEntityError)


@pytest.mark.parametrize(
    ("status", "kind"), [(401, AuthenticationError), (403, PermissionDeniedError)]
)
async def test_rejected_key_stops_everything_and_accounts_for_every_id(
    api: ApiServer, clock: FakeClock, ids: IdMaker, status: int, kind: type[Exception]
) -> None:
    """A 401/403 is not retried, ends the pull, and every ID lands in result.failed."""
    api.handler = lambda server, seen: web.json_response(
        {"details": "bad key", "correlation_id": "f" * 32}, status=status
    )
    async with make_client(api, clock, max_concurrency=3) as client:
        with pytest.raises(FetchError) as caught:
            await client.fetch(ids(400))
    result = caught.value.result
    assert len(api.requests) == 1  # the probe: nothing else was sent with a rejected key
    assert sorted(result.failed_ids) == sorted(ids(400))
    assert isinstance(result.failed[0].error, kind)
    assert "check" in str(result.failed[0].error).lower()
    assert result.failed[0].correlation_id == "f" * 32


async def test_partial_failure_raises_with_everything_that_arrived(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """One batch failing for good: FetchError.result holds the other events and the failure."""
    doomed = ids(80)[40:]

    def handler(server: ApiServer, seen: Seen) -> web.Response:
        if seen.ids == doomed:
            return web.json_response({"details": "boom", "correlation_id": "e" * 32}, status=500)
        return web.json_response(events_body(seen.ids))

    api.handler = handler
    async with make_client(api, clock) as client:
        with pytest.raises(FetchError) as caught:
            await client.fetch(ids(120))
    result = caught.value.result
    assert len(result.events) == 80
    [failure] = result.failed
    assert failure.prospect_ids == tuple(doomed)
    assert (failure.status, failure.correlation_id, failure.attempts) == (500, "e" * 32, 4)
    assert isinstance(failure.error, ServerError)
    assert set(result.succeeded) | set(result.failed_ids) == set(ids(120))
    assert not set(result.succeeded) & set(result.failed_ids)
    assert "e" * 32 in str(caught.value)


async def test_raise_on_error_false_returns_failures(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """With raise_on_error=False a failed batch is listed in result.failed, not raised."""
    api.handler = lambda server, seen: web.json_response({"error": "down"}, status=502)
    async with make_client(api, clock, retry=RetryPolicy(max_attempts=2, initial=0.1)) as client:
        result = await client.fetch(ids(10), raise_on_error=False)
    assert result.failed[0].status == 502 and result.failed[0].attempts == 2
    assert result.stats.failed_batches == 1


async def test_duplicate_events_are_dropped_within_and_across_batches(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """The same event twice in one response and again in another batch is returned once."""
    shared = event_for(ids(1)[0])

    def handler(server: ApiServer, seen: Seen) -> web.Response:
        body = events_body(seen.ids)
        body["output_events"] += [shared, shared]
        return web.json_response(body)

    api.handler = handler
    async with make_client(api, clock, batch_size=10) as client:
        result = await client.fetch(ids(30))
    assert len(result.events) == 30
    assert len({event.event_id for event in result.events}) == 30
    assert result.stats.duplicates_dropped == 2 * 3  # two extra copies in each of 3 batches


async def test_429_pauses_every_worker_until_retry_after(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """A 429 with Retry-After: 7 holds every request back until 7 s on the injected clock."""
    answered_429_at: list[float] = []

    def handler(server: ApiServer, seen: Seen) -> web.Response:
        if len(server.requests) == 3:
            answered_429_at.append(clock.monotonic())
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": "7"}
            )
        return web.json_response(events_body(seen.ids))

    api.handler = handler
    async with make_client(api, clock, max_concurrency=4) as client:
        result = await client.fetch(ids(400))
    assert len(result.events) == 400 and result.stats.rate_limited == 1
    [moment] = answered_429_at
    later = [seen.at for seen in api.requests[3:]]
    # Up to three requests were already on the wire when the 429 came back (how many
    # depends on which answers the loop handled first); none left between the 429 and
    # the 7 s: every request sent after it waited the full 7 s.
    early = [moment_sent for moment_sent in later if moment_sent < moment + 7.0]
    assert len(early) <= 3 and all(moment_sent <= moment for moment_sent in early)
    assert len(api.requests) == 11  # 10 batches and one retry
    assert any(7.0 <= delay <= 7.25 for delay in clock.sleeps)


async def test_retry_after_beyond_cap_fails_the_batch_instead_of_sleeping(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """Retry-After: 3600 with a 60 s cap fails the batches with a clear error, no long sleep."""
    api.handler = lambda server, seen: web.json_response(
        {"error": "rate_limit_exceeded", "retry_after": 3600},
        status=429,
        headers={"Retry-After": "3600"},
    )
    policy = RetryPolicy(max_attempts=5, max_retry_after=60.0)
    async with make_client(api, clock, retry=policy) as client:
        result = await client.fetch(ids(120), raise_on_error=False)
    assert len(api.requests) == 1
    assert len(result.failed) == 3
    assert all(isinstance(failure.error, RateLimitError) for failure in result.failed)
    assert max(clock.sleeps, default=0.0) < 60.0


async def test_server_limit_lower_than_configured_is_learned(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """A server allowing 10 per 60 s while the client thinks 20: no 429s, and it takes >60 s."""
    window: list[float] = []

    def handler(server: ApiServer, seen: Seen) -> web.Response:
        now = clock.monotonic()
        while window and window[0] <= now - 60:
            window.pop(0)
        headers = {
            "X-RateLimit-Limit": "10",
            "X-RateLimit-Reset": str(
                int(clock.time() + 60 - (now - window[0]) if window else clock.time() + 60)
            ),
        }
        if len(window) >= 10:
            headers["Retry-After"] = "60"
            headers["X-RateLimit-Remaining"] = "0"
            return web.json_response({"error": "over"}, status=429, headers=headers)
        window.append(now)
        headers["X-RateLimit-Remaining"] = str(10 - len(window))
        return web.json_response(events_body(seen.ids), headers=headers)

    api.handler = handler
    async with make_client(api, clock, rate_limit=20, rate_window=60.0) as client:
        result = await client.fetch(ids(40 * 25))
    assert len(result.events) == 1000
    assert result.stats.rate_limited == 0
    assert clock.now >= 120.0  # 25 requests at 10 a minute need at least two more windows
    assert client.rate_limit_state().limit == 10


async def test_long_pull_runs_at_the_window_and_never_over(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """30 requests under a 10-per-60s window: no 60 s span ever holds more than 10 sends."""
    async with make_client(api, clock, rate_limit=10, rate_window=60.0) as client:
        await client.fetch(ids(40 * 30))
    sent = sorted(seen.at for seen in api.requests)
    assert len(sent) == 30
    for index, moment in enumerate(sent):
        assert sum(1 for other in sent[index:] if other < moment + 60.0) <= 10
    # That it runs *at* the limit, not below, is shown without I/O in test_ratelimit.py
    # (a fake clock jumps while real sockets are busy) and measured in benchmarks/.


async def test_cost_per_id_counts_prospects(api: ApiServer, clock: FakeClock, ids: IdMaker) -> None:
    """With cost per ID and 80 IDs per 60 s, batches of 40 go two a minute."""
    async with make_client(api, clock, rate_limit=80, rate_limit_cost="id") as client:
        await client.fetch(ids(40 * 6))
    sent = sorted(seen.at for seen in api.requests)
    assert sent[2] >= 60.0 and sent[4] >= 120.0


async def test_short_pull_is_not_slowed_by_the_limit(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """Ten requests under a 200-per-minute window go out without any wait."""
    async with make_client(api, clock) as client:
        await client.fetch(ids(400))
    assert clock.now == 0.0 and len(api.requests) == 10


async def test_api_key_is_sent_as_header_and_hidden_from_repr(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """The key travels in the api_key header and never shows in the client's repr."""
    async with make_client(api, clock) as client:
        await client.fetch(ids(1))
        assert TEST_KEY not in repr(client)
    assert api.requests[0].headers["api_key"] == TEST_KEY


async def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No api_key and no EXPLORIUM_API_KEY: an error that says how to give one."""
    with pytest.raises(ConfigurationError, match="EXPLORIUM_API_KEY"):
        EventsClient()


async def test_key_and_url_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, api: ApiServer, ids: IdMaker
) -> None:
    """EXPLORIUM_API_KEY and EXPLORIUM_BASE_URL are used when no argument is given."""
    monkeypatch.setenv("EXPLORIUM_API_KEY", TEST_KEY)
    monkeypatch.setenv("EXPLORIUM_BASE_URL", api.url)
    async with EventsClient() as client:
        await client.fetch(ids(1))
    assert api.requests[0].headers["api_key"] == TEST_KEY


@pytest.mark.parametrize("url", ["http://api.explorium.ai", "http://10.0.0.5:8080"])
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    """The key is never sent in clear text to a host that is not this machine."""
    with pytest.raises(ConfigurationError, match="clear text"):
        EventsClient(api_key=TEST_KEY, base_url=url)


def test_plain_http_to_loopback_is_allowed() -> None:
    """http://127.0.0.1 and http://localhost are fine: the emulator lives there."""
    EventsClient(api_key=TEST_KEY, base_url="http://127.0.0.1:8787")
    EventsClient(api_key=TEST_KEY, base_url="http://localhost:8787")


async def test_closed_client_refuses_work_and_closes_twice(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """aclose() is idempotent, and a closed client raises ClientClosedError."""
    client = make_client(api, clock)
    await client.fetch(ids(1))
    await client.aclose()
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await client.fetch(ids(1))
    with pytest.raises(ClientClosedError):
        async with client:
            pass


async def test_cancelled_fetch_leaves_nothing_running(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """Cancelling a fetch midway leaves no worker tasks, and the client still closes cleanly."""
    api.release = asyncio.Event()
    client = make_client(api, clock, max_concurrency=4)
    task = asyncio.create_task(client.fetch(ids(400)))
    while not api.requests:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not client._runner.tasks
    api.release.set()
    await client.aclose()


async def test_caller_session_is_used_and_not_closed(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """A session passed in carries the requests and stays open after aclose()."""
    async with aiohttp.ClientSession() as session:
        client = make_client(api, clock, session=session)
        await client.fetch(ids(2))
        await client.aclose()
        assert not session.closed


async def test_debug_and_warning_logs(
    api: ApiServer, clock: FakeClock, ids: IdMaker, caplog: pytest.LogCaptureFixture
) -> None:
    """A debug line per request with status and correlation id; a warning per retry."""
    answers = iter([500])
    api.handler = lambda server, seen: (
        web.json_response({"error": "x"}, status=500)
        if next(answers, 200) == 500
        else web.json_response(events_body(seen.ids, correlation_id="d" * 32))
    )
    caplog.set_level(logging.DEBUG, logger="explorium_events")
    async with make_client(api, clock) as client:
        await client.fetch(ids(5))
    messages = [record.getMessage() for record in caplog.records]
    assert any("HTTP 500" in text and "attempt 1" in text for text in messages)
    assert any("HTTP 200" in text and "d" * 32 in text for text in messages)
    assert any(
        record.levelno == logging.WARNING and "retry 1" in record.getMessage()
        for record in caplog.records
    )
    assert all(TEST_KEY not in text for text in messages)


async def test_stats_count_what_happened(api: ApiServer, clock: FakeClock, ids: IdMaker) -> None:
    """Stats count requests, batches, IDs, events and elapsed time of the call."""
    async with make_client(api, clock) as client:
        result = await client.fetch([*ids(100), *ids(10)])
    stats = result.stats
    assert (stats.requests, stats.batches, stats.ids, stats.duplicate_ids, stats.events) == (
        3,
        3,
        100,
        10,
        100,
    )
    assert stats.elapsed >= 0.0


async def test_connection_refused_is_retried_then_reported(clock: FakeClock, ids: IdMaker) -> None:
    """A server that is not there: ConnectionFailed after the attempts, with the batch IDs."""
    policy = RetryPolicy(max_attempts=2, initial=0.01)
    async with EventsClient(
        api_key=TEST_KEY, base_url="http://127.0.0.1:9", clock=clock, retry=policy
    ) as client:
        result = await client.fetch(ids(3), raise_on_error=False)
    [failure] = result.failed
    assert failure.attempts == 2 and failure.status is None
    assert "connection" in failure.message.lower()
    assert failure.prospect_ids == tuple(ids(3))


async def test_malformed_200_is_retried(api: ApiServer, clock: FakeClock, ids: IdMaker) -> None:
    """A 200 whose body is not the documented JSON is retried like a server error."""
    answers = iter(["<html>oops</html>"])

    def handler(server: ApiServer, seen: Seen) -> web.Response:
        text = next(answers, None)
        if text is not None:
            return web.Response(text=text, content_type="text/html")
        return web.json_response(events_body(seen.ids))

    api.handler = handler
    async with make_client(api, clock) as client:
        result = await client.fetch(ids(4))
    assert len(result.events) == 4 and result.stats.retries == 1


async def test_window_older_than_retention_warns_once_per_client(
    api: ApiServer, clock: FakeClock, ids: IdMaker, caplog: pytest.LogCaptureFixture
) -> None:
    """A window that ended over 3 months ago warns once, however often it is asked."""
    async with make_client(api, clock) as client:
        for _ in range(3):
            await client.fetch(ids(2), timestamp_to="2020-01-01")
        await asyncio.gather(*(client.events_for(pid, timestamp_to="2020-01-01") for pid in ids(5)))
    warnings = [record for record in caplog.records if "3 months" in record.getMessage()]
    assert len(warnings) == 1


async def test_a_first_attempt_that_succeeds_builds_no_retry_machinery(
    api: ApiServer, clock: FakeClock, ids: IdMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Successful requests skip tenacity; a failed one enters it once, with the same retries."""
    from explorium_events import _engine

    built: list[object] = []
    real = _engine.AsyncRetrying

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(_engine, "AsyncRetrying", counting)
    answers = iter([200, 200, 503, 503])

    def flaky(server: ApiServer, seen: Seen) -> web.Response:
        status = next(answers, 200)
        if status != 200:
            return web.json_response({"error": "busy"}, status=status)
        return web.json_response(events_body(seen.ids))

    api.handler = flaky
    async with make_client(api, clock, max_concurrency=1, batch_size=10) as client:
        result = await client.fetch(ids(30))
    assert len(result.events) == 30 and not result.failed
    assert result.stats.requests == 5 and result.stats.retries == 2
    assert len(built) == 1  # the third batch's retries only


async def test_max_elapsed_counts_the_first_attempts_time_too(
    api: ApiServer, clock: FakeClock, ids: IdMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first attempt that took longer than max_elapsed is not retried, as before the fast path."""
    import tenacity

    from explorium_events import _engine

    now = [1000.0]
    monkeypatch.setattr(_engine.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(tenacity.time, "monotonic", lambda: now[0])

    def slow_503(server: ApiServer, seen: Seen) -> web.Response:
        now[0] += 40.0  # tenacity's clock: the attempt took 40 s
        return web.json_response({"error": "busy"}, status=503)

    api.handler = slow_503
    policy = RetryPolicy(max_attempts=4, initial=0.5, cap=4.0, max_elapsed=30.0)
    async with make_client(api, clock, retry=policy) as client:
        result = await client.fetch(ids(3), raise_on_error=False)
    assert len(api.requests) == 1
    assert result.failed[0].attempts == 1 and result.stats.retries == 0
