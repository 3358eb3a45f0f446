"""The emulator's clock: events appear as it moves, from Python, HTTP and `serve --start-time`."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
import sys

import aiohttp
import pytest

from explorium_events.emulator import (
    Emulator,
    EmulatorClock,
    EmulatorConfig,
    expected_events,
    expected_events_at,
    parse_duration,
)
from tests.conftest import TEST_KEY

ORIGIN = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
CONFIG = EmulatorConfig(now=ORIGIN, rate_limit=None)
IDS = [hashlib.sha1(f"clock-{n}".encode()).hexdigest() for n in range(200)]


async def post_events(url: str, ids: list[str]) -> list[dict[str, object]]:
    body = {"prospect_ids": ids, "event_types": ["prospect_changed_role",
            "prospect_changed_company", "prospect_job_start_anniversary"]}  # fmt: skip
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/v1/prospects/events", json=body, headers={"api_key": TEST_KEY}) as r,
    ):
        assert r.status == 200
        events: list[dict[str, object]] = (await r.json())["output_events"]
        return events


def test_an_unmoved_clock_serves_exactly_what_the_emulator_always_served() -> None:
    """At its origin the clock adds nothing and takes nothing away."""
    assert expected_events_at(IDS, config=CONFIG, at=ORIGIN) == expected_events(IDS, config=CONFIG)


def test_moving_the_clock_adds_events_dated_coarsely_late_and_in_the_future() -> None:
    """40 days on: new events, some dated the 1st of a month, some after now; deterministic."""
    later = ORIGIN + dt.timedelta(days=40)
    before = {event["event_id"] for event in expected_events(IDS, config=CONFIG)}
    now = expected_events_at(IDS, config=CONFIG, at=later)
    new = [event for event in now if event["event_id"] not in before]
    assert len(new) > 50
    times = [dt.datetime.fromisoformat(str(event["event_time"])) for event in new]
    assert any(moment > later for moment in times)  # anniversaries announced ahead
    assert any(moment.day == 1 and moment.hour == 0 for moment in times)  # coarse dates
    assert all(moment >= later - dt.timedelta(days=90) for moment in times)
    assert now == expected_events_at(IDS, config=CONFIG, at=later)


def test_events_fall_out_after_three_months_of_retention() -> None:
    """120 days on, nothing dated more than 90 days back is served."""
    later = ORIGIN + dt.timedelta(days=120)
    served = expected_events_at(IDS, config=CONFIG, at=later)
    oldest = min(dt.datetime.fromisoformat(str(event["event_time"])) for event in served)
    assert oldest >= later - dt.timedelta(days=90)
    old_ids = {event["event_id"] for event in expected_events(IDS, config=CONFIG)}
    assert not old_ids & {event["event_id"] for event in served}


def test_the_clock_refuses_to_go_back_before_its_origin_or_backward() -> None:
    """set() before the origin, advance() by a negative duration, and odd bodies: ValueError."""
    clock = EmulatorClock(ORIGIN)
    with pytest.raises(ValueError, match="before the clock's origin"):
        clock.set(ORIGIN - dt.timedelta(days=1))
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(dt.timedelta(days=-1))
    for body in ({"advance": 7}, {"advance": "7 days"}, {"set": "yesterday"}, [], {"x": "1d"}):
        with pytest.raises(ValueError, match=r"duration|datetime|send"):
            clock.apply(body)
    assert parse_duration("6h") == dt.timedelta(hours=6)
    assert parse_duration("2w") == dt.timedelta(days=14)


async def test_the_clock_moves_from_python_and_new_events_are_served() -> None:
    """Emulator.clock.advance(): the endpoint serves the events of that week too."""
    async with Emulator(CONFIG) as emulator:
        first = await post_events(emulator.url, IDS[:40])
        emulator.clock.advance(dt.timedelta(days=7))
        later = await post_events(emulator.url, IDS[:40])
    at = ORIGIN + dt.timedelta(days=7)
    assert later == expected_events_at(IDS[:40], config=CONFIG, at=at) != first


async def test_the_clock_endpoint_moves_it_without_a_key_and_refuses_odd_bodies() -> None:
    """POST /_emulator/clock advances or sets it with no key; a bad body is a 400 that says why."""
    async with Emulator(CONFIG) as emulator, aiohttp.ClientSession() as session:
        url = f"{emulator.url}/_emulator/clock"
        async with session.post(url, json={"advance": "7d"}) as answer:
            assert answer.status == 200
            assert (await answer.json())["now"] == "2026-07-08T00:00:00+00:00"
        async with session.post(url, json={"set": "2026-08-01T00:00:00Z"}) as answer:
            assert (await answer.json())["now"] == "2026-08-01T00:00:00+00:00"
        async with session.post(url, data=b'{"advance": "-3d"}') as answer:
            assert answer.status == 400 and "duration" in (await answer.json())["error"]
        async with session.post(url, data=b"not json") as answer:
            assert answer.status == 400
        async with session.get(url) as answer:
            state = await answer.json()
    assert state == {
        "now": "2026-08-01T00:00:00+00:00",
        "origin": "2026-07-01T00:00:00+00:00",
        "moved": True,
    }


async def test_serve_start_time_sets_the_clock_and_the_endpoint_listens_only_there() -> None:
    """`serve --start-time` starts the clock there; the clock route is on serve's address."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "explorium_events", "serve", "--port", "0",
        "--start-time", "2026-03-01T00:00:00Z",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url is not None, line
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url.group(0)}/_emulator/clock") as answer,
        ):
            state = json.loads(await answer.read())
        assert state["now"] == "2026-03-01T00:00:00+00:00" and state["moved"] is False
    finally:
        process.terminate()
        await process.wait()


