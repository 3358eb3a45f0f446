"""Latency hiding: with no rate limit, how close concurrency brings a pull to its ideal.

The emulator answers after 100 ms ± 50 ms (uniform) and has no limit. A pull of B
batches at concurrency c cannot end before ``B / c x 100 ms`` (c requests always in
flight, each taking the mean latency). Measured for this client and, as a reference, for
(b) ``asyncio.gather`` under a semaphore of the same size.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from ._common import BATCH, BENCH_KEY, EmulatorProcess, format_table, prospect_ids, quiet_logs
from .alternatives import run_one

TITLE = "Latency hiding"
LATENCY_MS = 100.0
JITTER_MS = 50.0
# (batches, concurrency levels)
FULL = (256, (1, 4, 8, 16, 32))
QUICK = (16, (1, 8))


async def measure(quick: bool) -> list[dict[str, Any]]:
    """One row per concurrency and alternative."""
    batches, levels = QUICK if quick else FULL
    ids = prospect_ids(batches * BATCH)
    rows: list[dict[str, Any]] = []
    async with EmulatorProcess(
        warm=len(ids), rate_limit=None, latency_ms=LATENCY_MS, latency_jitter_ms=JITTER_MS
    ) as emulator:
        for concurrency in levels:
            ideal = batches / concurrency * LATENCY_MS / 1000
            for name in ("client", "gather"):
                await emulator.reset()
                result = await run_one(
                    name, emulator.url, BENCH_KEY, ids, concurrency=concurrency, limit=None
                )
                stats = await emulator.stats()
                rows.append(
                    {
                        "concurrency": concurrency,
                        "alternative": result.name.replace(", limit unknown", ""),
                        "batches": batches,
                        "wall s": result.elapsed,
                        "ideal s": ideal,
                        "wall / ideal": result.elapsed / ideal,
                        "peak in flight (server)": stats["peak_in_flight"],
                    }
                )
                print(
                    f"  c={concurrency:<3} {rows[-1]['alternative']:<22} "
                    f"{result.elapsed:6.2f}s {result.elapsed / ideal:5.3f}x ideal",
                    file=sys.stderr,
                    flush=True,
                )
    return rows


def describe(quick: bool) -> str:
    """The setup in one line."""
    batches, _ = QUICK if quick else FULL
    return (
        f"no rate limit, latency {LATENCY_MS:g} ± {JITTER_MS:g} ms, {batches} batches "
        f"of {BATCH} IDs; ideal = batches / concurrency x {LATENCY_MS:g} ms"
    )


def run(quick: bool) -> list[dict[str, Any]]:
    """The latency-hiding benchmark's rows."""
    quiet_logs()
    return asyncio.run(measure(quick))


if __name__ == "__main__":
    print(describe("--quick" in sys.argv))
    print(format_table(run("--quick" in sys.argv)))
