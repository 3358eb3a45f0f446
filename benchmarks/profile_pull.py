"""Where a pull's CPU goes: cProfile of a 1,000,000-ID ``fetch``/``stream`` with no rate limit.

    python -m benchmarks.profile_pull                   # 1,000,000 IDs, stream(), top 20
    python -m benchmarks.profile_pull --ids 200000 --mode fetch --top 30

To isolate the client's own cost, the HTTP session is a fake in this process
(``FakeSession``, passed as ``session=``): it answers every POST at once, with no
socket and no aiohttp, with a body built from one emulator answer for 40 prospects
(about 44 events, the three types mixed), its prospect IDs and event ids replaced by
ones derived from the batch, so that every event is new and the client does all its
work (validation, dedupe, decoding, sorting, accounting). Building a body is the fake's
own cost; it shows in the profile as ``FakeSession``/``_FakeResponse`` lines, and is
listed apart in the summary.

The run prints the wall and CPU time, then two cProfile tables (top N by cumulative
time, top N by own time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import io
import json
import pstats
import sys
import time
from types import TracebackType
from typing import Any, Self

import msgspec

from ._common import BATCH, BENCH_KEY, prospect_ids, quiet_logs

_decode_request = msgspec.json.Decoder(dict[str, Any])


def _template() -> list[bytes | tuple[str, int]]:
    """One emulator answer for 40 IDs, cut into literal pieces and slots.

    A slot ``("pid", j)`` takes the batch's j-th ID; ``("eid", k)`` the k-th event's id.
    """
    from explorium_events.emulator import EmulatorConfig, expected_events

    config = EmulatorConfig(now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    ids = prospect_ids(BATCH, start=10_000_000)
    events = expected_events(ids, config=config)
    position = {pid: index for index, pid in enumerate(ids)}
    marked = []
    for number, event in enumerate(events):
        event = dict(event)
        event["event_id"] = f"@eid{number}@"
        event["prospect_id"] = f"@pid{position[event['prospect_id']]}@"
        marked.append(event)
    body = json.dumps(
        {
            "response_context": {
                "correlation_id": "5" * 32,
                "request_status": "success",
                "time_took_in_seconds": 0.931,
            },
            "output_events": marked,
        }
    )
    pieces: list[bytes | tuple[str, int]] = []
    for index, part in enumerate(body.split("@")):
        if index % 2 == 0:
            pieces.append(part.encode())
        else:
            kind, number = part[:3], int(part[3:])
            pieces.append((kind, number))
    return pieces


class _FakeResponse:
    status = 200
    reason = "OK"

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.headers: dict[str, str] = {}

    async def read(self) -> bytes:
        return self._body

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


class FakeSession:
    """Stands in for aiohttp.ClientSession: answers each events POST at once, in process."""

    closed = False

    def __init__(self) -> None:
        self._pieces = _template()
        self.requests = 0

    def request(self, method: str, url: Any, *, data: bytes, **_: Any) -> _FakeResponse:
        self.requests += 1
        ids: list[str] = _decode_request.decode(data)["prospect_ids"]
        prefix = ids[0][:24]
        out = []
        for piece in self._pieces:
            if isinstance(piece, bytes):
                out.append(piece)
            elif piece[0] == "pid":
                out.append(ids[piece[1] % len(ids)].encode())
            else:
                out.append(f"{prefix}{piece[1]:08x}".encode())
        return _FakeResponse(b"".join(out))

    async def close(self) -> None:
        self.closed = True


async def _pull(ids: list[str], mode: str) -> tuple[int, int]:
    from explorium_events import EventsClient

    session = FakeSession()
    async with EventsClient(
        api_key=BENCH_KEY,
        base_url="http://127.0.0.1:9",
        rate_limit=None,
        max_concurrency=8,
        session=session,  # type: ignore[arg-type]
    ) as client:
        if mode == "fetch":
            result = await client.fetch(ids)
            return result.stats.requests, len(result.events)
        events = 0
        async with client.stream(ids) as batches:
            async for batch in batches:
                events += len(batch.events)
        return batches.stats.requests, events


def _table(stats: pstats.Stats, sort: str, top: int) -> str:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats(sort).print_stats(top)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return "\n".join(lines[start:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--mode", choices=("stream", "fetch"), default="stream")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--no-profile", action="store_true", help="time only")
    args = parser.parse_args(argv)
    quiet_logs()
    ids = prospect_ids(args.ids)
    profiler = cProfile.Profile()
    cpu, wall = time.process_time(), time.perf_counter()
    if args.no_profile:
        requests, events = asyncio.run(_pull(ids, args.mode))
    else:
        requests, events = profiler.runcall(asyncio.run, _pull(ids, args.mode))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"{args.mode}() of {args.ids:,} IDs: {requests:,} requests, {events:,} events; "
        f"{wall:.1f} s wall, {cpu:.1f} s CPU ({cpu / requests * 1000:.3f} ms per request)"
        + ("" if args.no_profile else ", under cProfile")
    )
    if args.no_profile:
        return 0
    stats = pstats.Stats(profiler)
    print(f"\ntop {args.top} by cumulative time:\n" + _table(stats, "cumulative", args.top))
    print(f"\ntop {args.top} by own time (tottime):\n" + _table(stats, "tottime", args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
