"""Issue 10, lazy-order-events: lazy input, order-free resume, one bad event costs itself."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import random
import sys
import tracemalloc
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

import explorium_events._bulk_input as bulk_input
from explorium_events import EventsClient, InvalidProspectIdError
from explorium_events._models import (
    CompanyChangeData,
    EventsResponse,
    ResponseContext,
    decode_response,
)
from explorium_events._ratelimit import RateLimitHeaders
from explorium_events._transport import Answer, Call
from explorium_events.emulator import Emulator, EmulatorConfig, expected_events
from tests.conftest import TEST_KEY, ApiServer, FakeClock, Seen, events_body, prospect_id

# ---------------------------------------------------------------------------------------
# Point 10: lazy means lazy


def counting(total: int, pulled: list[int], *, bad_at: int | None = None) -> Iterator[str]:
    """A one-shot generator of ``total`` IDs that counts how many were pulled from it."""
    for number in range(total):
        pulled[0] += 1
        yield "not-an-id" if number == bad_at else f"{number:040x}"


async def test_a_generator_is_read_only_a_few_batches_ahead_of_the_first_request(
    api: ApiServer, clock: FakeClock
) -> None:
    """At the first request of a 1,000,000-ID generator, at most 4 batches (4 workers) were read."""
    pulled = [0]
    pulled_at_first_request: list[int] = []

    def handler(server: ApiServer, seen: Seen) -> web.Response:
        pulled_at_first_request.append(pulled[0])
        return web.json_response(events_body(seen.ids))

    api.handler = handler
    client = EventsClient(
        api_key=TEST_KEY, base_url=api.url, clock=clock, max_concurrency=4, rate_limit=None
    )
    async with client, client.stream(counting(1_000_000, pulled)) as batches:
        async for _batch in batches:
            break
    assert pulled_at_first_request and pulled_at_first_request[0] <= 4 * 40


async def test_a_200000_id_generator_streams_in_flat_memory() -> None:
    """Streaming 200,000 IDs from a generator peaks at the compact seen-set, not a list of IDs."""

    async def send(call: Call[Any]) -> Answer[Any]:
        empty = EventsResponse(response_context=ResponseContext(), output_events=[])
        return Answer(empty, RateLimitHeaders())

    total = 200_000
    client = EventsClient(api_key=TEST_KEY, base_url="http://127.0.0.1:9", rate_limit=None)
    client._runner._transport.send = send  # type: ignore[method-assign,assignment]
    done = 0
    async with client:
        tracemalloc.start()
        try:
            async with client.stream(f"{n:040x}" for n in range(total)) as batches:
                async for batch in batches:
                    done += len(batch.prospect_ids)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert done == total
    # A list of the IDs alone is ~100 bytes an ID (~20 MB); the 20-byte digests ~25.
    assert peak < 40 * total, f"peak {peak / 1e6:.1f} MB"


async def test_an_invalid_value_late_in_a_generator_raises_with_the_partial_result(
    api: ApiServer, clock: FakeClock
) -> None:
    """The IDs before the invalid value are fetched and in .result; nothing after it is read."""
    pulled = [0]
    client = EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock, rate_limit=None)
    async with client:
        try:
            await client.fetch(counting(10_000, pulled, bad_at=1_234))
        except InvalidProspectIdError as error:
            caught = error
        else:
            raise AssertionError("no InvalidProspectIdError")
    assert "'not-an-id'" in str(caught) and "40 hexadecimal" in str(caught)
    assert pulled[0] == 1_235  # not read past the invalid value
    result = caught.result
    assert result is not None
    assert sorted(result.succeeded) == [f"{n:040x}" for n in range(1_234)]
    assert sorted(api.ids_requested) == sorted(result.succeeded)
    assert len(result.events) == 1_234
    assert [(bad.value, bad.position) for bad in result.invalid] == [("not-an-id", 1_234)]


async def test_repeated_ids_in_a_generator_are_still_sent_once(
    api: ApiServer, clock: FakeClock
) -> None:
    """Checking as consumed keeps the dedupe: 3,000 values holding 1,000 IDs make 25 requests."""
    unique = [prospect_id(n) for n in range(1_000)]
    client = EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock, rate_limit=None)
    async with client:
        result = await client.fetch(
            pid.upper() if n % 2 else pid for n in range(3) for pid in unique
        )
    assert len(api.requests) == 25
    assert sorted(api.ids_requested) == sorted(unique)
    assert result.stats.duplicate_ids == 2_000


# ---------------------------------------------------------------------------------------
# Point 11: one bad event costs only itself


@pytest.mark.parametrize(
    ("event_name", "bad_data", "kept_as"),
    [
        ("prospect_changed_company", None, None),
        ("prospect_changed_role", "a string", None),
        ("prospect_changed_company", [1, 2], None),
        (
            "prospect_job_start_anniversary",
            {"years_at_company": "five", "job_anniversary_date": 7},
            {"years_at_company": "five", "job_anniversary_date": 7},
        ),
        ("prospect_changed_company", {"current_company_name": 12}, {"current_company_name": 12}),
        ("some_future_event", None, None),
    ],
)
async def test_one_event_with_bad_data_is_delivered_raw_and_costs_only_itself(
    api: ApiServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    event_name: str,
    bad_data: Any,
    kept_as: Any,
) -> None:
    """Bad data in one event of 40: every event arrives, the bad one raw, one warning, no retry."""
    ids = [prospect_id(n) for n in range(40)]
    bad_event = {
        "event_name": event_name,
        "event_time": "2026-10-05T00:00:00+00:00",
        "event_id": "e" * 32,
        "prospect_id": ids[7],
        "data": bad_data,
        "unknown_field": {"kept": True},
    }
    body = events_body(ids)
    body["output_events"].insert(3, bad_event)
    raw_body = json.dumps(body, indent=2).encode()  # line breaks inside the event, too
    api.handler = lambda server, seen: web.Response(body=raw_body, content_type="application/json")
    caplog.set_level(logging.WARNING, logger="explorium_events")
    client = EventsClient(api_key=TEST_KEY, base_url=api.url, clock=clock, rate_limit=None)
    async with client:
        result = await client.fetch(ids)
    assert len(api.requests) == 1 and result.stats.retries == 0
    assert result.failed == [] and sorted(result.succeeded) == sorted(ids)
    assert len(result.events) == 41
    [bad] = [event for event in result.events if event.event_id == "e" * 32]
    assert bad.data == kept_as
    assert json.loads(bad.to_json()) == bad_event
    assert bad.to_json() in raw_body
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "e" * 32 in warnings[0].getMessage()
    good = [event for event in result.events if event.event_id != "e" * 32]
    assert all(isinstance(event.data, CompanyChangeData) for event in good)


@pytest.mark.parametrize(
    "envelope",
    [
        b"not json",
        b'{"response_context": {}}',
        b'{"output_events": [{"event_name": "x", "event_time": "2026-10-05T00:00:00Z"}]}',
    ],
)
def test_an_unreadable_envelope_still_fails_the_decode(envelope: bytes) -> None:
    """Not JSON, no output_events list, or an event without its common fields: a decode error."""
    with pytest.raises(msgspec.DecodeError):
        decode_response(envelope)


# ---------------------------------------------------------------------------------------
# Point 8: resume does not depend on the iteration order of an unordered input

_PULL_A_SET = """
import asyncio, json, sys
from explorium_events import EventsClient, pull

