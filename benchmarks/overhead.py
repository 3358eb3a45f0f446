"""Overhead: the client's own CPU per request and per event, against a bare aiohttp loop.

No rate limit, no latency; the emulator runs in its own process, so ``time.process_time``
in this process counts only the client side: aiohttp, the JSON decoding, and whatever
the client adds (typed decoding, retries bookkeeping, dedupe, sorting). The bare loop
posts the same bodies with the same concurrency over one aiohttp session and reads the
same answers with ``json.loads``: the least a user's own code could do.

Each side pulls the same IDs several times in a row over one session (one client); the
sides take turns within a round (the first to go rotates), and each round gives each
side's CPU per request and its ratio to the bare loop's in that same round. The table
shows the medians over the rounds: on a shared, busy machine a ratio measured side by
side is steadier than any absolute figure.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp

from ._common import (
    BATCH,
    BENCH_KEY,
    EVENT_TYPES,
    EmulatorProcess,
    chunks,
    format_table,
    prospect_ids,
    quiet_logs,
)

TITLE = "Client overhead (CPU)"
CONCURRENCY = 8
# (distinct batches per pull, pulls per round, rounds)
FULL = (250, 8, 7)
QUICK = (50, 2, 1)


async def _bare(url: str, ids: list[str], pulls: int) -> tuple[int, int]:
    """A bare aiohttp loop: CONCURRENCY workers over the chunks, json.loads each answer."""
    requests = events = 0
    headers = {"api_key": BENCH_KEY}
    endpoint = url + "/v1/prospects/events"
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(pending: Iterator[list[str]], collected: list[dict[str, Any]]) -> None:
            nonlocal requests
            for chunk in pending:
                body = json.dumps({"prospect_ids": chunk, "event_types": list(EVENT_TYPES)})
                async with session.post(endpoint, data=body, headers=headers) as response:
                    payload = await response.read()
                requests += 1
                if response.status == 200:
                    collected.extend(json.loads(payload)["output_events"])

        for _ in range(pulls):
            pending = iter(chunks(ids, BATCH))
            collected: list[dict[str, Any]] = []
            await asyncio.gather(*(worker(pending, collected) for _ in range(CONCURRENCY)))
            events += len(collected)
    return requests, events


async def _client_fetch(url: str, ids: list[str], pulls: int) -> tuple[int, int]:
    from explorium_events import EventsClient

    requests = events = 0
    async with EventsClient(
        api_key=BENCH_KEY, base_url=url, rate_limit=None, max_concurrency=CONCURRENCY
    ) as client:
        for _ in range(pulls):
            result = await client.fetch(ids)
            requests += result.stats.requests
            events += len(result.events)
    return requests, events


async def _client_stream(url: str, ids: list[str], pulls: int) -> tuple[int, int]:
    from explorium_events import EventsClient

    requests = events = 0
    async with EventsClient(
        api_key=BENCH_KEY, base_url=url, rate_limit=None, max_concurrency=CONCURRENCY
    ) as client:
        for _ in range(pulls):
            async with client.stream(ids) as batches:
                async for batch in batches:
                    events += len(batch.events)
                requests += batches.stats.requests
    return requests, events


SIDES: dict[str, Callable[[str, list[str], int], Awaitable[tuple[int, int]]]] = {
    "bare aiohttp + json": _bare,
    "(d) this client, fetch()": _client_fetch,
    "(d) this client, stream()": _client_stream,
}


async def measure(quick: bool) -> list[dict[str, Any]]:
    """One row per side: median CPU per request and per event, and median ratio to bare."""
    batches, pulls, rounds = QUICK if quick else FULL
    ids = prospect_ids(batches * BATCH)
    names = list(SIDES)
    runs: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    async with EmulatorProcess(warm=len(ids), rate_limit=None) as emulator:
        await _bare(emulator.url, ids, 1)  # warm-up: connections, caches, imports
        await _client_fetch(emulator.url, ids, 1)
        for round_number in range(rounds):
            order = names[round_number % len(names) :] + names[: round_number % len(names)]
            per_request: dict[str, float] = {}
            for name in order:
                cpu, wall = time.process_time(), time.perf_counter()
                requests, events = await SIDES[name](emulator.url, ids, pulls)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                runs[name].append((cpu, wall, requests, events))
                per_request[name] = cpu / requests
            for name in names:
                ratios[name].append(per_request[name] / per_request["bare aiohttp + json"])
    rows = []
    for name in names:
        cpu = statistics.median(run[0] for run in runs[name])
        wall = statistics.median(run[1] for run in runs[name])
        requests, events = runs[name][0][2], runs[name][0][3]
        rows.append(
            {
                "side": name,
                "requests": requests,
                "events": events,
                "CPU s": cpu,
                "wall s": wall,
                "CPU s / 1,000 requests": cpu / requests * 1000,
                "CPU s / 100,000 events": cpu / events * 100_000 if events else float("nan"),
                "x bare": statistics.median(ratios[name]),
                "x bare, each round": " ".join(f"{ratio:.2f}" for ratio in ratios[name]),
            }
        )
        print(f"  {name:<28} {cpu:6.2f}s CPU  {rows[-1]['x bare']:5.2f}x bare",
              file=sys.stderr, flush=True)  # fmt: skip
    return rows


def describe(quick: bool) -> str:
    """The setup in one line."""
    batches, pulls, rounds = QUICK if quick else FULL
    return (
        f"no rate limit, no latency, concurrency {CONCURRENCY}; {pulls} pulls of {batches} "
        f"batches of {BATCH} IDs per round, medians of {rounds} rounds (sides side by side "
        "in each); client-process CPU only"
    )


def run(quick: bool) -> list[dict[str, Any]]:
    """The overhead benchmark's rows."""
    quiet_logs()
    return asyncio.run(measure(quick))


if __name__ == "__main__":
    print(describe("--quick" in sys.argv))
    print(format_table(run("--quick" in sys.argv)))
