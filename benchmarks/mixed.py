"""One key, both kinds of events: a mixed pull spends one rate-limit budget, with no 429.

The API's limit is per key across all its endpoints (FACTS-siblings §4). One client
pulls prospects and businesses at the same time (``asyncio.gather`` of ``client.fetch``
and ``client.businesses.fetch``): both go through the client's one limiter, so the
mixed pull should finish at the same bound as a pull of one kind, with no 429. The
bound is ratelimit.py's: ``(ceil(requests / limit) - 1) * window + latency``.

The second row is what happens without that: two clients in one process, each told the
key's full limit, one pulling prospects and one businesses. Clients do not share a
limiter (not even in one process): each must be given its share of the limit, or one
client used for both. The row shows the 429s that cost.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

from ._common import (
    BATCH,
    BENCH_KEY,
    EmulatorProcess,
    business_ids,
    format_table,
    prospect_ids,
    quiet_logs,
    status_count,
)


@dataclass(frozen=True)
class Setup:
    """A compressed rate limit and a pull of ``requests`` requests, half of each kind."""

    limit: int
    window: float
    windows: int
    latency_ms: float
    jitter_ms: float
    concurrency: int = 8

    @property
    def requests(self) -> int:
        # As in ratelimit.py: full windows, then one last round at the concurrency.
        return self.limit * self.windows + self.concurrency

    @property
    def bound(self) -> float:
        return (math.ceil(self.requests / self.limit) - 1) * self.window + self.latency_ms / 1000


# The real API compressed 30 times, as in ratelimit.py: 200 per 2 s, 25 ± 10 ms.
FULL = Setup(limit=200, window=2.0, windows=4, latency_ms=25.0, jitter_ms=10.0)
QUICK = Setup(limit=30, window=1.0, windows=1, latency_ms=10.0, jitter_ms=5.0)


def _client(url: str, setup: Setup) -> Any:
    from explorium_events import EventsClient

    return EventsClient(
        api_key=BENCH_KEY,
        base_url=url,
        rate_limit=setup.limit,
        rate_window=setup.window,
        max_concurrency=setup.concurrency,
    )


async def _one_client(url: str, setup: Setup, pids: list[str], bids: list[str]) -> dict[str, Any]:
    async with _client(url, setup) as client:
        started = time.perf_counter()
        prospects, businesses = await asyncio.gather(
            client.fetch(pids, raise_on_error=False),
            client.businesses.fetch(bids, raise_on_error=False),
        )
        elapsed = time.perf_counter() - started
    return _outcome("one client, both kinds", elapsed, prospects, businesses)


async def _two_clients(url: str, setup: Setup, pids: list[str], bids: list[str]) -> dict[str, Any]:
    async with _client(url, setup) as first, _client(url, setup) as second:
        started = time.perf_counter()
        prospects, businesses = await asyncio.gather(
            first.fetch(pids, raise_on_error=False),
            second.businesses.fetch(bids, raise_on_error=False),
        )
        elapsed = time.perf_counter() - started
    return _outcome(
        "two clients, one key, each told the full limit", elapsed, prospects, businesses
    )


def _outcome(name: str, elapsed: float, prospects: Any, businesses: Any) -> dict[str, Any]:
    return {
        "scenario": name,
        "wall s": elapsed,
        "prospect requests": prospects.stats.requests,
        "business requests": businesses.stats.requests,
        "429s (client)": prospects.stats.rate_limited + businesses.stats.rate_limited,
        "prospect events": len(prospects.events),
        "business events": len(businesses.events),
        "failed batches": len(prospects.failed) + len(businesses.failed),
    }


async def measure(quick: bool) -> list[dict[str, Any]]:
    """The mixed pull, then the two-client counter-example; one row each."""
    setup = QUICK if quick else FULL
    half = setup.requests // 2
    pids = prospect_ids(half * BATCH)
    bids = business_ids((setup.requests - half) * BATCH)
    rows: list[dict[str, Any]] = []
    async with EmulatorProcess(
        warm=len(pids),
        rate_limit=setup.limit,
        rate_window=setup.window,
        latency_ms=setup.latency_ms,
        latency_jitter_ms=setup.jitter_ms,
    ) as emulator:
        for scenario in (_one_client, _two_clients):
            await emulator.reset()
            # A window that still holds the previous scenario's requests would skew this one.
            await asyncio.sleep(setup.window)
            await emulator.reset()
            row = await scenario(emulator.url, setup, pids, bids)
            stats = await emulator.stats()
            row["429s (server)"] = status_count(stats, 429)
            row["bound s"] = setup.bound
            row["wall / bound"] = row["wall s"] / setup.bound
            rows.append(row)
            print(
                f"  {row['scenario']:<48} {row['wall s']:7.2f}s {row['wall / bound']:5.3f}x bound"
                f"  429s={row['429s (server)']}",
                file=sys.stderr,
                flush=True,
            )
    return rows


def describe(quick: bool) -> str:
    """The setup in one line, for the table's heading."""
    s = QUICK if quick else FULL
    return (
        f"limit {s.limit} requests per {s.window:g} s sliding window for the key, "
        f"{s.requests} requests of {BATCH} IDs ({s.requests // 2} prospect, "
        f"{s.requests - s.requests // 2} business), latency {s.latency_ms:g} ± {s.jitter_ms:g} ms, "
        f"concurrency {s.concurrency}"
    )


def run(quick: bool) -> list[dict[str, Any]]:
    """The mixed benchmark's rows."""
    quiet_logs()
    return asyncio.run(measure(quick))


if __name__ == "__main__":
    print(describe("--quick" in sys.argv))
    print(format_table(run("--quick" in sys.argv)))
