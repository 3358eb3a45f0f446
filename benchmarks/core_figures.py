"""The core client's acceptance figures (issue 2), against the emulator on loopback.

    python benchmarks/core_figures.py

1. Requests for 10,000 input IDs holding 2,000 repeats (in upper case): one per 40 unique.
2. Peak requests in flight, seen by the client and by the server: max_concurrency.
3. 429s when the server's limit is half the one the client was told (compressed to
   25 per 2 s against 50 per 2 s): the client learns the lower limit from the headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from explorium_events import EventsClient
from explorium_events.emulator import Emulator, EmulatorConfig


def prospect_id(number: int) -> str:
    return hashlib.sha1(f"figures-{number}".encode()).hexdigest()


async def main() -> None:
    inputs = [prospect_id(n) for n in range(8000)] + [prospect_id(n).upper() for n in range(2000)]
    async with Emulator(EmulatorConfig(rate_limit=None, latency_ms=20)) as emulator:
        async with EventsClient(
            api_key="figures", base_url=emulator.url, rate_limit=None
        ) as client:
            result = await client.fetch(inputs)
            print(
                f"10,000 input IDs (8,000 unique): {result.stats.requests} requests, "
                f"{result.stats.duplicate_ids} repeats sent 0 times, {len(result.events)} events; "
                f"peak in flight: client {client.peak_in_flight}, "
                f"server {emulator.stats.peak_in_flight} (max_concurrency {client.max_concurrency})"
            )
    batches = 150
    config = EmulatorConfig(rate_limit=25, rate_window=2.0, latency_ms=20)
    async with Emulator(config) as emulator:
        async with EventsClient(
            api_key="figures", base_url=emulator.url, rate_limit=50, rate_window=2.0
        ) as client:
            started = time.monotonic()
            result = await client.fetch([prospect_id(n) for n in range(40 * batches)])
            elapsed = time.monotonic() - started
            bound = (batches / 25 - 1) * 2.0
            print(
                f"server limit 25/2s, client told 50/2s: {result.stats.requests} requests, "
                f"{result.stats.rate_limited} answered 429 "
                f"(server counted {emulator.stats.requests_by_status.get(429, 0)}), "
                f"{elapsed:.1f}s against a bound of {bound:.1f}s; "
                f"limit learned: {client.rate_limit_state().limit}"
            )


if __name__ == "__main__":
    asyncio.run(main())
