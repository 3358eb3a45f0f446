"""The receiver: 401/400/413 as documented, durable before 200, redeliveries dropped, restarts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from explorium_events import ConfigurationError, OutputWriteError, sign_webhook
from explorium_events._receiver import Receiver, serve_receiver

SECRET = base64.urlsafe_b64encode(b"r" * 32).decode().rstrip("=")


def delivery(event_id: str, **extra: Any) -> bytes:
    return json.dumps(
        {
            "tenant_id": "con_x",
            "partner_id": "ExpTest",
            "event_id": event_id,
            "event_name": "prospect_changed_role",
            "entity_id": "b" * 40,
            "entity_type": "prospect",
            "data": {"event_name": "prospect_changed_role", "current_job_title": "CTO"},
            "enrollment_key": "crm-2026",
            **extra,
        }
    ).encode()


def signed(body: bytes, *, at: int | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    return {
        "Content-Type": "application/json",
        "X-Timestamp": str(stamp),
        "X-Signature": sign_webhook(body, stamp, secret),
    }


class Running:
    """A receiver served on loopback, with a session to post to it."""

    def __init__(self, receiver: Receiver, server: TestServer, http: aiohttp.ClientSession):
        self.receiver = receiver
        self.url = str(server.make_url("/hook"))
        self.base = str(server.make_url(""))
        self.http = http

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        async with self.http.post(self.url, data=body, headers=headers) as response:
            return response.status, await response.json()


async def running(out: Path, **settings: Any) -> AsyncIterator[Running]:
    receiver = Receiver(secret=SECRET, out=str(out), **settings)
    await receiver.open()
    server = TestServer(receiver.app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield Running(receiver, server, http)
    finally:
        await server.close()
        await receiver.close()


@pytest.fixture(params=["events.db", "events.jsonl"])
def out(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return tmp_path / str(request.param)


def stored_ids(out: Path) -> list[str]:
    """The event_id of every stored row or line, repeats included."""
    if out.suffix == ".db":
        with contextlib.closing(sqlite3.connect(out)) as db:
            return [row[0] for row in db.execute("SELECT event_id FROM events")]
    return [json.loads(line)["event_id"] for line in out.read_bytes().splitlines()]


async def test_a_genuine_delivery_is_stored_once_and_a_redelivery_dropped(out: Path) -> None:
    """200 "stored", then 200 "duplicate" for the same event_id: one row, the raw body kept."""
    body = delivery("ev-1")
    async for server in running(out):
        assert await server.post(body, signed(body)) == (
            200,
            {"status": "stored", "event_id": "ev-1"},
        )
        status, answer = await server.post(body, signed(body))
        assert (status, answer["status"]) == (200, "duplicate")
    assert stored_ids(out) == ["ev-1"]
    if out.suffix == ".jsonl":
        assert out.read_bytes() == body + b"\n"  # noqa: ASYNC240 - a test's own check


async def test_stored_before_the_answer(out: Path) -> None:
    """When the 200 arrives the event is already readable from another connection."""
    body = delivery("ev-durable")
    async for server in running(out):
        status, _ = await server.post(body, signed(body))
        assert status == 200
        assert stored_ids(out) == ["ev-durable"]  # before the receiver closes


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("bad signature", 401),
        ("stale", 401),
        ("future", 401),
        ("no signature", 401),
        ("not an event", 400),
    ],
)
async def test_refusals_answer_their_status_and_store_nothing(
    out: Path, case: str, status: int
) -> None:
    """401 for a forged, stale, future or unsigned delivery; 400 for a signed non-event."""
    body = delivery("ev-x")
    headers = {
        "bad signature": signed(body, secret=SECRET[::-1]),
        "stale": signed(body, at=int(time.time()) - 3600),
        "future": signed(body, at=int(time.time()) + 3600),
        "no signature": {"X-Timestamp": str(int(time.time()))},
        "not an event": signed(b"hello"),
    }[case]
    async for server in running(out):
        answer, _ = await server.post(b"hello" if case == "not an event" else body, headers)
        assert answer == status
    assert not out.exists() or stored_ids(out) == []  # noqa: ASYNC240


async def test_a_body_over_the_limit_is_refused_with_413(out: Path) -> None:
    """By Content-Length, and for a chunked body without one, as it streams."""
    big = delivery("ev-big", padding="x" * 5000)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    async for server in running(out, max_body=4096):
        status, _ = await server.post(big, signed(big))
        assert status == 413
        async with server.http.post(server.url, data=chunks(), headers=signed(big)) as response:
            assert response.status == 413
        assert server.receiver.counts.too_large == 2


async def test_a_restart_still_drops_redeliveries(out: Path) -> None:
    """The seen-set is rebuilt from the output: after a restart the same event is a duplicate."""
    body = delivery("ev-restart")
    async for server in running(out):
        await server.post(body, signed(body))
    async for server in running(out):
        assert server.receiver.counts.known_at_start == 1
        status, answer = await server.post(body, signed(body))
        assert (status, answer["status"]) == (200, "duplicate")
    assert stored_ids(out) == ["ev-restart"]


async def test_a_jsonl_line_cut_by_a_kill_is_removed_at_start(tmp_path: Path) -> None:
    """A half-written last line (never acknowledged) is cut off, then stored whole on redelivery."""
    out = tmp_path / "events.jsonl"
    whole, torn = delivery("ev-whole"), delivery("ev-torn")
    out.write_bytes(whole + b"\n" + torn[:30])
    async for server in running(out):
        status, answer = await server.post(torn, signed(torn))
        assert (status, answer["status"]) == (200, "stored")
    assert stored_ids(out) == ["ev-whole", "ev-torn"]


async def test_a_failed_write_answers_503_and_the_redelivery_is_stored_once(
    tmp_path: Path,
) -> None:
    """The sender is told to try again; nothing half-written stays behind."""
    out = tmp_path / "events.jsonl"
    body = delivery("ev-retry")
    async for server in running(out):
        sink: Any = server.receiver._sinks["prospect"]
        real = sink.flush_durably

        def fail() -> None:
            raise OutputWriteError(str(out), OSError(28, "No space left on device"))

        sink.flush_durably = fail
        status, _ = await server.post(body, signed(body))
        assert status == 503
        sink.flush_durably = real
        status, answer = await server.post(body, signed(body))
        assert (status, answer["status"]) == (200, "stored")
    assert stored_ids(out) == ["ev-retry"]


def business_delivery(event_id: str) -> bytes:
    return delivery(
        event_id,
        event_name="new_office",
        entity_id="d" * 32,
        entity_type="business",
        data={"event_name": "new_office", "title": "A new office in Lisbon"},
    )


async def test_business_deliveries_go_to_the_business_table_with_their_business_id(
    tmp_path: Path,
) -> None:
    """SQLite: a prospect's delivery is a row of events, a business's one of business_events
    (business_id set), as fetch writes them; a restart still drops the business redelivery."""
    out = tmp_path / "events.db"
    prospect, business = delivery("ev-p"), business_delivery("ev-b")
    async for server in running(out):
        for body in (prospect, business):
            status, answer = await server.post(body, signed(body))
            assert (status, answer["status"]) == (200, "stored")
    with contextlib.closing(sqlite3.connect(out)) as db:
        assert [row[0] for row in db.execute("SELECT event_id FROM events")] == ["ev-p"]
        rows = db.execute("SELECT event_id, business_id, event_name, raw_json FROM business_events")
        assert [row[:3] for row in rows] == [("ev-b", "d" * 32, "new_office")]
        assert db.execute("SELECT raw_json FROM business_events").fetchone()[0] == business.decode()
    async for server in running(out):
        status, answer = await server.post(business, signed(business))
        assert (status, answer["status"]) == (200, "duplicate")
        assert server.receiver.counts.known_at_start == 2


async def test_a_prospect_only_database_gets_no_business_table(tmp_path: Path) -> None:
    """The business table is made on the first business delivery, not before."""
    out = tmp_path / "events.db"
    body = delivery("ev-only")
    async for server in running(out):
        await server.post(body, signed(body))
    with contextlib.closing(sqlite3.connect(out)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "events" in tables and "business_events" not in tables


async def test_jsonl_keeps_both_entities_in_one_file(tmp_path: Path) -> None:
    """JSONL: prospect and business deliveries are lines of the one file, as received."""
    out = tmp_path / "events.jsonl"
    prospect, business = delivery("ev-p"), business_delivery("ev-b")
    async for server in running(out):
        for body in (prospect, business):
            await server.post(body, signed(body))
    assert out.read_bytes() == prospect + b"\n" + business + b"\n"


async def test_health_answers_the_counters(out: Path) -> None:
    """GET /health: status ok and what was stored, refused and dropped."""
    body = delivery("ev-h")
    async for server in running(out):
        await server.post(body, signed(body))
        await server.post(body, signed(body, secret=SECRET[::-1]))
        async with server.http.get(server.base.rstrip("/") + "/health") as response:
            health = await response.json()
    assert health["status"] == "ok"
    assert (health["stored"], health["unauthorized"]) == (1, 1)
    assert SECRET not in json.dumps(health)


def test_csv_and_an_unusable_secret_are_refused(tmp_path: Path) -> None:
    """listen writes JSONL or SQLite only; a secret that is not base64 fails at start."""
    with pytest.raises(ConfigurationError, match="jsonl or sqlite"):
        Receiver(secret=SECRET, out=str(tmp_path / "events.csv"))
    with pytest.raises(ConfigurationError, match="not URL-safe base64"):
        Receiver(secret="not base64!", out=str(tmp_path / "events.db"))
    assert SECRET not in repr(Receiver(secret=SECRET, out=str(tmp_path / "e.db")))


@pytest.mark.parametrize("sent", [0, 10], ids=["no body", "10 bytes of it"])
async def test_a_body_that_never_arrives_is_answered_408_and_frees_the_handler(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sent: int
) -> None:
    """Headers with a Content-Length and then silence: 408 once read_timeout passes, one
    log line without the signature, nothing stored, and the next delivery still stored."""
    out = tmp_path / "events.jsonl"
    body = delivery("ev-slow")
    headers = signed(body)
    async for server in running(out, read_timeout=0.05):
        host, port = server.base.removeprefix("http://").rstrip("/").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            writer.write(
                f"POST /hook HTTP/1.1\r\nHost: {host}\r\n{head}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:sent]  # then nothing more
            )
            await writer.drain()
            # The bound only keeps a broken receiver from hanging the suite.
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"connection: close" in answer.lower()
        assert server.receiver.counts.timed_out == 1
        assert (await server.post(body, signed(body)))[0] == 200
    refused = [r.getMessage() for r in caplog.records if "(408)" in r.getMessage()]
    assert len(refused) == 1, refused
    assert "after 0.05s" in refused[0]
    assert headers["X-Signature"] not in caplog.text
    assert SECRET not in caplog.text
    assert stored_ids(out) == ["ev-slow"]


class _Heard(logging.Handler):
    """Sets ``event`` once a record whose message holds any of ``words`` is logged."""

    def __init__(self, *words: str) -> None:
        super().__init__()
        self.words = words
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if any(word in record.getMessage() for word in self.words):
            self.event.set()


async def test_a_client_gone_mid_body_is_one_log_line_not_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Served as `listen` serves it, a client that closes its connection halfway through a
    body leaves one warning, not aiohttp's "Error handling request" traceback."""
    out = tmp_path / "events.jsonl"
    body = delivery("ev-cut")
    receiver = Receiver(secret=SECRET, out=str(out))
    stop, ready = asyncio.Event(), asyncio.get_running_loop().create_future()
    serving = asyncio.create_task(
        serve_receiver(receiver, port=0, stop=stop, on_ready=ready.set_result)
    )
    heard = _Heard("cut off before its body", "Error handling request")
    logging.getLogger().addHandler(heard)
    try:
        host, port = (await ready).removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST /hook HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(heard.event.wait(), 10)  # bound: a broken receiver
    finally:
        logging.getLogger().removeHandler(heard)
        stop.set()
        await serving
    assert "a delivery from 127.0.0.1 was cut off before its body was all in" in caplog.text
    assert not [record for record in caplog.records if record.exc_info], caplog.text


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), 1e-300, 0.0009])
def test_a_read_timeout_that_cannot_work_is_refused(tmp_path: Path, value: float) -> None:
    """read_timeout must be a finite number of seconds, a millisecond or more, named."""
    with pytest.raises(ConfigurationError, match=r"read_timeout=.*finite number of seconds"):
        Receiver(secret=SECRET, out=str(tmp_path / "events.db"), read_timeout=value)
