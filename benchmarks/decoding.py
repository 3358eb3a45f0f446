"""Decoding: the client's typed msgspec decoding against ``json.loads`` plus dict access.

The bodies are what the emulator serves for 40 prospects (about 50 events each, the
three event types mixed), encoded as the API does. Four ways to read them:

- ``decode_response`` (this client): typed Events with typed ``data`` per event type,
  aware datetimes, and each event's raw JSON kept for a lossless ``to_json()``;
- ``json.loads`` then reading each event's fields (event_id, event_name, event_time,
  prospect_id, data) from the dicts: what a bare loop does, times stay strings;
- the same plus ``datetime.fromisoformat`` on event_time: the same work as the typed
  decoder's datetime;
- untyped ``msgspec.json.decode`` to dicts, for reference.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from explorium_events._models import decode_response

from ._common import BATCH, chunks, format_table, prospect_ids

TITLE = "Decoding"
# (responses, repeats, best of)
FULL = (200, 5, 9)
QUICK = (20, 2, 2)


def _bodies(count: int) -> tuple[list[bytes], int]:
    from explorium_events.emulator import EmulatorConfig, expected_events

    config = EmulatorConfig(now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    bodies, events = [], 0
    for batch in chunks(prospect_ids(count * BATCH), BATCH):
        found = expected_events(batch, config=config)
        events += len(found)
        bodies.append(
            json.dumps(
                {
                    "response_context": {
                        "correlation_id": "5" * 32,
                        "request_status": "success",
                        "time_took_in_seconds": 0.931,
                    },
                    "output_events": found,
                }
            ).encode()
        )
    return bodies, events


def _typed(body: bytes) -> int:
    return len(decode_response(body).output_events)


def _json_dicts(body: bytes) -> int:
    count = 0
    for event in json.loads(body)["output_events"]:
        _ = (event["event_id"], event["event_name"], event["event_time"])
        _ = (event["prospect_id"], event["data"])
        count += 1
    return count


def _json_datetimes(body: bytes) -> int:
    count = 0
    for event in json.loads(body)["output_events"]:
        _ = (event["event_id"], event["event_name"], event["prospect_id"], event["data"])
        _ = dt.datetime.fromisoformat(event["event_time"])
        count += 1
    return count


_untyped_decoder = msgspec.json.Decoder()


def _msgspec_dicts(body: bytes) -> int:
    count = 0
    for event in _untyped_decoder.decode(body)["output_events"]:
        _ = (event["event_id"], event["event_name"], event["event_time"])
        _ = (event["prospect_id"], event["data"])
        count += 1
    return count


WAYS: dict[str, Callable[[bytes], int]] = {
    "(d) this client: decode_response (typed)": _typed,
    "json.loads + dict access": _json_dicts,
    "json.loads + dict access + fromisoformat": _json_datetimes,
    "msgspec.json.decode untyped + dict access": _msgspec_dicts,
}


def _time(way: Callable[[bytes], int], bodies: list[bytes], repeats: int) -> float:
    # As timeit does: no garbage collection inside the timed loop, for every way alike.
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(repeats):
            for body in bodies:
                way(body)
        return time.perf_counter() - started
    finally:
        gc.enable()


def measure(quick: bool) -> list[dict[str, Any]]:
    """Events per second for each way, best of several timed runs."""
    responses, repeats, best_of = QUICK if quick else FULL
    bodies, events = _bodies(responses)
    for name, way in WAYS.items():
        assert sum(map(way, bodies)) == events, name  # every way reads every event
    best = dict.fromkeys(WAYS, float("inf"))
    # Interleaved rounds: a machine that slows down for a while slows every way alike.
    for _ in range(best_of):
        for name, way in WAYS.items():
            best[name] = min(best[name], _time(way, bodies, repeats))
    rates = {name: events * repeats / seconds for name, seconds in best.items()}
    baseline = rates["json.loads + dict access"]
    return [
        {
            "decoder": name,
            "events / s": rate,
            "µs / response": 1e6 * events / rate / len(bodies),
            "x json.loads": rate / baseline,
        }
        for name, rate in rates.items()
    ]


def describe(quick: bool) -> str:
    """The setup in one line."""
    responses, _, _ = QUICK if quick else FULL
    bodies, events = _bodies(min(responses, 20))
    size = sum(map(len, bodies)) / len(bodies)
    return (
        f"{responses} emulator responses of {BATCH} prospects, {events / len(bodies):.0f} "
        f"events and {size / 1024:.0f} KiB each on average; one thread, garbage collector off "
        "while timing (as timeit), best of interleaved runs"
    )


def run(quick: bool) -> list[dict[str, Any]]:
    """The decoding benchmark's rows."""
    return measure(quick)


if __name__ == "__main__":
    print(describe("--quick" in sys.argv))
    print(format_table(run("--quick" in sys.argv)))
