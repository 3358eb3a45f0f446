"""One key, many processes: the rate limit shared through Redis, beside the same without it.

1, 2, 4 and 8 OS processes pull equal shares of the IDs at once, all with the same key,
each told the key's full limit (as replicas of one service would be). With Redis, each
gets ``rate_limit_store`` pointing at one real ``redis-server`` (started here, on a
loopback port, in a temporary folder); without, each paces itself alone and sees the
others only through ``X-RateLimit-Remaining``. The bound is ratelimit.py's:

    bound = (ceil(requests / limit) - 1) * window + latency

"wall" runs from the agreed start moment to the last process's end; "late start" is how
long after that moment the last process began (a busy machine starting 8 interpreters).
"429s" are the emulator's own: each is a request its sliding window refused, i.e. the
processes together went over the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._common import BATCH, BENCH_KEY, EmulatorProcess, format_table, quiet_logs, status_count
from .alternatives import PullResult, in_child_process

PROCESSES = (1, 2, 4, 8)


@dataclass(frozen=True)
class Setup:
    """The issue's measurement: 50 requests per 2 s window, 200 batches."""

    limit: int
    window: float
    requests: int
    latency_ms: float
    jitter_ms: float
    concurrency: int = 8

    @property
    def bound(self) -> float:
        return (math.ceil(self.requests / self.limit) - 1) * self.window + self.latency_ms / 1000


FULL = Setup(limit=50, window=2.0, requests=200, latency_ms=25.0, jitter_ms=10.0)
QUICK = Setup(limit=20, window=1.0, requests=40, latency_ms=10.0, jitter_ms=5.0)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("this benchmark needs redis-server: apt-get install redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="explorium-bench-redis-") as folder:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while not _pong(port):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(10)


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _flush(url: str) -> None:
    """Empty the store between runs, so that each starts from an empty shared window."""
    import redis

    with redis.Redis.from_url(url) as store:
        store.flushall()


async def _run(
    emulator: EmulatorProcess, setup: Setup, processes: int, store: str | None
) -> dict[str, Any]:
    await emulator.reset()
    if store is not None:
        _flush(store)
    count = setup.requests * BATCH
    share = count // processes
    # Time for every interpreter to start and import (8 of them share 2 cores here); a
    # process still starting at that moment shows in "late start s".
    start_at = time.time() + 1.5 + 0.5 * processes
    knobs = {"concurrency": setup.concurrency, "limit": setup.limit, "window": setup.window,
             "store": store}  # fmt: skip
    specs = [
        {"name": "client", "url": emulator.url, "key": BENCH_KEY, "count": share,
         "start": number * share, "start_at": start_at, "knobs": knobs}
        for number in range(processes)
    ]  # fmt: skip
    results: list[PullResult] = await asyncio.gather(*(in_child_process(s) for s in specs))
    wall = max(result.finished for result in results) - start_at
    stats = await emulator.stats()
    row = {
        "processes": processes,
        "shared through": "Redis" if store is not None else "nothing (headers only)",
        "wall s": wall,
        "bound s": setup.bound,
        "wall / bound": wall / setup.bound,
        "late start s": max(0.0, max(result.started for result in results) - start_at),
        "requests": sum(result.requests for result in results),
        "429s": status_count(stats, 429),
        "failed batches": sum(result.failed_batches for result in results),
    }
    print(
        f"  {processes} processes, {row['shared through']:<24} {wall:6.2f}s "
        f"{row['wall / bound']:5.3f}x bound  429s={row['429s']}",
        file=sys.stderr,
        flush=True,
    )
    return row


async def measure(quick: bool) -> list[dict[str, Any]]:
    """Each number of processes, with Redis and without; one row each."""
    setup = QUICK if quick else FULL
    rows: list[dict[str, Any]] = []
    with redis_server() as store:
        async with EmulatorProcess(
            warm=setup.requests * BATCH,
            rate_limit=setup.limit,
            rate_window=setup.window,
            latency_ms=setup.latency_ms,
            latency_jitter_ms=setup.jitter_ms,
        ) as emulator:
            for processes in PROCESSES:
                for shared in (store, None):
                    rows.append(await _run(emulator, setup, processes, shared))
    return rows


def _versions() -> str:
    binary = shutil.which("redis-server")
    server = "not installed"
    if binary is not None:
        said = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
        server = next((w[2:] for w in said.stdout.split() if w.startswith("v=")), "?")
    try:
        import redis

        client = redis.__version__
    except ImportError:
        client = "not installed"
    return f"redis-server {server}, redis-py {client}"


def describe(quick: bool) -> str:
    """The setup in one line, for the table's heading."""
    s = QUICK if quick else FULL
    return (
        f"limit {s.limit} requests per {s.window:g} s sliding window, {s.requests} requests of "
        f"{BATCH} IDs split evenly over 1, 2, 4 and 8 processes sharing one key, each told the "
        f"full limit; latency {s.latency_ms:g} ± {s.jitter_ms:g} ms, concurrency "
        f"{s.concurrency} per process; a real redis-server on loopback ({_versions()})"
    )


def run(quick: bool) -> list[dict[str, Any]]:
    """The shared-limit benchmark's rows."""
    quiet_logs()
    return asyncio.run(measure(quick))


if __name__ == "__main__":
    print(describe("--quick" in sys.argv))
    print(format_table(run("--quick" in sys.argv)))
