"""The rate limit shared through Redis, against a real redis-server and the emulator.

Several clients (each with its own limiter, as separate processes would have) share one
key; the emulator's own sliding window is the judge: a 429 from it means the clients
together went over the limit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Self

import pytest
import redis
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from explorium_events import ConfigurationError, EventsClient, RetryPolicy
from explorium_events._ratelimit_redis import RedisWindow, namespace_for
from explorium_events.emulator import Emulator, EmulatorConfig
from tests._redis import RedisServer
from tests.conftest import TEST_KEY, events_body, prospect_id

LIMIT = 10
WINDOW = 1.0


@contextlib.asynccontextmanager
async def emulator(**config: Any) -> AsyncIterator[Emulator]:
    settings: dict[str, Any] = {
        "rate_limit": LIMIT,
        "rate_window": WINDOW,
        "latency_ms": 5.0,
        "latency_jitter_ms": 3.0,
        **config,
    }
    async with Emulator(EmulatorConfig(**settings)) as emu:
        yield emu


def client(url: str, store: str | None, **settings: Any) -> EventsClient:
    knobs: dict[str, Any] = {
        "api_key": TEST_KEY,
        "base_url": url,
        "rate_limit": LIMIT,
        "rate_window": WINDOW,
        "rate_limit_store": store,
        **settings,
    }
    return EventsClient(**knobs)


async def pull_together(
    url: str, store: str | None, *, clients: int, requests: int, **settings: Any
) -> tuple[list[set[str]], list[set[str]]]:
    """``clients`` clients, each pulling its share of ``requests`` full batches at once.

    Returns, per client, the IDs asked for and the IDs fetched; fails on any failed batch.
    """
    ids = [prospect_id(n) for n in range(requests * 40)]
    shares = [ids[i::clients] for i in range(clients)]
    members = [client(url, store, **settings) for _ in range(clients)]
    try:
        results = await asyncio.gather(
            *(
                c.fetch(share, raise_on_error=False)
                for c, share in zip(members, shares, strict=True)
            )
        )
    finally:
        for member in members:
            await member.aclose()
    assert [result.failed_ids for result in results] == [[]] * clients
    settled = [set(result.succeeded) for result in results]
    return [set(share) for share in shares], settled


def rate_limited(emu: Emulator) -> int:
    return emu.stats.requests_by_status.get(429, 0)


class Poller:
    """Runs ``poll`` (one round of Redis calls) every ``every`` seconds until told to stop.

    It stops at a flag, not by cancellation: on Python 3.11 redis-py can swallow a
    cancellation that lands as a write completes (its asyncio.wait_for), and a cancelled
    loop then polls forever while the test waits for it. A stop that takes longer than
    STOP_WITHIN fails the test, naming the poller, instead of hanging it.
    """

    STOP_WITHIN = 10.0

    def __init__(self, url: str, every: float) -> None:
        self.url = url
        self.every = every
        self.samples = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def poll(self, store: redis.asyncio.Redis) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        async with redis.asyncio.Redis.from_url(self.url) as store:
            while not self._stop.is_set():
                await self.poll(store)
                self.samples += 1
                await asyncio.sleep(self.every)

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._stop.set()
        done, _ = await asyncio.wait({self._task}, timeout=self.STOP_WITHIN)
        assert done, f"{type(self).__name__} did not stop within {self.STOP_WITHIN:g}s"
        await self._task


class WindowWatcher(Poller):
    """Samples the shared sorted set while a pull runs: the most units it ever held."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(url, every=0.01)
        self.key = key
        self.peak = 0

    async def poll(self, store: redis.asyncio.Redis) -> None:
        now_s, now_us = await store.time()
        horizon = now_s * 1000 + now_us // 1000 - WINDOW * 1000
        members = await store.zrangebyscore(self.key, f"({horizon}", "+inf")
        self.peak = max(self.peak, sum(int(m.split(b":")[0]) for m in members))


class Scanner(Poller):
    """Collects every key's name and value in the store, again and again."""

    def __init__(self, url: str) -> None:
        super().__init__(url, every=0.02)
        self.seen: list[bytes] = []

    async def poll(self, store: redis.asyncio.Redis) -> None:
        self.seen.extend(await dump(store))


