"""The webhook receiver: verify each delivery, store it durably, and only then answer 2xx.

An aiohttp.web app (what ``explorium-events listen`` serves). For every POST, on any path:

1. a body over ``max_body`` bytes (default 1 MiB; deliveries are a few KB) is refused
   with 413: by its Content-Length first, then by a read that stops one byte past it;
   a body not all in within ``read_timeout`` seconds (default 30) is answered 408, so a
   client that sends its headers and then the body slowly, or never, holds no handler;
2. ``verify_webhook``: 401 for a missing or malformed header, a stale or future
   timestamp, or a signature that does not match; 400 for a signed body that is not a
   delivery;
3. a delivery whose ``event_id`` was stored before is answered 200 and dropped;
4. otherwise it is written through the sinks (JSONL: written, flushed and fsynced;
   SQLite: upserted and committed) and then answered 200. A write that fails is
   answered 503, so that the sender delivers it again later.

Deliveries are routed by their ``entity_type``, as ``fetch`` writes each entity: in
SQLite a prospect's event goes to the ``events`` table and a business's to
``business_events`` (with ``business_id``; made on the first business delivery); in
JSONL both are lines of the one file, each the delivery's JSON as received.

The seen-set of event_ids is rebuilt from the output itself when the receiver starts,
so a restart (even after kill -9) still drops redeliveries: the output is the truth, and
nothing acknowledged can be missing from it. A JSONL line cut short by a kill is cut off
first (it was never acknowledged; the sender delivers it again). ``GET /health``
answers the counters. The sink's blocking work runs on one thread of its own (SQLite
connections belong to one thread), so deliveries are stored one at a time, in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from ._checks import MILLISECOND, check_seconds
from ._digests import DigestSet
from ._errors import ConfigurationError, OutputWriteError, WebhookVerificationError
from ._push_models import AnyWebhookEvent, WebhookBusinessEvent, WebhookSecret
from ._sinks import TABLES, BuiltinSink, format_for, open_sink
from ._verify import DEFAULT_TOLERANCE, signing_key, verify_webhook

logger = logging.getLogger("explorium_events")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8788
DEFAULT_MAX_BODY = 1024 * 1024
# A delivery is a few KB: on any link a sender would use it is all in within a second, so
# 30 s spares slow links and still frees a handler held by a client that stalls.
DEFAULT_READ_TIMEOUT = 30.0
RECEIVER_FORMATS = ("jsonl", "sqlite")
HEALTH_PATH = "/health"
_CHUNK = 64 * 1024
_encode = msgspec.json.Encoder().encode


class _EventId(msgspec.Struct):
    event_id: str = ""


_decode_event_id = msgspec.json.Decoder(_EventId)


def _digest(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass(slots=True)
class ReceiverCounts:
    """What the receiver did since it started."""

    stored: int = 0
    duplicates: int = 0
    unauthorized: int = 0
    bad_request: int = 0
    too_large: int = 0
    timed_out: int = 0
    failed_writes: int = 0
    known_at_start: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def _seen_in_jsonl(path: str, seen: DigestSet) -> None:
    """Add the event_id of every line of ``path``; cut off a last line left unfinished."""
    try:
        handle = open(path, "r+b")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(0)
        end = 0
        for line in handle:
            if not line.endswith(b"\n"):
                break  # written partly when the receiver was killed: never acknowledged
            end += len(line)
            if line.strip():
                try:
                    seen.add(_digest(_decode_event_id.decode(line).event_id))
                except msgspec.DecodeError:
                    logger.warning("%s: a line at byte %d is not an event; kept", path, end)
        if end < size:
            logger.warning(
                "%s: cutting off %d bytes of a delivery that was never acknowledged",
                path,
                size - end,
            )
            handle.truncate(end)
            os.fsync(handle.fileno())


def _seen_in_sqlite(path: str, seen: DigestSet) -> None:
    if not os.path.exists(path):
        return
    db = sqlite3.connect(path)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        for table in TABLES.values():  # events, business_events
            if table.sql_table in tables:
                for (event_id,) in db.execute(f"SELECT event_id FROM {table.sql_table}"):
                    seen.add(_digest(str(event_id)))
    except sqlite3.DatabaseError as exc:
        raise ConfigurationError(f"the SQLite output {path} cannot be read: {exc}") from exc
    finally:
        db.close()


class Receiver:
    """Verifies and stores webhook deliveries; ``app()`` is the aiohttp application.

    ``out`` is a JSONL or SQLite file (``fmt``, else from its extension), the same
    sinks ``fetch`` writes. ``clock`` gives Unix seconds for the freshness check.
    ``read_timeout``: seconds from a delivery's headers to the end of its body, else 408.
    Call ``open()`` before serving and ``close()`` after.
    """

    def __init__(
        self,
        *,
        secret: str | WebhookSecret,
        out: str,
        fmt: str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        max_body: int = DEFAULT_MAX_BODY,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret if isinstance(secret, WebhookSecret) else WebhookSecret(secret)
        signing_key(self._secret)  # an unusable secret fails now, not on each delivery
        self.format = format_for(out, fmt)
        if self.format not in RECEIVER_FORMATS:
            raise ConfigurationError(
                f"listen writes {' or '.join(RECEIVER_FORMATS)}, not {self.format}: a delivery "
                "must be stored durably, one by one, and found again after a restart"
            )
        if not (isinstance(max_body, int) and max_body > 0):
            raise ConfigurationError(f"max_body={max_body!r}: must be a positive number of bytes")
        # An infinite deadline is the held handler this setting exists to prevent.
        # (A shorter one than a millisecond, as for --read-timeout, refuses every body.)
        self._read_timeout = check_seconds(
            "read_timeout", read_timeout, zero_ok=False, at_least=MILLISECOND
        )
        self.out = out
        self._tolerance = tolerance
        self._max_body = max_body
        self._clock = clock
        self.counts = ReceiverCounts()
        self._seen = DigestSet(16)
        # By entity name: "prospect" opened by open(), "business" on its first delivery
        # (SQLite: its own table); JSONL holds both in one file, one sink.
        self._sinks: dict[str, BuiltinSink] = {}
        # One thread for all the sink's work: SQLite connections belong to their thread.
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="receiver")

    def __repr__(self) -> str:
        return f"<Receiver out={self.out!r} stored={self.counts.stored} secret=****>"

    async def open(self) -> None:
        """Read the event_ids the output holds, then open it for appending."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._open)

    def _open(self) -> None:
        if self.format == "jsonl":
            _seen_in_jsonl(self.out, self._seen)
        else:
            _seen_in_sqlite(self.out, self._seen)
        self.counts.known_at_start = len(self._seen)
        self._sinks["prospect"] = open_sink(self.out, self.format, append=True)

    def _sink_for(self, entity: str) -> BuiltinSink:
        """The sink of ``entity``'s events, opened on first use (on the receiver's thread)."""
        sink = self._sinks.get(entity)
        if sink is None:
            assert "prospect" in self._sinks, "open() the receiver first"
            if self.format == "jsonl":
                sink = self._sinks["prospect"]
            else:
                try:
                    sink = open_sink(self.out, self.format, append=True, entity=entity)
                except ConfigurationError as exc:
                    raise OutputWriteError(self.out, exc) from exc
            self._sinks[entity] = sink
        return sink

    def _close_sinks(self) -> None:
        sinks, self._sinks = list({id(s): s for s in self._sinks.values()}.values()), {}
        problem: OutputWriteError | None = None
        for sink in sinks:
            try:
                sink.close()
            except OutputWriteError as error:
                problem = problem or error
        if problem is not None:
            raise problem

    async def close(self) -> None:
        """Flush and close the output. Idempotent."""
        if self._sinks:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_sinks)
        self._thread.shutdown(wait=True)

    def _store(self, event: AnyWebhookEvent) -> bool:
        """Write and make durable, unless already stored; True when written now."""
        digest = _digest(event.event_id)
        if digest in self._seen:
            return False
        business = isinstance(event, WebhookBusinessEvent)
        sink = self._sink_for("business" if business else "prospect")
        try:
            sink.write([event])
            sink.flush_durably()
        except OutputWriteError:
            # What was written but not made durable goes, so that the redelivery this
            # 503 asks for is not stored twice.
            discard = getattr(sink, "discard_undurable", None)
            if discard is not None:
                discard()
            raise
        self._seen.add(digest)
        return True

    def app(self) -> web.Application:
        """The aiohttp application: POST any path is a delivery; GET /health the counters."""
        app = web.Application(client_max_size=self._max_body)
        app.router.add_get(HEALTH_PATH, self._health)
        app.router.add_post("/{tail:.*}", self._deliver)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return _json(
            200, {"status": "ok", "out": os.path.basename(self.out), **self.counts.as_dict()}
        )

    async def _read(self, request: web.Request) -> bytes | None:
        """The body, or None when it is over the limit (by its length, or as it streams)."""
        length = request.content_length
        if length is not None and length > self._max_body:
            return None
        body = bytearray()
        while chunk := await request.content.read(_CHUNK):
            body += chunk
            if len(body) > self._max_body:
                return None
        return bytes(body)

    async def _deliver(self, request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(self._read_timeout):
                body = await self._read(request)
        except TimeoutError:
            self.counts.timed_out += 1
            # The headers may carry the signature: the log names only who and how long.
            logger.warning(
                "refused a delivery from %s whose body was not all in after %gs (408)",
                request.remote,
                self._read_timeout,
            )
            response = _json(408, {"error": f"body not received within {self._read_timeout:g}s"})
            response.force_close()
            return response
        except ConnectionResetError:
            # The client went away mid-body: nobody to answer, and no traceback for the log.
            logger.warning(
                "a delivery from %s was cut off before its body was all in", request.remote
            )
            raise web.HTTPBadRequest() from None
        if body is None:
            self.counts.too_large += 1
            logger.warning("refused a delivery over %d bytes (413)", self._max_body)
            return _json(413, {"error": f"body over {self._max_body} bytes"})
        try:
            event = verify_webhook(
                body, request.headers, self._secret, tolerance=self._tolerance, now=self._clock()
            )
        except WebhookVerificationError as error:
            if error.status == 401:
                self.counts.unauthorized += 1
            else:
                self.counts.bad_request += 1
            logger.warning("refused a delivery (%d): %s", error.status, error)
            return _json(error.status, {"error": type(error).__name__, "message": str(error)})
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(self._thread, self._store, event)
        except OutputWriteError as error:
            self.counts.failed_writes += 1
            logger.error("event %s not stored, answered 503: %s", event.event_id, error)
            return _json(503, {"error": "not stored; deliver again later"})
        if stored:
            self.counts.stored += 1
            logger.info("stored %s %s (%s)", event.event_name, event.event_id, event.entity_id)
        else:
            self.counts.duplicates += 1
            logger.info("dropped a redelivery of %s", event.event_id)
        status = "stored" if stored else "duplicate"
        return _json(200, {"status": status, "event_id": event.event_id})


def _json(status: int, payload: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=_encode(payload), content_type="application/json")


async def serve_receiver(
    receiver: Receiver,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    stop: asyncio.Event,
    on_ready: Callable[[str], object] | None = None,
    shutdown_timeout: float = 10.0,
) -> None:
    """Serve ``receiver`` until ``stop`` is set; then finish the deliveries in flight and close.

    ``on_ready`` gets the base URL once the port is bound (useful with ``port=0``).
    """
    await receiver.open()
    runner = web.AppRunner(receiver.app(), shutdown_timeout=shutdown_timeout, access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        if on_ready is not None:
            on_ready(f"http://{shown}:{bound_port}")
        await stop.wait()
    finally:
        await runner.cleanup()
        await receiver.close()
