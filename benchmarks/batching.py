"""Automatic batching: 10,000 concurrent single-ID awaits, events_for versus one fetch each.

    python benchmarks/batching.py            # 10,000 concurrent awaits
    python benchmarks/batching.py --quick    # 1,000

Each await asks for one prospect's events, all at once, the way the tasks of a web
service or a queue worker would. ``events_for`` gathers them into requests of up to 40
IDs; the naive approach sends one ``fetch([prospect_id])`` per await. Both use the same
client settings (``max_concurrency=8``, the default) with the rate limit off on both
sides, against the emulator (in a child process, so that its CPU is not counted)
answering after 20 ms. For reference, a hand-written gather: what a user who has all
the IDs at hand writes without this client (40-ID chunks, ``asyncio.gather`` under a
semaphore of 8 over one aiohttp session, ``json.loads``, the events split by prospect).
The emulator counts the requests; the wall time runs from the first await to the last
answer; the CPU is this process's (``time.process_time``) over the same span.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

if __package__ in (None, ""):  # run as a script: python benchmarks/batching.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import BATCH, EVENT_TYPES, EmulatorProcess, chunks
from benchmarks._common import prospect_ids as bench_ids
from explorium_events import Event, EventsClient

KEY = "bench-key-not-a-secret-0000"
AWAITS = 10_000
QUICK_AWAITS = 1_000
LATENCY_MS = 20.0

Approach = Callable[[EventsClient, str], Awaitable[list[Event]]]


async def batched(client: EventsClient, prospect_id: str) -> list[Event]:
    """One await through the batcher."""
    return await client.events_for(prospect_id)


async def naive(client: EventsClient, prospect_id: str) -> list[Event]:
    """One request per await."""
    return (await client.fetch([prospect_id])).events


APPROACHES: dict[str, Approach] = {"events_for": batched, "fetch([id]) each": naive}


def prospect_ids(count: int) -> list[str]:
    """``count`` distinct, valid, deterministic prospect IDs (the ones the emulator warms)."""
    return bench_ids(count)


def _row(
    name: str, awaits: int, stats: dict[str, Any], peak: int, events: int, wall: float, cpu: float
) -> dict[str, Any]:
    requests = stats["requests"]
    return {
        "approach": name,
        "awaits": awaits,
        "requests": requests,
        "IDs/request": round(stats["ids_seen"] / requests, 1) if requests else 0.0,
        "peak in flight": peak,
        "events": events,
        "wall s": round(wall, 2),
        "awaits/s": round(awaits / wall) if wall else 0,
        "CPU s": round(cpu, 3),
        "CPU µs / await": round(cpu / awaits * 1e6, 1),
    }


async def measure_one(
    name: str, approach: Approach, ids: Sequence[str], emulator: EmulatorProcess
) -> dict[str, Any]:
    """Run every await of ``ids`` concurrently with one approach."""
    await emulator.reset()
    async with EventsClient(api_key=KEY, base_url=emulator.url, rate_limit=None) as client:
        cpu, started = time.process_time(), time.perf_counter()
        answers = await asyncio.gather(*(approach(client, pid) for pid in ids))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        peak = client.peak_in_flight
    events = sum(len(events) for events in answers)
    return _row(name, len(ids), await emulator.stats(), peak, events, wall, cpu)


async def hand_gather(ids: Sequence[str], emulator: EmulatorProcess) -> dict[str, Any]:
    """The reference: 40-ID chunks gathered under a semaphore of 8, json.loads, split by ID."""
    await emulator.reset()
    headers = {"api_key": KEY}
    url = emulator.url + "/v1/prospects/events"
    semaphore = asyncio.Semaphore(8)
    by_id: dict[str, list[dict[str, Any]]] = {pid: [] for pid in ids}

    async def one(session: aiohttp.ClientSession, chunk: list[str]) -> None:
        body = json.dumps({"prospect_ids": chunk, "event_types": list(EVENT_TYPES)})
        async with semaphore:
            async with session.post(url, data=body, headers=headers) as response:
                payload = await response.read()
        for event in json.loads(payload)["output_events"]:
            by_id[event["prospect_id"]].append(event)

    cpu, started = time.process_time(), time.perf_counter()
    connector = aiohttp.TCPConnector(limit=8)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session, chunk) for chunk in chunks(ids, BATCH)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    events = sum(map(len, by_id.values()))
    return _row("hand-written gather", len(ids), await emulator.stats(), 8, events, wall, cpu)


async def measure(quick: bool) -> list[dict[str, Any]]:
    """One row per approach, the hand-written gather last."""
    ids = prospect_ids(QUICK_AWAITS if quick else AWAITS)
    async with EmulatorProcess(warm=len(ids), rate_limit=None, latency_ms=LATENCY_MS) as emulator:
        await hand_gather(ids[:BATCH], emulator)  # warm-up: imports, first connections
        rows = [
            await measure_one(name, approach, ids, emulator)
            for name, approach in APPROACHES.items()
        ]
        rows.append(await hand_gather(ids, emulator))
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    """Measure both approaches; one row each (for a ``python -m benchmarks`` runner)."""
    logging.getLogger("explorium_events").setLevel(logging.ERROR)
    rows = asyncio.run(measure(quick))
    if len({row["events"] for row in rows}) != 1:
        raise RuntimeError(f"the approaches returned different numbers of events: {rows}")
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as an aligned text table."""
    columns = list(rows[0])
    cells = [
        [f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in columns] for row in rows
    ]
    widths = [
        max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)
    ]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines.extend(
        "  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in cells
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_AWAITS:,} awaits instead of {AWAITS:,}"
    )
    args = parser.parse_args(argv)
    rows = run(args.quick)
    print(
        f"{rows[0]['awaits']:,} concurrent single-ID awaits, {LATENCY_MS:g} ms latency, "
        "max_concurrency=8, no rate limit"
    )
    print(table(rows))
    fast, slow, _ = rows
    print(
        f"\nevents_for: {slow['requests'] / fast['requests']:.0f}x fewer requests, "
        f"{slow['wall s'] / fast['wall s']:.0f}x less wall time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
