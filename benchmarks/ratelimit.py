"""Rate-limit efficiency: how close each alternative runs to the least time the window allows.

The emulator's sliding window is compressed so that a pull several windows long takes
seconds. The bound: a sliding window of ``limit`` units per ``window`` seconds admits
``limit`` units at once, the next ``limit`` exactly one window after the first ones
arrived, and so on; the last group arrives ``ceil(units / limit) - 1`` windows after the
first, and the pull ends when the slowest answer of that group comes back. So::

    bound = (ceil(units / limit) - 1) * window + latency

where ``latency`` is the server's mean answer time (the emulator's ``latency_ms``).
No client can finish earlier without a 429 (a rejected request costs no units but
buys nothing either).

Five scenarios: the API counts one unit per request; one unit per prospect ID (40 per
full request); two OS processes, each pulling half the IDs, sharing one key (each
told the key's full limit, neither knowing of the other); this client told the
wrong window (60 s, the default, against the server's 2 s), with and without the limit;
and a restart into a window an earlier run has just filled (what it costs in 429s).
"""

from __future__ import annotations

import asyncio
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ._common import (
    BATCH,
    BENCH_KEY,
    EmulatorProcess,
    format_table,
    prospect_ids,
    quiet_logs,
    status_count,
)
from .alternatives import PullResult, available, in_child_process, run_one


@dataclass(frozen=True)
class Setup:
    """One compressed rate limit and pull size."""

    limit: int  # requests per window (x40 units per window when the API counts IDs)
    window: float
    windows: int  # full windows of requests, then one last group of ``concurrency``
    latency_ms: float
    jitter_ms: float
    concurrency: int = 8

    @property
    def requests(self) -> int:
        # The last group is one round of ``concurrency`` requests: a full last window
        # would need ceil(limit / concurrency) rounds of latency, which no client at this
        # concurrency can avoid and the bound below does not count.
        return self.limit * self.windows + self.concurrency

    def bound(self, units: int, limit: int) -> float:
        return (math.ceil(units / limit) - 1) * self.window + self.latency_ms / 1000


# The real API: 200 requests per 60 s, answers in about 0.75 s. Compressed 30 times:
# 200 per 2 s, 25 ms. Both ratios that matter survive: latency / window (1.25%) and
# latency / (window / limit), which decides whether one request at a time keeps up (2.5).
FULL = Setup(limit=200, window=2.0, windows=4, latency_ms=25.0, jitter_ms=10.0)
QUICK = Setup(limit=30, window=1.0, windows=1, latency_ms=10.0, jitter_ms=5.0)


def _emulator(setup: Setup, *, warm: int, **config: Any) -> EmulatorProcess:
    """The emulator of a scenario: the setup's limit, window and latency, ``config`` on top."""
    return EmulatorProcess(
        warm=warm,
        **{
            "rate_limit": setup.limit,
            "rate_window": setup.window,
            "latency_ms": setup.latency_ms,
            "latency_jitter_ms": setup.jitter_ms,
            **config,
        },
    )


def _row(
    scenario: str, setup: Setup, result: PullResult, bound: float, server_429: int | None
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "alternative": result.name,
        "wall s": result.elapsed,
        "bound s": bound,
        "wall / bound": result.elapsed / bound,
        "requests": result.requests,
        "429s": result.rate_limited,
        "429s (server)": server_429 if server_429 is not None else "",
        "events": result.events,
        "failed batches": result.failed_batches,
    }


async def _single(
    scenario: str, setup: Setup, cost: str, names: list[str], rows: list[dict[str, Any]]
) -> None:
    per_id = cost == "id"
    limit = setup.limit * BATCH if per_id else setup.limit
    ids = prospect_ids(setup.requests * BATCH)
    units = len(ids) if per_id else setup.requests
    bound = setup.bound(units, limit)
    async with _emulator(setup, warm=len(ids), rate_limit=limit, rate_limit_cost=cost) as emulator:
        for name in names:
            await emulator.reset()
            result = await run_one(
                name,
                emulator.url,
                BENCH_KEY,
                ids,
                concurrency=setup.concurrency,
                limit=limit,
                window=setup.window,
                cost=cost,
            )
            stats = await emulator.stats()
            rows.append(_row(scenario, setup, result, bound, status_count(stats, 429)))
            _progress(rows[-1])