url, out, checkpoint, count, stop_after = sys.argv[1:6]
ids = {"%040x" % (number * 7919) for number in range(1, int(count) + 1)}


async def main() -> None:
    stop = asyncio.Event()

    def progress(summary):
        if int(stop_after) and summary.batches_run >= int(stop_after):
            stop.set()

    async with EventsClient(
        api_key="test-key-7f3c9a1be2d84c56", base_url=url, rate_limit=None, max_concurrency=2
    ) as client:
        summary = await pull(client, ids, out, checkpoint, progress=progress, stop=stop)
    print(json.dumps({"done": summary.done, "not_tried": summary.not_tried,
                      "interrupted": summary.interrupted}))


asyncio.run(main())
"""


async def _pull_a_set_in_a_child(
    seed: int, url: str, out: Path, checkpoint: Path, stop: int
) -> Any:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _PULL_A_SET,
        url,
        str(out),
        str(checkpoint),
        str(SET_COUNT),
        str(stop),
        env={**os.environ, "PYTHONHASHSEED": str(seed)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await child.communicate()
    assert child.returncode == 0, stderr.decode()
    return json.loads(stdout)


SET_COUNT = 2_000
_ORDER_CONFIG = EmulatorConfig(
    rate_limit=None, now=dt.datetime(2026, 11, 1, tzinfo=dt.UTC), latency_ms=2
)


async def test_a_pull_of_a_set_stopped_under_one_hash_seed_resumes_under_another(
    tmp_path: Path,
) -> None:
    """PYTHONHASHSEED=1 pulls part of a set, PYTHONHASHSEED=2 resumes: each event exactly once."""
    ids = ["%040x" % (number * 7919) for number in range(1, SET_COUNT + 1)]
    out, checkpoint = tmp_path / "events.jsonl", tmp_path / "pull.ckpt"
    async with Emulator(_ORDER_CONFIG) as emulator:
        first = await _pull_a_set_in_a_child(1, emulator.url, out, checkpoint, stop=10)
        assert first["interrupted"] and 0 < first["done"] < SET_COUNT
        second = await _pull_a_set_in_a_child(2, emulator.url, out, checkpoint, stop=0)
    assert second == {"done": SET_COUNT, "not_tried": 0, "interrupted": False}
    written = [json.loads(line)["event_id"] for line in out.read_text().splitlines()]
    expected = {event["event_id"] for event in expected_events(ids, config=_ORDER_CONFIG)}
    assert len(written) == len(set(written))
    assert set(written) == expected


def test_a_set_and_its_reordering_pull_the_same_batches() -> None:
    """However a set iterates, the pull reads it in one order, so batch n means the same IDs."""
    ids = [prospect_id(n) for n in range(500)]
    shuffled = list(ids)
    random.Random(3).shuffle(shuffled)

    class OrderedSet(AbstractSet[str]):
        def __init__(self, order: list[str]) -> None:
            self._order = order

        def __contains__(self, value: object) -> bool:
            return value in self._order

        def __iter__(self) -> Iterator[str]:
            return iter(self._order)

        def __len__(self) -> int:
            return len(self._order)

    first = list(bulk_input.in_stable_order(OrderedSet(ids)))
    assert first == list(bulk_input.in_stable_order(OrderedSet(shuffled)))
    assert list(bulk_input.in_stable_order(frozenset(ids))) == first
    assert list(bulk_input.in_stable_order(dict.fromkeys(shuffled).keys())) == first
    # A list keeps its own order: a reordered list is another pull, which the fingerprint sees.
    assert bulk_input.in_stable_order(shuffled) is shuffled