@pytest.fixture(autouse=True)
def _patient_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the fault tests, a busy test machine must not pass for a slow store.

    The clients, the emulator and the watchers share one event loop here, whose lag can
    exceed the 0.2 s a Redis call may take; the fault tests keep the real timeout.
    """
    if "fault" not in request.node.get_closest_marker("store", pytest.mark.store("")).args:
        monkeypatch.setattr("explorium_events._ratelimit_redis.CALL_TIMEOUT", 2.0)


# -- settings --------------------------------------------------------------------------------


def test_namespace_is_a_keyed_hash_from_which_the_key_cannot_be_read() -> None:
    """The default namespace is 'explorium-events:' plus 32 hex digits of an HMAC of the key."""
    namespace = namespace_for(TEST_KEY)
    prefix, digest = namespace.split(":")
    assert prefix == "explorium-events" and len(digest) == 32 and int(digest, 16) >= 0
    assert TEST_KEY not in namespace and namespace == namespace_for(TEST_KEY)
    assert namespace != namespace_for(TEST_KEY + "x")
    # Not a plain hash of the key either: a keyed one.
    assert digest not in hashlib.sha256(TEST_KEY.encode()).hexdigest()


@pytest.mark.parametrize(
    ("store", "shown"),
    [
        ("http://localhost:6379", "rate_limit_store='http://localhost:6379'"),
        ("localhost:6379", "rate_limit_store='localhost:6379'"),
        ("http://user:hunter2@host", "rate_limit_store='http://user:****@host'"),
    ],
)
def test_a_store_that_is_not_a_redis_url_is_refused_naming_it(store: str, shown: str) -> None:
    """ConfigurationError names the value (never its password) and the schemes accepted."""
    with pytest.raises(ConfigurationError, match="must be a Redis URL") as caught:
        client("http://127.0.0.1:1", store)
    assert shown in str(caught.value) and "hunter2" not in str(caught.value)


def test_a_store_from_the_environment_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad EXPLORIUM_RATE_LIMIT_STORE is named as such."""
    monkeypatch.setenv("EXPLORIUM_RATE_LIMIT_STORE", "tcp://localhost")
    with pytest.raises(ConfigurationError, match="EXPLORIUM_RATE_LIMIT_STORE='tcp://localhost'"):
        EventsClient(api_key=TEST_KEY, base_url="http://127.0.0.1:1")


@pytest.mark.parametrize("namespace", ["", "has space", "x" * 201, "tab\there"])
def test_an_unusable_namespace_is_refused(namespace: str) -> None:
    """rate_limit_namespace must be 1 to 200 printable characters without spaces."""
    with pytest.raises(ConfigurationError, match="rate_limit_namespace"):
        client("http://127.0.0.1:1", "redis://127.0.0.1:1/0", rate_limit_namespace=namespace)


def test_without_the_redis_package_a_store_asks_for_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No redis installed: ConfigurationError with the pip command, when the client is built."""
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'explorium-events\[redis\]'"):
        client("http://127.0.0.1:1", "redis://127.0.0.1:1/0")


def test_without_a_store_redis_is_never_imported() -> None:
    """A client without a store, even with a namespace given, loads neither redis nor the module."""
    code = (
        "import sys\n"
        "from explorium_events import EventsClient\n"
        f"EventsClient(api_key={TEST_KEY!r}, rate_limit_namespace='svc')\n"
        "assert 'redis' not in sys.modules, 'redis'\n"
        "assert 'explorium_events._ratelimit_redis' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "EXPLORIUM_RATE_LIMIT_STORE"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()


async def test_the_environment_variable_turns_the_shared_window_on(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXPLORIUM_RATE_LIMIT_STORE alone shares the window; rate_limit_store='' turns it off."""
    monkeypatch.setenv("EXPLORIUM_RATE_LIMIT_STORE", redis_url)
    async with emulator() as emu:
        async with EventsClient(api_key=TEST_KEY, base_url=emu.url, rate_window=WINDOW) as on:
            await on.fetch([prospect_id(1)])
            assert on.rate_limit_state().shared is True
        async with EventsClient(api_key=TEST_KEY, base_url=emu.url, rate_limit_store="") as off:
            await off.fetch([prospect_id(2)])
            assert off.rate_limit_state().shared is None
    with redis.Redis.from_url(redis_url) as store:
        assert store.zcard(namespace_for(TEST_KEY) + ":window") == 1


# -- correct under concurrency ----------------------------------------------------------------


