"""Issue 10, point 6: a silent or broken server neither serialises the pull nor holds it for hours.

Timeouts and unreadable answers end the limiter's one-request probe, so the pull keeps
``max_concurrency`` requests in flight; and once nothing usable has come back for
``give_up_after`` seconds (on the injected clock) the pull stops, every ID not yet
fetched failed, in ``result.failed``, ``--failed-out`` and the checkpoint alike.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from explorium_events import (
    ConfigurationError,
    EventsClient,
    FetchError,
    MalformedResponse,
    RetryPolicy,
    ServerUnavailableError,
)
from explorium_events.cli import main
from explorium_events.emulator import Emulator, EmulatorConfig
from tests.conftest import TEST_KEY, ApiServer, FakeClock, Seen, events_body, prospect_id

NOW = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
CONCURRENCY = 4
# Enough for the requests of a round to overlap at the server, and short enough for a test.
LATENCY_MS = 300.0

IdMaker = Callable[[int], list[str]]


def _unavailable(server: ApiServer, seen: Seen) -> web.StreamResponse:
    # No X-RateLimit-* headers: nothing tells the client anything but "not now".
    return web.json_response(
        {"details": "Service temporarily unavailable", "correlation_id": "d" * 32}, status=503
    )


# -- (a) timeouts and unreadable answers do not hold the probe ------------------------------


@pytest.mark.parametrize(
    "fault",
    [{"truncate_rate": 1.0}, {"drop_rate": 1.0}, {"error_rate": 1.0}],
    ids=["every answer truncated", "every connection dropped", "every answer a 5xx"],
)
async def test_unreadable_answers_keep_max_concurrency_requests_in_flight(
    clock: FakeClock, ids: IdMaker, fault: dict[str, float]
) -> None:
    """With every answer unreadable, the emulator sees max_concurrency requests at once."""
    config = EmulatorConfig(rate_limit=None, now=NOW, latency_ms=LATENCY_MS, **fault)
    async with (
        Emulator(config) as emulator,
        EventsClient(
            api_key=TEST_KEY,
            base_url=emulator.url,
            clock=clock,
            max_concurrency=CONCURRENCY,
            retry=RetryPolicy(max_attempts=1),
            give_up_after=None,
        ) as client,
    ):
        result = await client.fetch(ids(40 * (1 + 2 * CONCURRENCY)), raise_on_error=False)
    assert len(result.failed) == 1 + 2 * CONCURRENCY  # each batch failed, none lost
    assert emulator.stats.requests == 1 + 2 * CONCURRENCY
    assert emulator.stats.peak_in_flight == CONCURRENCY


async def test_timeouts_keep_max_concurrency_requests_in_flight(
    clock: FakeClock, ids: IdMaker
) -> None:
    """With every request timing out (a latency spike past it), max_concurrency go at once."""
    config = EmulatorConfig(rate_limit=None, now=NOW, slow_rate=1.0, slow_ms=5_000.0)
    async with (
        Emulator(config, shutdown_timeout=0.1) as emulator,
        EventsClient(
            api_key=TEST_KEY,
            base_url=emulator.url,
            clock=clock,
            max_concurrency=CONCURRENCY,
            request_timeout=0.3,
            retry=RetryPolicy(max_attempts=1),
            give_up_after=None,
        ) as client,
    ):
        result = await client.fetch(ids(40 * (1 + CONCURRENCY)), raise_on_error=False)
    assert all("within 0.3s" in failure.message for failure in result.failed)
    assert len(result.failed) == 1 + CONCURRENCY
    # The emulator still counts the requests it is sleeping on after the client gave up
    # on them, so the client's own count says what was on the wire at once.
    assert client.peak_in_flight == CONCURRENCY


async def test_unreadable_answers_still_pace_at_the_rate_limit_and_never_over(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """Out of the probe, 30 failing requests under 5 per 60 s: never more than 5 in any window."""
    api.handler = lambda server, seen: web.Response(text="<html>oops</html>")
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=api.url,
        clock=clock,
        max_concurrency=CONCURRENCY,
        rate_limit=5,
        rate_window=60.0,
        retry=RetryPolicy(max_attempts=1),
        give_up_after=None,
    ) as client:
        result = await client.fetch(ids(40 * 30), raise_on_error=False)
    assert len(result.failed) == 30
    assert isinstance(result.failed[0].error, MalformedResponse)
    sent = [seen.at for seen in api.requests]
    assert len(sent) == 30
    for index, moment in enumerate(sent):
        assert sum(1 for other in sent[index:] if other < moment + 60.0) <= 5
    assert sent[-1] >= 5 * 60.0  # paced: six windows for 30 requests


async def test_after_a_silent_probe_a_429_still_starts_a_new_probe(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """A timeout ends the probe, but a 429 that follows it still sends the next request alone."""
    answers = itertools.count()

    async def handler(server: ApiServer, seen: Seen) -> web.StreamResponse:
        number = next(answers)
        if number == 0:
            return web.Response(text="<html>oops</html>")
        if number == 1:
            return web.json_response({"error": "full"}, status=429, headers={"Retry-After": "30"})
        return web.json_response(events_body(seen.ids))

    api.handler = handler
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=api.url,
        clock=clock,
        max_concurrency=1,
        retry=RetryPolicy(max_attempts=5, initial=0.1, cap=0.1),
    ) as client:
        result = await client.fetch(ids(80))
    assert sorted(result.succeeded) == sorted(ids(80))
    assert result.stats.rate_limited == 1


# -- (b) a server that answers nothing usable is given up on --------------------------------


def _patient_retry() -> RetryPolicy:
    # The retry policy alone would keep each batch going far past give_up_after.
    return RetryPolicy(max_attempts=1_000, max_elapsed=10_000.0, initial=0.5, cap=4.0)


async def test_server_answering_nothing_usable_stops_the_pull_after_give_up_after(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """Only 503s: the pull stops once 60 s pass on the fake clock, every ID failed, with why."""
    api.handler = _unavailable
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=api.url,
        clock=clock,
        max_concurrency=CONCURRENCY,
        retry=_patient_retry(),
        give_up_after=60.0,
    ) as client:
        with pytest.raises(FetchError) as caught:
            await client.fetch(ids(400))
    result = caught.value.result
    assert result.succeeded == [] and result.events == []
    assert sorted(result.failed_ids) == sorted(ids(400))
    gave_up = caught.value.__cause__
    assert isinstance(gave_up, ServerUnavailableError)
    assert (gave_up.status, gave_up.correlation_id) == (503, "d" * 32)
    assert gave_up.give_up_after == 60.0 and gave_up.silent_for >= 60.0
    assert "nothing usable" in str(gave_up) and "give_up_after=60s" in str(gave_up)
    assert all(failure.error is gave_up for failure in result.failed[-7:])
    # It stopped at the threshold: no later than one backoff (cap 4 s) past it.
    assert 60.0 <= clock.now < 60.0 + 4.0 * CONCURRENCY + 1.0


async def test_stream_ends_with_server_unavailable_error(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """stream() raises ServerUnavailableError, and unfinished() holds every batch not done."""
    api.handler = lambda server, seen: web.Response(text="<html>oops</html>")
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=api.url,
        clock=clock,
        max_concurrency=2,
        retry=_patient_retry(),
        give_up_after=30.0,
    ) as client:
        stream = client.stream(ids(200))

        async def drain() -> None:
            async with stream:
                async for _ in stream:
                    pass

        with pytest.raises(ServerUnavailableError) as caught:
            await drain()
        left = [pid for batch in stream.unfinished() for pid in batch]
    assert sorted(left) == sorted(ids(200))
    assert isinstance(caught.value.last_error, MalformedResponse)
    assert caught.value.status == 200 and caught.value.correlation_id is None


async def test_events_for_raises_server_unavailable_error_once_given_up(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """events_for() callers get ServerUnavailableError itself, not a hang or a retry loop."""
    api.handler = _unavailable
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=api.url,
        clock=clock,
        retry=_patient_retry(),
        give_up_after=20.0,
    ) as client:
        outcomes = await asyncio.gather(
            *(client.events_for(pid) for pid in ids(3)), return_exceptions=True
        )
    assert all(isinstance(outcome, ServerUnavailableError) for outcome in outcomes)
    assert 20.0 <= clock.now < 20.0 + 4.0 + 1.0


async def test_usable_answers_keep_a_long_flaky_pull_going(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """503s between answers that settle batches (a 200, a 422) never add up to giving up."""
    failures_left: dict[str, int] = {}

    def handler(server: ApiServer, seen: Seen) -> web.StreamResponse:
        first = seen.ids[0]
        left = failures_left.setdefault(first, 3)
        if left:
            failures_left[first] = left - 1
            return _unavailable(server, seen)
        if first == ids(400)[200]:
            return web.json_response({"detail": [{"loc": ["body"], "msg": "no"}]}, status=422)
        return web.json_response(events_body(seen.ids))

    api.handler = handler
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=api.url,
        clock=clock,
        max_concurrency=1,
        retry=_patient_retry(),
        give_up_after=5.0,
    ) as client:
        result = await client.fetch(ids(400), raise_on_error=False)
    assert clock.now > 5.0 * 3  # far longer than give_up_after in all
    assert len(result.succeeded) == 360
    [refused] = result.failed
    assert refused.status == 422


async def test_a_retry_after_as_long_as_give_up_after_is_waited_out_not_given_up_on(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """A 429 asking for 300 s with the default give_up_after of 300 s: the probe after it goes."""
    answers = itertools.count()

    def handler(server: ApiServer, seen: Seen) -> web.StreamResponse:
        if next(answers) == 0:
            return web.json_response({"error": "full"}, status=429, headers={"Retry-After": "300"})
        return web.json_response(events_body(seen.ids))

    api.handler = handler
    async with EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock) as client:
        result = await client.fetch(ids(80))
    assert sorted(result.succeeded) == sorted(ids(80))
    assert clock.now >= 300.0


async def test_give_up_after_none_never_gives_up(
    api: ApiServer, clock: FakeClock, ids: IdMaker
) -> None:
    """give_up_after=None: each batch fails by the retry policy alone, however long it takes."""
    api.handler = _unavailable
    async with EventsClient(
        api_key=TEST_KEY,
        base_url=api.url,
        clock=clock,
        max_concurrency=2,
        retry=RetryPolicy(max_attempts=40, max_elapsed=10_000.0, initial=0.5, cap=30.0),
        give_up_after=None,
    ) as client:
        result = await client.fetch(ids(160), raise_on_error=False)
    assert clock.now > 300.0
    assert all(failure.attempts == 40 for failure in result.failed)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "300"])
def test_bad_give_up_after_is_a_configuration_error(value: Any) -> None:
    """A give_up_after that is not a positive number of seconds is refused, naming it."""
    with pytest.raises(ConfigurationError, match="give_up_after"):
        EventsClient(api_key=TEST_KEY, give_up_after=value)


# -- the command line ----------------------------------------------------------------------


def _write_ids(path: Path, count: int) -> tuple[str, list[str]]:
    values = [prospect_id(number) for number in range(count)]
    path.write_text("".join(f"{pid}\n" for pid in values), encoding="utf-8")
    return str(path), values


@pytest.fixture
def cli_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The clock every EventsClient the command line builds uses: fake, so nothing sleeps."""
    fake = FakeClock()
    monkeypatch.setattr("explorium_events._client.SystemClock", lambda: fake)
    return fake