async def _shared(setup: Setup, names: list[str], rows: list[dict[str, Any]]) -> None:
    count = setup.requests * BATCH
    half = count // 2
    bound = setup.bound(setup.requests, setup.limit)
    async with _emulator(setup, warm=count) as emulator:
        for name in names:
            await emulator.reset()
            start_at = time.time() + 1.0  # time for both interpreters to start
            knobs = {"concurrency": setup.concurrency, "limit": setup.limit, "window": setup.window}
            specs = [
                {"name": name, "url": emulator.url, "key": BENCH_KEY, "count": half,
                 "start": start, "start_at": start_at, "knobs": knobs}
                for start in (0, half)
            ]  # fmt: skip
            first, second = await asyncio.gather(*(in_child_process(spec) for spec in specs))
            combined = PullResult(
                name=first.name,
                elapsed=max(first.finished, second.finished) - start_at,
                requests=first.requests + second.requests,
                rate_limited=first.rate_limited + second.rate_limited,
                events=first.events + second.events,
                failed_batches=first.failed_batches + second.failed_batches,
            )
            stats = await emulator.stats()
            rows.append(
                _row("shared key, 2 processes", setup, combined, bound, status_count(stats, 429))
            )
            _progress(rows[-1])


async def _wrong_window(
    setup: Setup, told: float, names: list[str], rows: list[dict[str, Any]]
) -> None:
    """This client told a ``told``-second window against the server's ``setup.window``."""
    ids = prospect_ids(setup.requests * BATCH)
    bound = setup.bound(setup.requests, setup.limit)
    async with _emulator(setup, warm=len(ids)) as emulator:
        for name in names:
            await emulator.reset()
            result = await run_one(
                name,
                emulator.url,
                BENCH_KEY,
                ids,
                concurrency=setup.concurrency,
                limit=setup.limit,
                window=told,
            )
            stats = await emulator.stats()
            scenario = f"told {told:g} s, server {setup.window:g} s"
            rows.append(_row(scenario, setup, result, bound, status_count(stats, 429)))
            _progress(rows[-1])


async def _restart(setup: Setup, names: list[str], rows: list[dict[str, Any]]) -> None:
    """A pull started right after an earlier run filled the window: what the restart costs.

    The earlier run is this client pulling one window's worth; the restart pulls one
    more. It cannot finish before the window frees, one window after the earlier run's
    first request, plus a latency: that is its bound, from the moment it starts.
    """
    ids = prospect_ids(2 * setup.limit * BATCH)
    earlier, later = ids[: setup.limit * BATCH], ids[setup.limit * BATCH :]
    async with _emulator(setup, warm=len(ids)) as emulator:
        knobs = {"concurrency": setup.concurrency, "limit": setup.limit, "window": setup.window}
        for name in names:
            await emulator.reset()
            filled_from = time.time()
            await run_one("client", emulator.url, BENCH_KEY, earlier, **knobs)
            result = await run_one(name, emulator.url, BENCH_KEY, later, **knobs)
            stats = await emulator.stats()
            bound = filled_from + setup.window + setup.latency_ms / 1000 - result.started
            rows.append(
                _row("restart into a full window", setup, result, bound, status_count(stats, 429))
            )
            _progress(rows[-1])