async def test_four_clients_sharing_a_key_stay_within_its_limit(redis_url: str) -> None:
    """Four limiters each told the key's full limit: the server never counts more than it."""
    async with (
        emulator() as emu,
        WindowWatcher(redis_url, namespace_for(TEST_KEY) + ":window") as w,
    ):
        started = time.monotonic()
        asked, settled = await pull_together(emu.url, redis_url, clients=4, requests=40)
        elapsed = time.monotonic() - started
    assert settled == asked
    assert rate_limited(emu) == 0
    assert emu.stats.requests_by_status.get(200) == 40
    assert w.samples > 10 and w.peak <= LIMIT
    # 40 requests at 10 per window need at least 3 windows, and sharing costs little more.
    assert elapsed >= 3 * WINDOW


async def test_without_the_store_the_same_four_clients_overshoot(redis_url: str) -> None:
    """The control: without Redis the same pull meets 429s (so the test above can fail)."""
    async with emulator() as emu:
        asked, settled = await pull_together(
            emu.url, None, clients=4, requests=40, retry=RetryPolicy(max_attempts=10)
        )
    assert settled == asked
    assert rate_limited(emu) > 0


async def test_the_shared_window_counts_ids_when_the_limit_is_per_id(redis_url: str) -> None:
    """rate_limit_cost='id': the shared window sums IDs, not requests; the server agrees."""
    async with (
        emulator(rate_limit=200, rate_limit_cost="id") as emu,
        WindowWatcher(redis_url, namespace_for(TEST_KEY) + ":window") as watcher,
    ):
        asked, settled = await pull_together(
            emu.url, redis_url, clients=3, requests=24, rate_limit=200, rate_limit_cost="id"
        )
    assert settled == asked
    assert rate_limited(emu) == 0
    assert 160 <= watcher.peak <= 200


async def test_a_lower_limit_in_the_servers_headers_tightens_the_shared_window(
    redis_url: str,
) -> None:
    """Clients told 100 per window learn the server's 10 from its headers and share that."""
    async with emulator() as emu:
        asked, settled = await pull_together(
            emu.url, redis_url, clients=3, requests=30, rate_limit=100
        )
    assert settled == asked
    # Each client's first request (its probe) goes before it knows: at most those overshoot.
    assert rate_limited(emu) == 0


async def test_a_429_pauses_every_process_sharing_the_store(redis_url: str) -> None:
    """One client's 429 holds the other client's requests until its Retry-After moment."""
    arrivals: list[tuple[float, str]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        arrivals.append((time.monotonic(), body["prospect_ids"][0]))
        if len(arrivals) == 1:
            return web.json_response({"error": "rate_limit_exceeded"}, status=429,
                                     headers={"Retry-After": "1"})  # fmt: skip
        return web.json_response(events_body(body["prospect_ids"]))

    app = web.Application()
    app.router.add_post("/v1/prospects/events", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        first, second = client(url, redis_url), client(url, redis_url)
        async with first, second:
            one = asyncio.create_task(first.fetch([prospect_id(1)]))
            while not arrivals:
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.1)  # the 429 is answered and its pause shared
            with redis.Redis.from_url(redis_url) as store:
                assert 0 < store.pttl(namespace_for(TEST_KEY) + ":paused_until") <= 1000
            await second.fetch([prospect_id(2)])
            await one
    paused_at = arrivals[0][0]
    later = {pid: at for at, pid in arrivals[1:]}
    assert later[prospect_id(2)] >= paused_at + 0.95
    assert later[prospect_id(1)] >= paused_at + 0.95


# -- the key never reaches Redis ----------------------------------------------------------------


def encodings_of(key: str) -> Iterator[bytes]:
    raw = key.encode()
    yield raw
    yield raw[:12]
    yield raw.hex().encode()
    yield base64.b64encode(raw).rstrip(b"=")
    yield base64.urlsafe_b64encode(raw).rstrip(b"=")
    yield urllib.parse.quote(key).encode()
    for digest in (hashlib.sha256, hashlib.sha1, hashlib.md5):
        yield digest(raw).hexdigest().encode()[:16]


async def dump(store: redis.asyncio.Redis) -> list[bytes]:
    """Every key's name and value in the store now."""
    found: list[bytes] = []
    async for name in store.scan_iter():
        found.append(name)
        kind = await store.type(name)
        if kind == b"zset":
            found.extend(await store.zrange(name, 0, -1))
        elif kind == b"string":
            found.append(await store.get(name) or b"")
        else:
            found.append(await store.dump(name) or b"")
    return found


async def test_the_api_key_appears_in_no_redis_key_or_value_during_a_pull(
    redis_url: str,
) -> None:
    """Scanned throughout a pull with a 429: keys are namespace_for(key)'s; no form of the key."""
    async with emulator(rate_limit_error_rate=0.3, seed=3) as emu, Scanner(redis_url) as scanner:
        await pull_together(
            emu.url, redis_url, clients=2, requests=12, retry=RetryPolicy(max_attempts=10)
        )
    seen = scanner.seen
    assert rate_limited(emu) > 0
    names = {item for item in seen if item.startswith(b"explorium-events:")}
    namespace = namespace_for(TEST_KEY).encode()
    # (The pause is shared unless a call timed out on a busy machine: its key may be absent.)
    assert namespace + b":window" in names
    assert names <= {namespace + b":window", namespace + b":paused_until"}
    for item in seen:
        for form in encodings_of(TEST_KEY):
            assert form not in item


async def test_a_given_namespace_names_the_keys(redis_url: str) -> None:
    """rate_limit_namespace='billing-sync' puts the window at 'billing-sync:window'."""
    async with emulator() as emu:
        async with client(emu.url, redis_url, rate_limit_namespace="billing-sync") as named:
            await named.fetch([prospect_id(1)])
    with redis.Redis.from_url(redis_url) as store:
        assert set(store.keys()) == {b"billing-sync:window"}
        assert 0 < store.pttl("billing-sync:window") <= WINDOW * 1000 + 1000


# -- faults of the store -----------------------------------------------------------------------


def store_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "is unreachable" in r.getMessage()]