async def test_business_events_stay_those_of_the_origin_when_the_clock_moves() -> None:
    """The clock moves prospects' events only: a business's are still the origin's (no sync)."""
    from explorium_events.emulator import expected_business_events

    businesses = [hashlib.md5(f"clock-{n}".encode()).hexdigest() for n in range(40)]
    expected = expected_business_events(businesses, config=CONFIG)
    body = {"business_ids": businesses, "event_types": ["new_funding_round", "new_office"]}
    wanted = [e for e in expected if e["event_name"] in body["event_types"]]
    async with Emulator(CONFIG) as emulator:
        emulator.clock.advance(dt.timedelta(days=120))
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{emulator.url}/v1/businesses/events", json=body, headers={"api_key": TEST_KEY}
            ) as answer,
        ):
            assert answer.status == 200
            served = (await answer.json())["output_events"]
    assert served == wanted and len(wanted) > 0


async def test_the_one_clock_moved_on_also_ages_the_rate_windows_told_in_wall_time() -> None:
    """A full window, then the clock moved 61 s: admitted again; X-RateLimit-Reset stays wall."""
    wall = 1_800_000_000.0
    config = EmulatorConfig(now=ORIGIN, rate_limit=1, rate_window=60.0, clock=lambda: wall)
    body = {"prospect_ids": IDS[:1], "event_types": ["prospect_changed_role"]}
    async with Emulator(config) as emu, aiohttp.ClientSession() as session:

        async def post() -> tuple[int, str]:
            async with session.post(
                f"{emu.url}/v1/prospects/events", json=body, headers={"api_key": TEST_KEY}
            ) as response:
                return response.status, response.headers["X-RateLimit-Reset"]

        assert await post() == (200, "1800000060")
        assert (await post())[0] == 429
        async with session.post(f"{emu.url}/_emulator/clock", json={"advance": "61s"}) as r:
            assert r.status == 200
        assert emu.clock.skipped == 61.0
        assert await post() == (200, "1800000060")  # the wall clock did not move
        assert (await post())[0] == 429


async def test_configure_now_restarts_the_clock_and_a_move_back_skips_no_window() -> None:
    """configure(now=...) starts the clock again there; only forward moves age the windows."""
    async with Emulator(CONFIG) as emu:
        emu.clock.advance(dt.timedelta(days=2))
        emu.clock.set(ORIGIN + dt.timedelta(days=1))  # back a day: skipped keeps 2 days
        assert emu.clock.skipped == 2 * 86_400
        later = ORIGIN + dt.timedelta(days=30)
        emu.configure(now=later)
        assert (emu.clock.origin, emu.clock.now, emu.clock.moved) == (later, later, False)
        assert emu.clock.skipped == 2 * 86_400
        # Served from the new origin: the history of the 90 days before it.
        assert await post_events(emu.url, IDS[:40]) == expected_events(IDS[:40], config=emu.config)
