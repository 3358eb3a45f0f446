"""End to end: 1,000 IDs enrolled in 50 calls, `listen` as a real process killed with -9 mid-stream,
and every event the emulator delivered stored exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path

import pytest

from explorium_events import EventsClient
from explorium_events.emulator import DeliveryOptions, Emulator, EmulatorConfig
from tests.conftest import TEST_KEY, prospect_id

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_listen(port: int, secret: Path, out: Path, log: Path) -> asyncio.subprocess.Process:
    """`explorium-events listen` as a subprocess; returns once it says it is listening."""
    stderr = log.open("ab")  # a file, not a pipe: a full pipe would stall the receiver
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "explorium_events", "listen", "--port", str(port),
        "--secret-file", str(secret), "--out", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=stderr, cwd=ROOT,
    )  # fmt: skip
    stderr.close()
    for _ in range(1000):
        if f"listening on http://127.0.0.1:{port}" in log.read_text():  # noqa: ASYNC240
            return process
        if process.returncode is not None:
            break
        await asyncio.sleep(0.01)
    raise AssertionError(f"listen did not start: {log.read_text()}")  # noqa: ASYNC240


def stored_ids(out: Path) -> list[str]:
    if out.suffix == ".db":
        with contextlib.closing(sqlite3.connect(out)) as db:
            return [row[0] for row in db.execute("SELECT event_id FROM events")]
    return [json.loads(line)["event_id"] for line in out.read_bytes().splitlines()]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", ["events.db", "events.jsonl"])
async def test_every_delivered_event_is_stored_exactly_once_across_a_kill_9(
    tmp_path: Path, name: str
) -> None:
    """Enroll 1,000 IDs (50 POSTs of 20), kill -9 the receiver mid-stream, restart it: the
    emulator redelivers, and the output holds each generated event exactly once."""
    out, secret, log = tmp_path / name, tmp_path / "wh.secret", tmp_path / "listen.log"
    port = free_port()
    async with Emulator(EmulatorConfig(rate_limit=None)) as emulator:
        async with EventsClient(api_key=TEST_KEY, base_url=emulator.url) as client:
            enrolled = await client.enrollments.add(
                [prospect_id(n) for n in range(1000)],
                key="crm-2026",
                event_types=["prospect_changed_role", "prospect_changed_company"],
            )
            assert emulator.push.enroll_calls == [20] * 50
            assert len(enrolled.enrolled_ids) == 1000 and enrolled.ok
            hook = await client.webhooks.register("ExpTest", f"http://127.0.0.1:{port}/hook")
        secret.write_text(hook.secret.reveal())
        secret.chmod(0o600)

        listen = await start_listen(port, secret, out, log)
        options = DeliveryOptions(
            events_per_prospect=2,
            duplicate_rate=0.05,
            bad_signature_rate=0.02,
            backoff_ms=20.0,
            max_backoff_ms=200.0,
            max_attempts=500,
        )
        deliveries = asyncio.create_task(emulator.deliver(options))
        while len(emulator.push.delivered) < 600:
            assert not deliveries.done()
            await asyncio.sleep(0.005)
        listen.send_signal(signal.SIGKILL)
        await listen.wait()
        at_kill = len(emulator.push.delivered)
        assert 600 <= at_kill < 2000  # mid-stream

        listen = await start_listen(port, secret, out, log)
        report = await deliveries
        listen.send_signal(signal.SIGTERM)
        assert await listen.wait() == 0  # a clean stop on SIGTERM

    generated = emulator.push.generated
    assert report.generated == len(generated) == 2000
    assert report.gave_up == 0 and set(emulator.push.delivered) == set(generated)
    assert emulator.push.redeliveries > 0  # the kill made the emulator deliver again
    assert emulator.push.duplicates_sent > 0 and emulator.push.bad_signatures_sent > 0
    ids = stored_ids(out)
    print(f"killed at {at_kill} delivered; {emulator.push.redeliveries} redeliveries, "
          f"{emulator.push.duplicates_sent} duplicates sent; {len(ids)} stored")  # fmt: skip
    assert len(ids) == len(set(ids)) == 2000
    assert set(ids) == set(generated)
    text = log.read_text()
    assert "stopped; " in text and hook.secret.reveal() not in text
    assert os.stat(secret).st_mode & 0o077 == 0


@pytest.mark.timeout(60)
async def test_a_full_disk_answers_503_and_keeps_only_whole_events(tmp_path: Path) -> None:
    """With a file-size limit (EFBIG, as a full disk) the receiver answers 503, the output
    keeps whole lines only, and each stored event is there once."""
    import resource

    out, secret, log = tmp_path / "events.jsonl", tmp_path / "wh.secret", tmp_path / "listen.log"
    port = free_port()
    async with Emulator(EmulatorConfig(rate_limit=None)) as emulator:
        async with EventsClient(api_key=TEST_KEY, base_url=emulator.url) as client:
            await client.enrollments.add([prospect_id(n) for n in range(10)], key="crm-2026")
            hook = await client.webhooks.register("ExpTest", f"http://127.0.0.1:{port}/hook")
        secret.write_text(hook.secret.reveal())

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))

        stderr = log.open("ab")
        listen = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "explorium_events", "listen", "--port", str(port),
            "--secret-file", str(secret), "--out", str(out),
            stdout=asyncio.subprocess.DEVNULL, stderr=stderr, cwd=ROOT, preexec_fn=limit,
        )  # fmt: skip
        stderr.close()
        while "listening on" not in log.read_text():
            await asyncio.sleep(0.01)
        report = await emulator.deliver(DeliveryOptions(max_attempts=2, backoff_ms=1.0))
        listen.send_signal(signal.SIGTERM)
        assert await listen.wait() == 0
    assert report.gave_up > 0 and report.delivered > 0
    raw = out.read_bytes()
    assert raw.endswith(b"\n") and len(raw) <= 4000
    ids = stored_ids(out)
    assert len(ids) == len(set(ids)) == report.delivered
    assert "answered 503" in log.read_text()


@pytest.mark.timeout(60)
async def test_enrolled_businesses_are_pushed_as_business_events_dated_by_the_clock(
    tmp_path: Path,
) -> None:
    """Businesses and prospects enrolled under one key, the emulator's clock moved a week:
    each delivery carries its entity's data (the business endpoint's for businesses) and
    the clock's time, and the receiver files each in its entity's table."""
    import datetime as dt

    from aiohttp.test_utils import TestServer

    from explorium_events._receiver import Receiver

    businesses = [f"{n:032x}" for n in range(1, 4)]
    out = tmp_path / "events.db"
    async with Emulator(EmulatorConfig(rate_limit=None)) as emulator:
        emulator.clock.advance(dt.timedelta(days=7))
        async with EventsClient(api_key=TEST_KEY, base_url=emulator.url) as client:
            await client.enrollments.add(
                businesses, key="accounts", event_types=["new_funding_round"], entity="business"
            )
            await client.enrollments.add(
                [prospect_id(1)], key="crm-2026", event_types=["prospect_changed_role"]
            )
            receiver_port = free_port()
            hook = await client.webhooks.register(
                "ExpTest", f"http://127.0.0.1:{receiver_port}/hook"
            )
        receiver = Receiver(secret=hook.secret, out=str(out))
        await receiver.open()
        server = TestServer(receiver.app(), host="127.0.0.1", port=receiver_port)
        await server.start_server()
        try:
            report = await emulator.deliver()
        finally:
            await server.close()
            await receiver.close()
        moment = emulator.clock.now
    assert (report.generated, report.delivered) == (4, 4)
    with contextlib.closing(sqlite3.connect(out)) as db:
        rows = db.execute(
            "SELECT business_id, event_name, event_time, raw_json FROM business_events"
        )
        stored = sorted(rows)
        prospects = db.execute("SELECT prospect_id FROM events").fetchall()
    assert [row[:2] for row in stored] == [(b, "new_funding_round") for b in businesses]
    assert {row[2] for row in stored} == {moment.isoformat()}
    data = json.loads(stored[0][3])["data"]
    assert data["event_name"] == "new_funding_round" and "amount_raised" in data  # endpoint data
    assert prospects == [(prospect_id(1),)]
