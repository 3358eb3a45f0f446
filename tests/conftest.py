"""Shared fixtures: a fake clock, a programmable API server on loopback, and aioresponses."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests._aioresponses_compat import install_aioresponses_compat
from tests._redis import RedisServer

install_aioresponses_compat()

# A recognisable key: the secrets tests search every output for it.
TEST_KEY = "test-key-7f3c9a1be2d84c56"


class FakeClock:
    """A clock whose sleep returns at once and moves time forward instead."""

    def __init__(self, wall_start: float = 1_800_000_000.0) -> None:
        self.now = 0.0
        self.wall_start = wall_start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall_start + self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


def prospect_id(number: int) -> str:
    """A valid, deterministic prospect ID."""
    return hashlib.sha1(f"prospect-{number}".encode()).hexdigest()


def event_for(pid: str, index: int = 0) -> dict[str, Any]:
    """A well-formed company-change event for a prospect."""
    day = 1 + int(pid[:2], 16) % 28
    return {
        "event_name": "prospect_changed_company",
        "event_time": f"2026-10-{day:02d}T00:00:00+00:00",
        "event_id": hashlib.md5(f"{pid}-{index}".encode()).hexdigest(),
        "data": {
            "event_name": "prospect_changed_company",
            "current_company_name": "Acme",
            "current_company_id": "a" * 32,
            "current_job_title": "CTO",
            "previous_company_name": "Initech",
            "previous_company_id": "b" * 32,
            "previous_job_title": "VP",
        },
        "prospect_id": pid,
    }


def events_body(ids: list[str], correlation_id: str = "c" * 32) -> dict[str, Any]:
    """A 200 body with one event per prospect ID."""
    return {
        "response_context": {
            "correlation_id": correlation_id,
            "request_status": "success",
            "time_took_in_seconds": 0.01,
        },
        "output_events": [event_for(pid) for pid in ids],
    }


@dataclass
class Seen:
    """One request as the server saw it."""

    ids: list[str]
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    path: str = "/v1/prospects/events"


Handler = Callable[["ApiServer", Seen], Awaitable[web.StreamResponse] | web.StreamResponse]


async def _default_handler(server: ApiServer, seen: Seen) -> web.StreamResponse:
    return web.json_response(events_body(seen.ids))


@dataclass
class ApiServer:
    """A real aiohttp server on 127.0.0.1 whose answers a test programs."""

    clock: FakeClock
    handler: Handler = _default_handler
    requests: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    url: str = ""
    release: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen = Seen(
            ids=list(body.get("prospect_ids", body.get("business_ids", []))),
            body=body,
            headers=dict(request.headers),
            at=self.clock.monotonic(),
            path=request.path,
        )
        self.requests.append(seen)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.release is not None:
                await self.release.wait()
            answer = self.handler(self, seen)
            if isinstance(answer, web.StreamResponse):
                return answer
            return await answer
        finally:
            self.in_flight -= 1

    @property
    def ids_requested(self) -> list[str]:
        return [pid for seen in self.requests for pid in seen.ids]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def api(clock: FakeClock) -> AsyncIterator[ApiServer]:
    server = ApiServer(clock=clock)
    app = web.Application()
    app.router.add_post("/v1/prospects/events", server.handle)
    app.router.add_post("/v1/businesses/events", server.handle)
    test_server = TestServer(app, host="127.0.0.1", port=0)
    await test_server.start_server()
    server.url = str(test_server.make_url("")).rstrip("/")
    try:
        yield server
    finally:
        await test_server.close()


@pytest.fixture
def ids() -> Callable[[int], list[str]]:
    return lambda count: [prospect_id(number) for number in range(count)]


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXPLORIUM_API_KEY", raising=False)
    monkeypatch.delenv("EXPLORIUM_BASE_URL", raising=False)
    monkeypatch.delenv("EXPLORIUM_RATE_LIMIT_STORE", raising=False)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the session, on a loopback port; fails without one installed."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's redis-server, running (a fault test may have stopped it) and empty."""
    if redis_server.frozen:
        redis_server.thaw()
    redis_server.start()
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url