async def _restarted_pull(setup: Setup, rows: list[dict[str, Any]]) -> None:
    """``pull()`` with a checkpoint and no limit told, stopped after a few batches; the
    window is then filled (another run spending the key) and a new client resumes the
    pull at once. The checkpoint remembers the server's limit, so the resumed run probes.
    """
    from explorium_events import EventsClient, pull

    ids = prospect_ids(2 * setup.limit * BATCH)
    async with _emulator(setup, warm=len(ids)) as emulator:
        with tempfile.TemporaryDirectory() as folder:
            out, checkpoint = Path(folder, "events.jsonl"), Path(folder, "pull.ckpt")
            stop = asyncio.Event()
            settings: dict[str, Any] = {"api_key": BENCH_KEY, "base_url": emulator.url,
                        "max_concurrency": setup.concurrency, "rate_limit": None,
                        "rate_window": setup.window}  # fmt: skip
            async with EventsClient(**settings) as client:
                await pull(client, ids, out, checkpoint, stop=stop, on_batch=lambda _: stop.set())
            await emulator.reset()  # the window empty, the counters zero: then fill it
            filled_from = time.time()
            await _fill_window(emulator.url, setup.concurrency)
            filling_429s = status_count(await emulator.stats(), 429)
            started = time.time()
            async with EventsClient(**settings) as client:
                summary = await pull(client, ids, out, checkpoint)
            finished = time.time()
        stats = await emulator.stats()
    result = PullResult(
        name="(d) pull(), limit unknown, resumed",
        elapsed=finished - started,
        requests=summary.requests,
        rate_limited=summary.rate_limited,
        events=summary.events_written,
        failed_batches=summary.failed_batches,
        started=started,
        finished=finished,
    )
    bound = filled_from + setup.window + setup.latency_ms / 1000 - started
    server_429s = status_count(stats, 429) - filling_429s
    rows.append(_row("restart into a full window", setup, result, bound, server_429s))
    _progress(rows[-1])


async def _fill_window(url: str, concurrency: int) -> None:
    """Spend the rest of the key's window: one-ID requests until the server says 429."""
    body = {"prospect_ids": prospect_ids(1), "event_types": ["prospect_changed_role"]}
    full = asyncio.Event()

    async def spend(session: aiohttp.ClientSession) -> None:
        while not full.is_set():
            async with session.post(
                url + "/v1/prospects/events", json=body, headers={"api_key": BENCH_KEY}
            ) as response:
                await response.read()
                if response.status == 429:
                    full.set()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(spend(session) for _ in range(concurrency)))


def _progress(row: dict[str, Any]) -> None:
    print(
        f"  {row['scenario']:<24} {row['alternative']:<32} {row['wall s']:7.2f}s "
        f"{row['wall / bound']:5.3f}x bound  429s={row['429s']}",
        file=sys.stderr,
        flush=True,
    )


async def measure(quick: bool) -> list[dict[str, Any]]:
    """Every alternative under each scenario; one row each."""
    setup = QUICK if quick else FULL
    names = available()
    if "aiolimiter" not in names:
        print("  aiolimiter is not installed (pip install -e '.[bench]'): (c) skipped",
              file=sys.stderr, flush=True)  # fmt: skip
    rows: list[dict[str, Any]] = []
    # Quick (CI): every alternative once, then only the limiters in the other scenarios.
    few = [name for name in names if name in ("aiolimiter", "client")] if quick else names
    await _single("1 unit per request", setup, "request", names, rows)
    await _single("1 unit per ID", setup, "id", few, rows)
    await _shared(setup, [name for name in few if name != "sequential"], rows)
    await _wrong_window(setup, 60.0 if not quick else 30.0, ["client", "client_unknown"], rows)
    restarting = [name for name in few if name != "sequential"]
    restarting += [] if "client_unknown" in restarting else ["client_unknown"]
    await _restart(setup, restarting, rows)
    await _restarted_pull(setup, rows)
    return rows


def describe(quick: bool) -> str:
    """The setup in one line, for the table's heading."""
    s = QUICK if quick else FULL
    return (
        f"limit {s.limit} requests (or {s.limit * BATCH} IDs) per {s.window:g} s sliding window, "
        f"{s.requests} requests of {BATCH} IDs ({s.windows} windows), latency "
        f"{s.latency_ms:g} ± {s.jitter_ms:g} ms, concurrency {s.concurrency}"
    )


def run(quick: bool) -> list[dict[str, Any]]:
    """The rate-limit benchmark's rows."""
    quiet_logs()
    return asyncio.run(measure(quick))


if __name__ == "__main__":
    print(describe("--quick" in sys.argv))
    print(format_table(run("--quick" in sys.argv)))