@pytest.mark.parametrize("checkpoint", [False, True], ids=["plain", "checkpoint"])
async def test_cli_gives_up_on_a_silent_server_with_every_id_in_failed_out(
    api: ApiServer,
    cli_clock: FakeClock,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    checkpoint: bool,
) -> None:
    """fetch --give-up-after 60 against only 503s: exit 1, the message, every ID in --failed-out."""
    api.handler = _unavailable
    source, values = _write_ids(tmp_path / "ids.txt", 400)
    out, failed = tmp_path / "events.jsonl", tmp_path / "failed.txt"
    argv = ["fetch", "--ids", source, "--out", str(out), "--failed-out", str(failed)]
    argv += ["--api-key", TEST_KEY, "--base-url", api.url, "--max-attempts", "20"]
    argv += ["--give-up-after", "60", "--concurrency", str(CONCURRENCY)]
    if checkpoint:
        argv += ["--checkpoint", str(tmp_path / "pull.checkpoint")]
    code = await asyncio.to_thread(main, argv)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "nothing usable for" in err and "give_up_after=60s" in err
    assert "d" * 32 in err  # the last answer's correlation id, for support
    assert sorted(failed.read_text().splitlines()) == sorted(values)
    assert out.read_text() == ""
    assert 60.0 <= cli_clock.now < 60.0 + 4.0 * 30.0
    assert TEST_KEY not in err
    if not checkpoint:
        assert "10 run: 0 ok, 10 failed" in err
        assert err.count("nothing usable for") == 3  # the log line, GAVE UP, FAILED: once
    if checkpoint:
        # The checkpoint holds them as failed: once the server is back, --retry-failed
        # fetches exactly those.
        assert "--retry-failed" in err
        api.handler = lambda server, seen: web.json_response(events_body(seen.ids))
        code = await asyncio.to_thread(main, [*argv, "--retry-failed"])
        err = capsys.readouterr().err
        assert code == 0, err
        assert failed.read_text() == ""
        assert len(out.read_text().splitlines()) == 400


def test_give_up_after_flag_is_documented_for_fetch_and_demo(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """fetch --help and demo --help both describe --give-up-after and its default."""
    for command in ("fetch", "demo"):
        assert main([command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "--give-up-after SECONDS" in text and "(default: 300)" in text
