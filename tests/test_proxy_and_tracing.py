"""The environment's proxy settings are honoured (or turned off); trace_configs reach aiohttp."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from explorium_events import ConfigurationError, EventsClient, RetryPolicy
from explorium_events.emulator import Emulator, EmulatorConfig
from tests.conftest import TEST_KEY, prospect_id

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@dataclass
class Proxy:
    """A forwarding HTTP proxy on loopback that records the URLs it was asked for."""

    url: str = ""
    seen: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(rate_limit=None)) as emu:
        yield emu


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    record = Proxy()
    forward = aiohttp.ClientSession(trust_env=False)

    async def handle(request: web.Request) -> web.Response:
        # A proxied plain-http request names the whole target URL in its request line.
        record.seen.append(str(request.url))
        record.authorizations.append(request.headers.get("Proxy-Authorization"))
        dropped = {"host", "proxy-authorization"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in dropped}
        async with forward.request(
            request.method, request.url, headers=headers, data=await request.read()
        ) as answer:
            body = await answer.read()
            kept = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() not in {"content-length", "transfer-encoding", "connection"}
            }
            return web.Response(status=answer.status, body=body, headers=kept)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    record.url = str(server.make_url("")).rstrip("/")
    try:
        yield record
    finally:
        await server.close()
        await forward.close()


async def _fetch_one(emulator: Emulator, **settings: Any) -> None:
    settings.setdefault("retry", RetryPolicy(max_attempts=1))
    async with EventsClient(api_key=TEST_KEY, base_url=emulator.url, **settings) as client:
        await client.fetch([prospect_id(1)])


async def test_http_proxy_from_the_environment_carries_the_requests(
    emulator: Emulator, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HTTP_PROXY set, the request goes through that proxy (trust_env is on by default)."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    await _fetch_one(emulator)
    assert proxy.seen == [f"{emulator.url}/v1/prospects/events"]
    assert emulator.stats.requests == 1


async def test_credentials_in_the_proxy_url_are_sent_to_the_proxy(
    emulator: Emulator, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """http://user:pass@proxy sends Proxy-Authorization to the proxy (and only there)."""
    monkeypatch.setenv("http_proxy", proxy.url.replace("http://", "http://me:s3cret@"))
    await _fetch_one(emulator)
    assert proxy.authorizations == ["Basic " + base64.b64encode(b"me:s3cret").decode()]


async def test_no_proxy_exempts_the_host(
    emulator: Emulator, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host listed in NO_PROXY is reached directly, though HTTP_PROXY is set."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    await _fetch_one(emulator)
    assert proxy.seen == []
    assert emulator.stats.requests == 1


async def test_trust_env_false_ignores_the_proxy_settings(
    emulator: Emulator, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EventsClient(trust_env=False) goes direct whatever HTTP_PROXY says."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    await _fetch_one(emulator, trust_env=False)
    assert proxy.seen == []
    assert emulator.stats.requests == 1


async def test_a_proxy_on_another_host_never_carries_a_plain_http_request(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Plain http (loopback only) skips a non-loopback proxy, which would see the key in clear."""
    monkeypatch.setenv("HTTP_PROXY", "http://192.0.2.1:9")  # TEST-NET: nothing answers
    with caplog.at_level(logging.WARNING, logger="explorium_events"):
        await _fetch_one(emulator, request_timeout=5.0)
    assert emulator.stats.requests == 1
    assert "ignoring the environment's http proxy (192.0.2.1)" in caplog.text


async def test_trace_configs_see_each_request_start(emulator: Emulator) -> None:
    """A TraceConfig passed as trace_configs=[...] has its on_request_start called."""
    started: list[str] = []

    async def on_request_start(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        started.append(f"{params.method} {params.url.path}")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    await _fetch_one(emulator, trace_configs=[trace])
    assert started == ["POST /v1/prospects/events"]


async def test_trace_configs_with_an_own_session_are_refused() -> None:
    """trace_configs or trust_env=False beside session=... is a ConfigurationError."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigurationError, match="set them on that session"):
            EventsClient(api_key=TEST_KEY, session=session, trace_configs=[aiohttp.TraceConfig()])
        with pytest.raises(ConfigurationError, match="set them on that session"):
            EventsClient(api_key=TEST_KEY, session=session, trust_env=False)
