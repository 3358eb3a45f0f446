"""Automatic batching: 10,000 concurrent single-ID awaits, events_for versus one fetch each.

    python benchmarks/batching.py            # 10,000 concurrent awaits
    python benchmarks/batching.py --quick    # 1,000

Each await asks for one prospect's events, all at once, the way the tasks of a web
service or a queue worker would. ``events_for`` gathers them into requests of up to 40
IDs; the naive approach sends one ``fetch([prospect_id])`` per await. Both use the same
client settings (``max_concurrency=8``, the default) with the rate limit off on both
sides, against the emulator (in this process) answering after 20 ms. The emulator
counts the requests; the wall time runs from the first await to the last answer.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from explorium_events import Event, EventsClient
from explorium_events.emulator import Emulator, EmulatorConfig

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
    """``count`` distinct, valid, deterministic prospect IDs."""
    return [hashlib.sha1(f"batching-{number}".encode()).hexdigest() for number in range(count)]


async def measure_one(name: str, approach: Approach, ids: Sequence[str]) -> dict[str, Any]:
    """Run every await of ``ids`` concurrently with one approach, on a fresh emulator."""
    config = EmulatorConfig(latency_ms=LATENCY_MS, rate_limit=None)
    async with Emulator(config) as emulator:
        async with EventsClient(api_key=KEY, base_url=emulator.url, rate_limit=None) as client:
            started = time.perf_counter()
            answers = await asyncio.gather(*(approach(client, pid) for pid in ids))
            wall = time.perf_counter() - started
            peak = client.peak_in_flight
        stats = emulator.stats
        requests = stats.requests
    return {
        "approach": name,
        "awaits": len(ids),
        "requests": requests,
        "IDs/request": round(stats.ids_seen / requests, 1) if requests else 0.0,
        "peak in flight": peak,
        "events": sum(len(events) for events in answers),
        "wall s": round(wall, 2),
        "awaits/s": round(len(ids) / wall) if wall else 0,
    }


async def measure(quick: bool) -> list[dict[str, Any]]:
    """One row per approach."""
    ids = prospect_ids(QUICK_AWAITS if quick else AWAITS)
    return [await measure_one(name, approach, ids) for name, approach in APPROACHES.items()]


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
    fast, slow = rows
    print(
        f"\nevents_for: {slow['requests'] / fast['requests']:.0f}x fewer requests, "
        f"{slow['wall s'] / fast['wall s']:.0f}x less wall time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
