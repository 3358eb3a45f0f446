"""Latency hiding: with no rate limit, how close concurrency brings a pull to its ideal.

The emulator answers after 100 ms ± 50 ms (uniform) and has no limit. A pull of B
batches at concurrency c cannot end before ``B / c x 100 ms`` (c requests always in
flight, each taking the mean latency). Measured for this client and, as a reference, for
(b) ``asyncio.gather`` under a semaphore of the same size, side by side: each round runs
both, the first to go alternating, and the table shows the median over the rounds.
"Latency hiding" is ideal / wall: 1.0 would be c requests in flight all the time at
exactly the mean latency.

A pull draws 256 latencies, whose mean strays from 100 ms by about 2% either way, so
each pull is also measured against the latencies it drew (the emulator's
``latency_seconds`` over c): the "drawn" columns, free of the luck of the draw. Neither
ideal can be reached: at the end of a pull fewer than c requests are left while the
last ones finish. Handing each free worker the next batch (what both alternatives do),
that tail alone holds a pull to about 0.96 of the ideal at 16 and 0.91 at 32
(``scheduling_bound``: simulated pulls whose latencies are drawn as the emulator draws
them, at no cost for anything else).
"""

from __future__ import annotations

import asyncio
import heapq
import random
import statistics
import sys
from typing import Any

from ._common import BATCH, BENCH_KEY, EmulatorProcess, format_table, prospect_ids, quiet_logs
from .alternatives import run_one

TITLE = "Latency hiding"

LATENCY_MS = 100.0
JITTER_MS = 50.0
# (batches, {concurrency: rounds})
FULL = (256, {1: 1, 4: 3, 8: 5, 16: 9, 32: 9})
QUICK = (16, {1: 1, 8: 1})


def scheduling_bound(batches: int, concurrency: int, pulls: int = 1000) -> float:
    """Ideal / wall of simulated pulls handing each free worker the next batch: the median.

    Each batch takes a latency drawn as the emulator draws it and nothing else costs a
    thing, so what is left is the tail: the last batches finishing while workers idle.
    """
    draw = random.Random(0).uniform
    low, high = (LATENCY_MS - JITTER_MS) / 1000, (LATENCY_MS + JITTER_MS) / 1000
    ratios = []
    for _ in range(pulls):
        free_at = [0.0] * concurrency
        for _ in range(batches):
            heapq.heappush(free_at, heapq.heappop(free_at) + draw(low, high))
        ratios.append(batches / concurrency * LATENCY_MS / 1000 / max(free_at))
    return statistics.median(ratios)


async def measure(quick: bool) -> list[dict[str, Any]]:
    """One row per concurrency and alternative: medians over the rounds."""
    batches, levels = QUICK if quick else FULL
    ids = prospect_ids(batches * BATCH)
    rows: list[dict[str, Any]] = []
    async with EmulatorProcess(
        warm=len(ids), rate_limit=None, latency_ms=LATENCY_MS, latency_jitter_ms=JITTER_MS
    ) as emulator:
        for concurrency, rounds in levels.items():
            ideal = batches / concurrency * LATENCY_MS / 1000
            walls: dict[str, list[float]] = {"client": [], "gather": []}
            drawn: dict[str, list[float]] = {"client": [], "gather": []}
            peaks: dict[str, int] = {}
            names: dict[str, str] = {}
            for round_number in range(rounds):
                order = ("client", "gather") if round_number % 2 == 0 else ("gather", "client")
                for name in order:
                    await emulator.reset()
                    result = await run_one(
                        name, emulator.url, BENCH_KEY, ids, concurrency=concurrency, limit=None
                    )
                    stats = await emulator.stats()
                    walls[name].append(result.elapsed)
                    drawn[name].append(stats["latency_seconds"] / concurrency / result.elapsed)
                    peaks[name] = max(peaks.get(name, 0), stats["peak_in_flight"])
                    names[name] = result.name.replace(", limit unknown", "")
            for name in ("client", "gather"):
                wall = statistics.median(walls[name])
                rows.append(
                    {
                        "concurrency": concurrency,
                        "alternative": names[name],
                        "batches": batches,
                        "rounds": rounds,
                        "wall s (median)": wall,
                        "ideal s": ideal,
                        "wall / ideal": wall / ideal,
                        "latency hiding (ideal / wall)": ideal / wall,
                        "hiding, drawn latencies (median)": statistics.median(drawn[name]),
                        "scheduling bound": scheduling_bound(batches, concurrency),
                        "peak in flight (server)": peaks[name],
                    }
                )
                print(
                    f"  c={concurrency:<3} {names[name]:<22} {wall:6.3f}s "
                    f"{ideal / wall:5.3f} of ideal  "
                    f"({' '.join(f'{ideal / each:.2f}' for each in walls[name])})",
                    file=sys.stderr,
                    flush=True,
                )
    return rows


def describe(quick: bool) -> str:
    """The setup in one line."""
    batches, _ = QUICK if quick else FULL
    return (
        f"no rate limit, latency {LATENCY_MS:g} ± {JITTER_MS:g} ms, {batches} batches "
        f"of {BATCH} IDs; ideal = batches / concurrency x {LATENCY_MS:g} ms; medians over "
        "rounds, this client and gather side by side in each"
    )


def run(quick: bool) -> list[dict[str, Any]]:
    """The latency-hiding benchmark's rows."""
    quiet_logs()
    return asyncio.run(measure(quick))


if __name__ == "__main__":
    print(describe("--quick" in sys.argv))
    print(format_table(run("--quick" in sys.argv)))