def store_returns(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "is shared again" in r.getMessage()]


async def run_through_fault(
    redis_server: RedisServer,
    fault: Any,
    *,
    clients: int = 2,
    requests: int = 50,
    window: float = WINDOW,
    limit: int = LIMIT,
) -> tuple[Emulator, float]:
    """A pull by ``clients`` clients while ``fault`` (a coroutine function) breaks the store.

    Each client is told the key's whole limit, as processes sharing it through Redis are.
    """
    async with emulator(rate_window=window, rate_limit=limit) as emu:
        started = time.monotonic()
        pull = asyncio.create_task(
            pull_together(
                emu.url,
                redis_server.url,
                clients=clients,
                requests=requests,
                rate_window=window,
                rate_limit=limit,
            )
        )
        await fault()
        asked, settled = await pull
        elapsed = time.monotonic() - started
    assert settled == asked
    return emu, elapsed


@pytest.mark.store("fault")
async def test_a_store_down_at_start_falls_back_with_one_warning_and_rejoins(
    redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped before the pull: local pacing, one warning per client, shared once back."""
    caplog.set_level(logging.INFO, logger="explorium_events")
    redis_server.stop()

    async def fault() -> None:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(redis_server.start)

    emu, _ = await run_through_fault(redis_server, fault, clients=1)
    assert rate_limited(emu) == 0
    assert len(store_warnings(caplog)) == 1
    assert len(store_returns(caplog)) == 1
    assert "127.0.0.1" in store_warnings(caplog)[0]
    with redis.Redis.from_url(redis_server.url) as store:
        # Rejoined: what was sent while it was down, and since, is in the shared window.
        assert store.zcard(namespace_for(TEST_KEY) + ":window") >= LIMIT // 2


@pytest.mark.store("fault")
async def test_a_store_killed_mid_pull_and_restarted_on_its_port_is_rejoined(
    redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 mid-pull, restarted empty on the same port: no stall, no overshoot, shared again."""
    caplog.set_level(logging.INFO, logger="explorium_events")

    async def fault() -> None:
        await asyncio.sleep(1.2)
        redis_server.stop(kill=True)
        await asyncio.sleep(0.4)
        await asyncio.to_thread(redis_server.start)

    emu, _ = await run_through_fault(redis_server, fault)
    assert rate_limited(emu) == 0
    assert len(store_warnings(caplog)) == 2  # one per client
    assert len(store_returns(caplog)) == 2


@pytest.mark.store("fault")
async def test_a_frozen_store_costs_a_timeout_not_a_stall(
    redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGSTOP'd Redis (it accepts, never answers): each call gives up at 0.2 s; pull goes on."""
    caplog.set_level(logging.INFO, logger="explorium_events")

    async def fault() -> None:
        await asyncio.sleep(1.2)
        redis_server.freeze()
        await asyncio.sleep(1.5)
        redis_server.thaw()

    emu, elapsed = await run_through_fault(redis_server, fault)
    assert rate_limited(emu) == 0
    assert len(store_warnings(caplog)) == 2
    assert "TimeoutError" in store_warnings(caplog)[0]
    assert len(store_returns(caplog)) == 2
    # 50 requests at 10 per window: 4 windows at least; a stall would add the outage.
    assert elapsed < 4 * WINDOW + 3.0


@pytest.mark.store("fault")
async def test_a_closed_window_cancels_its_background_work(redis_server: RedisServer) -> None:
    """aclose() ends the reconnect task and closes the connection; idempotent."""
    redis_server.stop()
    window = RedisWindow(url=redis_server.url, namespace="t", window=1.0)
    assert await window.acquire(1, 10, []) is None
    assert window.available is False
    assert window._reconnect is not None and not window._reconnect.done()
    await window.aclose()
    await window.aclose()
    assert window._reconnect.done()
    assert await window.acquire(1, 10, []) is None


class SwallowsCancellation:
    """A script (or ping) that waits until cancelled, and ignores the first cancellation.

    As redis-py does on Python 3.11 when a cancellation lands as its write completes:
    the write runs under ``asyncio.wait_for``, which then returns instead of raising,
    and the call answers as if nothing happened.
    """

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.started = asyncio.Event()
        self.cancelled = 0

    async def __call__(self, **_: Any) -> Any:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            if self.cancelled > 1:
                raise
        return self.answer


class FakeRedis:
    """A client whose ping is ``ping`` and then finds the store still down."""

    def __init__(self, ping: SwallowsCancellation | None = None) -> None:
        self._ping = ping

    async def ping(self) -> None:
        assert self._ping is not None
        await self._ping()
        raise redis.ConnectionError("still down")

    async def aclose(self) -> None:
        return None


@pytest.mark.store("fault")
async def test_a_cancelled_acquire_is_cancelled_even_when_redis_py_swallows_it() -> None:
    """Cancelling a caller of acquire() ends it with CancelledError, not with a grant."""
    window = RedisWindow(url="redis://127.0.0.1:1/0", namespace="t", window=1.0, call_timeout=60)
    script = SwallowsCancellation([1, 0, 1])
    window._redis = FakeRedis()  # no connection: the fake scripts answer
    window._scripts = {"acquire": script, "answered": script, "pause": script}
    caller = asyncio.create_task(window.acquire(1, 10, []))
    await script.started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert script.cancelled == 1 and window.available
    await window.aclose()


@pytest.mark.store("fault")
async def test_a_closed_window_ends_its_rejoin_even_when_redis_py_swallows_the_cancel() -> None:
    """aclose() during a ping that ignores its cancellation still ends the background task."""
    window = RedisWindow(
        url="redis://127.0.0.1:1/0", namespace="t", window=1.0, call_timeout=60,
        reconnect_first=0.0,
    )  # fmt: skip
    ping = SwallowsCancellation(None)
    window._client = lambda: FakeRedis(ping)  # type: ignore[method-assign]
    window._fall_back(redis.ConnectionError("down"))
    await ping.started.wait()
    async with asyncio.timeout(5):  # a deadline, reached only if the bug is back
        await window.aclose()
    assert window._reconnect is not None and window._reconnect.done()
    assert ping.cancelled == 1


# -- the command line, in separate processes ----------------------------------------------------


async def test_four_cli_processes_given_the_store_share_the_keys_limit(
    redis_url: str, tmp_path: Path
) -> None:
    """Four `fetch` processes, two with --rate-limit-store and two with the variable: no 429."""
    async with emulator(latency_ms=10.0) as emu:
        commands = []
        for number in range(4):
            ids = tmp_path / f"ids-{number}.txt"
            ids.write_text(
                "".join(prospect_id(n) + "\n" for n in range(number * 400, number * 400 + 400))
            )
            args = [sys.executable, "-m", "explorium_events", "fetch", "--ids", str(ids),
                    "--base-url", emu.url, "--rate-limit", f"{LIMIT}/{WINDOW:g}",
                    "--out", str(tmp_path / f"out-{number}.jsonl")]  # fmt: skip
            env = {**os.environ, "EXPLORIUM_API_KEY": TEST_KEY}
            if number < 2:
                args += ["--rate-limit-store", redis_url]
            else:
                env["EXPLORIUM_RATE_LIMIT_STORE"] = redis_url
            commands.append((args, env))
        processes = [
            await asyncio.create_subprocess_exec(
                *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            for args, env in commands
        ]
        outputs = [await process.communicate() for process in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
        assert TEST_KEY not in err.decode()
    assert rate_limited(emu) == 0
    assert emu.stats.unique_ids_seen == 1600
