"""The code a competent user would write instead of this client, and this client.

(a) ``sequential``: one aiohttp session, a loop over 40-ID chunks, one request at a time.
(b) ``gather``: ``asyncio.gather`` over all chunks under a semaphore.
(c) ``aiolimiter``: (b) plus ``aiolimiter.AsyncLimiter(limit, window)`` around each attempt
    (``acquire(len(chunk))`` when the API counts prospect IDs).
(d) ``client``: ``EventsClient(...).fetch(ids)``.

(a), (b) and (c) share one honest retry helper: a 429 waits for its ``Retry-After``, a
5xx or a dropped connection backs off exponentially with jitter, six attempts at most.
Each returns a :class:`PullResult`, so the benchmarks compare like with like.

``python -m benchmarks.alternatives run '<json>'`` runs one of them in a process of its
own (the "second process sharing the key" scenario) and prints its PullResult as JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from ._common import BATCH, EVENT_TYPES, child_environment, chunks, quiet_logs

try:
    from aiolimiter import AsyncLimiter
except ImportError:  # the `bench` extra is not installed: (c) is skipped
    AsyncLimiter = None  # type: ignore[assignment,misc]

EVENTS_PATH = "/v1/prospects/events"
MAX_ATTEMPTS = 6


@dataclasses.dataclass
class PullResult:
    """What one pull did, as the client side saw it."""

    name: str
    elapsed: float = 0.0
    requests: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    events: int = 0
    failed_batches: int = 0
    cpu: float = 0.0
    started: float = 0.0  # wall clock (time.time) when the pull began
    finished: float = 0.0


class _Counts:
    def __init__(self) -> None:
        self.requests = 0
        self.rate_limited = 0
        self.server_errors = 0
        self.failed = 0


def _body(chunk: Sequence[str]) -> bytes:
    return json.dumps({"prospect_ids": list(chunk), "event_types": list(EVENT_TYPES)}).encode()


async def _post_with_retry(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    chunk: Sequence[str],
    counts: _Counts,
    before_attempt: Callable[[], Awaitable[None]] | None = None,
) -> list[dict[str, Any]]:
    """POST one chunk; retry 429 after Retry-After, 5xx and connection errors with backoff."""
    body = _body(chunk)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if before_attempt is not None:
            await before_attempt()
        counts.requests += 1
        try:
            async with session.post(url, data=body, headers=headers) as response:
                payload = await response.read()
                if response.status == 200:
                    events: list[dict[str, Any]] = json.loads(payload)["output_events"]
                    return events
                if response.status == 429:
                    counts.rate_limited += 1
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                if response.status < 500:
                    break  # 4xx: retrying cannot help
                counts.server_errors += 1
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
    counts.failed += 1
    return []


def _finish(name: str, counts: _Counts, events: int, started: float, cpu: float) -> PullResult:
    finished = time.time()
    return PullResult(
        name=name,
        elapsed=finished - started,
        requests=counts.requests,
        rate_limited=counts.rate_limited,
        server_errors=counts.server_errors,
        events=events,
        failed_batches=counts.failed,
        cpu=time.process_time() - cpu,
        started=started,
        finished=finished,
    )


async def sequential(base_url: str, api_key: str, ids: Sequence[str], **_: Any) -> PullResult:
    """(a) One request at a time over 40-ID chunks."""
    started, cpu = time.time(), time.process_time()
    counts = _Counts()
    events: list[dict[str, Any]] = []
    headers = {"api_key": api_key}
    async with aiohttp.ClientSession() as session:
        for chunk in chunks(ids, BATCH):
            events.extend(
                await _post_with_retry(session, base_url + EVENTS_PATH, headers, chunk, counts)
            )
    return _finish("(a) sequential", counts, len(events), started, cpu)


async def gather(
    base_url: str,
    api_key: str,
    ids: Sequence[str],
    *,
    concurrency: int = 8,
    limit: int | None = None,
    window: float = 60.0,
    cost: str = "request",
    **_: Any,
) -> PullResult:
    """(b) gather over every chunk under a semaphore; (c) with an AsyncLimiter when ``limit``."""
    started, cpu = time.time(), time.process_time()
    counts = _Counts()
    headers = {"api_key": api_key}
    semaphore = asyncio.Semaphore(concurrency)
    limiter = AsyncLimiter(limit, window) if limit is not None else None
    url = base_url + EVENTS_PATH

    async def one(session: aiohttp.ClientSession, chunk: list[str]) -> list[dict[str, Any]]:
        before: Callable[[], Awaitable[None]] | None = None
        if limiter is not None:
            amount = len(chunk) if cost == "id" else 1

            async def before() -> None:
                await limiter.acquire(amount)

        async with semaphore:
            return await _post_with_retry(session, url, headers, chunk, counts, before)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        answers = await asyncio.gather(*(one(session, chunk) for chunk in chunks(ids, BATCH)))
    name = "(c) gather+aiolimiter" if limiter is not None else "(b) gather+semaphore"
    return _finish(name, counts, sum(map(len, answers)), started, cpu)


async def aiolimiter_gather(
    base_url: str,
    api_key: str,
    ids: Sequence[str],
    *,
    concurrency: int = 8,
    limit: int,
    window: float,
    cost: str = "request",
    **_: Any,
) -> PullResult:
    """(c) (b) plus aiolimiter.AsyncLimiter(limit, window)."""
    return await gather(
        base_url, api_key, ids, concurrency=concurrency, limit=limit, window=window, cost=cost
    )


async def client(
    base_url: str,
    api_key: str,
    ids: Sequence[str],
    *,
    concurrency: int = 8,
    limit: int | None = None,
    window: float = 60.0,
    cost: str = "request",
    store: str | None = None,
    **_: Any,
) -> PullResult:
    """(d) this client; ``limit=None`` leaves it to learn the limit from the headers.

    ``store``: a Redis URL through which processes sharing the key share its limit.
    """
    from explorium_events import EventsClient

    started, cpu = time.time(), time.process_time()
    async with EventsClient(
        api_key=api_key,
        base_url=base_url,
        max_concurrency=concurrency,
        rate_limit=limit,
        rate_window=window,
        rate_limit_cost="id" if cost == "id" else "request",
        rate_limit_store=store or "",
    ) as events_client:
        result = await events_client.fetch(ids, raise_on_error=False)
    stats = result.stats
    counts = _Counts()
    counts.requests = stats.requests
    counts.rate_limited = stats.rate_limited
    counts.failed = stats.failed_batches
    name = "(d) this client" if limit is not None else "(d) this client, limit unknown"
    return _finish(name, counts, len(result.events), started, cpu)


ALTERNATIVES: dict[str, Callable[..., Awaitable[PullResult]]] = {
    "sequential": sequential,
    "gather": gather,
    "aiolimiter": aiolimiter_gather,
    "client": client,
    "client_unknown": client,  # called with limit=None
}


def available() -> list[str]:
    """The alternatives that can run here ((c) needs aiolimiter)."""
    return [name for name in ALTERNATIVES if name != "aiolimiter" or AsyncLimiter is not None]


async def run_one(
    name: str, base_url: str, api_key: str, ids: Sequence[str], **knobs: Any
) -> PullResult:
    """Run the alternative called ``name`` with the knobs it understands."""
    if name == "client_unknown":
        knobs = {**knobs, "limit": None}
    if name == "gather":
        knobs = {key: value for key, value in knobs.items() if key != "limit"}
    return await ALTERNATIVES[name](base_url, api_key, ids, **knobs)


async def _child(spec: dict[str, Any]) -> None:
    from ._common import prospect_ids

    ids = prospect_ids(spec["count"], start=spec["start"])
    # Imports are start-up, not pulling: done before the agreed moment (on a busy machine
    # they take a good part of a second, which would count as pacing otherwise).
    import explorium_events  # noqa: F401

    if spec["knobs"].get("store"):
        import redis.asyncio  # noqa: F401
    # Start together with the other process: at an agreed wall-clock moment.
    await asyncio.sleep(max(0.0, spec["start_at"] - time.time()))
    result = await run_one(spec["name"], spec["url"], spec["key"], ids, **spec["knobs"])
    print(json.dumps(dataclasses.asdict(result)), flush=True)


async def in_child_process(spec: dict[str, Any]) -> PullResult:
    """Run ``run_one`` in a separate OS process; ``spec`` holds name, url, key, count, start,
    start_at (a time.time() moment to begin) and knobs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.alternatives",
        "run",
        json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
        env=child_environment(),
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the benchmark child process failed (exit {process.returncode})")
    return PullResult(**json.loads(output.decode().strip().splitlines()[-1]))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        quiet_logs()
        asyncio.run(_child(json.loads(sys.argv[2])))
    else:
        sys.exit("usage: python -m benchmarks.alternatives run '<json spec>'")
