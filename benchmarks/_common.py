"""What every benchmark shares: the emulator in its own process, IDs, tables, the machine.

The emulator runs in a child process (``python -m benchmarks._common serve '<json>'``)
so that its CPU is never counted as the client's and the two do not share one event
loop: on loopback that is the closest thing to a remote server this machine has.

Its synthetic events are a pure function of (seed, anchor, prospect ID) that costs about
6 ms of CPU per 40-ID answer: enough to make the emulator, not the client, the
bottleneck on a 2-core machine above ~150 requests a second. The child memoizes that
function and computes the benchmark's IDs before it starts serving (``warm``), so the
answers are byte for byte the same and the server's CPU stays out of the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import signal
import sys
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import aiohttp

# Not a secret: the emulator accepts any key and keeps one window per key.
BENCH_KEY = "bench-key-0000000000000000"
EVENT_TYPES = (
    "prospect_changed_company",
    "prospect_changed_role",
    "prospect_job_start_anniversary",
)
BATCH = 40


def quiet_logs() -> None:
    """Keep the client's retry warnings (expected here: some alternatives meet 429s) quiet."""
    logging.getLogger("explorium_events").setLevel(logging.ERROR)


def prospect_ids(count: int, *, start: int = 0) -> list[str]:
    """``count`` distinct, valid, deterministic prospect IDs."""
    return [
        hashlib.sha1(f"bench-prospect-{number}".encode()).hexdigest()
        for number in range(start, start + count)
    ]


def business_ids(count: int, *, start: int = 0) -> list[str]:
    """``count`` distinct, valid, deterministic business IDs (32 hex characters)."""
    return [
        hashlib.md5(f"bench-business-{number}".encode()).hexdigest()
        for number in range(start, start + count)
    ]


def chunks(ids: Sequence[str], size: int = BATCH) -> list[list[str]]:
    """The IDs in consecutive batches of ``size``."""
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def child_environment() -> dict[str, str]:
    """The environment for a child ``python -m benchmarks...``: this checkout on its path."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    """The machine and the versions the numbers were measured with."""
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "aiohttp": _version("aiohttp"),
        "msgspec": _version("msgspec"),
        "aiolimiter": _version("aiolimiter"),
        "explorium-events": _version("explorium-events"),
    }


def load_average() -> str:
    """The 1-minute load average, to tell a busy machine from a slow client."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 100:
            return f"{value:.1f}"
        if magnitude >= 1:
            return f"{value:.3f}"
        return f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of ``rows``: readable in a terminal, pasteable into a README."""
    if not rows:
        return "(no rows)"
    if columns is None:
        seen: dict[str, None] = {}
        for row in rows:
            seen.update(dict.fromkeys(row))
        columns = list(seen)
    cells = [[_cell(row.get(column, "")) for column in columns] for row in rows]
    widths = [
        max(len(column), *(len(line[index]) for line in cells))
        for index, column in enumerate(columns)
    ]

    def line(values: Iterable[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(columns), rule, *(line(values) for values in cells)])


class EmulatorProcess:
    """The emulator, served by a child process on a loopback port, for an ``async with``.

    ``config`` holds EmulatorConfig fields that JSON can carry (no clock, no ``now``).
    """

    def __init__(self, *, warm: int = 0, **config: Any) -> None:
        self.config = config
        self.warm = warm  # prospect_ids(warm) and business_ids(warm) are generated first
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def __aenter__(self) -> Self:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks._common",
            "serve",
            json.dumps(self.config),
            str(self.warm),
            stdout=asyncio.subprocess.PIPE,
            env=child_environment(),
        )
        assert self._process.stdout is not None
        try:
            async with asyncio.timeout(120):
                line = await self._process.stdout.readline()
        except BaseException:
            await self._stop()
            raise
        self.url = line.decode().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            await self._stop()
            raise RuntimeError(f"the emulator did not start (it said {line!r})")
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()

    async def stats(self) -> dict[str, Any]:
        """The emulator's counters (``GET /_emulator/stats``)."""
        assert self._session is not None
        async with self._session.get(f"{self.url}/_emulator/stats") as response:
            stats: dict[str, Any] = await response.json()
            return stats

    async def reset(self) -> None:
        """Zero the counters and empty every rate window (``POST /_emulator/reset``)."""
        assert self._session is not None
        async with self._session.post(f"{self.url}/_emulator/reset") as response:
            response.raise_for_status()


def status_count(stats: Mapping[str, Any], status: int) -> int:
    """How many answers of this status the emulator's stats record."""
    by_status: Mapping[str, int] = stats.get("requests_by_status", {})
    return int(by_status.get(str(status), 0))


def _serve(config_json: str, warm: int) -> None:
    import functools

    from explorium_events.emulator import EmulatorConfig, _business, _data, serve_forever

    config = EmulatorConfig(**json.loads(config_json))
    # A pure function of its arguments: memoizing it changes no answer, only its CPU cost.
    # (The emulator keeps the last 16,384 prospects' histories itself; `warm` fills that.)
    _business.events_for_business = functools.cache(_business.events_for_business)
    if warm:
        _data.expected_events(prospect_ids(warm), config=config)
        _business.expected_business_events(business_ids(warm), config=config)

    def ready(url: str) -> None:
        print(url, flush=True)

    asyncio.run(serve_forever(config, port=0, on_ready=ready))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        _serve(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: python -m benchmarks._common serve '<EmulatorConfig JSON>' WARM_IDS")
