"""Signed delivery, emulated: a round of new events for every enrollment, POSTed with faults.

``deliver()`` (also ``POST /_emulator/webhooks/deliver``, served by ``_webhooks``): every
enrolled entity of every key with a webhook gets ``events_per_prospect`` new,
deterministic events (their data made as the events endpoints make it: ``_data`` for
prospects, ``_business`` for businesses; dated by the emulator's clock once it was
moved, else the wall clock), each POSTed to the key's webhook, signed as documented
(HMAC-SHA256 over ``"{X-Timestamp}.{body}"`` with the URL-safe-base64-decoded secret, in
``X-Signature``; X-Timestamp is always the wall clock, which receivers check), retried
with exponential backoff until a 2xx or ``max_attempts``. Faults on demand: a first
attempt signed with the wrong key (``bad_signature_rate``), an acknowledged event sent
again (``duplicate_rate``), a delay before each send (``delay_ms``). Deliveries go to
loopback URLs only: the emulator never POSTs to another machine.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import ipaddress
import random

import aiohttp
import msgspec
from aiohttp import web
from yarl import URL

from ._business import BUSINESS_EVENT_TYPES, _business_data
from ._data import _event_data
from ._enrollments import PUSH_KEY, PushState, StoredWebhook
from ._validation import EVENT_TYPES as PROSPECT_EVENT_TYPES

__all__ = [
    "TENANT_ID",
    "Delivery",
    "DeliveryOptions",
    "DeliveryReport",
    "deliver",
    "hex_id",
    "is_loopback",
    "iso",
    "payload",
    "send",
    "signature",
]

TENANT_ID = "con_emulator0000000"
_encode = msgspec.json.Encoder().encode


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryOptions:
    """How one round of deliveries goes: how many events, which faults, how it retries."""

    events_per_prospect: int = 1
    duplicate_rate: float = 0.0
    bad_signature_rate: float = 0.0
    delay_ms: float = 0.0
    max_attempts: int = 40
    backoff_ms: float = 50.0
    max_backoff_ms: float = 1000.0
    concurrency: int = 4
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.events_per_prospect <= 100:
            raise ValueError("events_per_prospect must be from 1 to 100")
        for name in ("duplicate_rate", "bad_signature_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1]")
        if self.max_attempts < 1 or self.concurrency < 1:
            raise ValueError("max_attempts and concurrency must be at least 1")
        for name in ("delay_ms", "backoff_ms", "max_backoff_ms", "timeout"):
            if not 0.0 <= getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0")


@dataclasses.dataclass(kw_only=True, slots=True)
class DeliveryReport:
    """What one round did: events made, acknowledged, given up, and sends in all."""

    generated: int = 0
    delivered: int = 0
    gave_up: int = 0
    attempts: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    event_id: str
    url: str
    secret: str
    body: bytes
    bad_signature: bool
    duplicate: bool


def signature(secret: str, stamp: str, body: bytes) -> str:
    """The X-Signature of ``body`` sent at ``stamp``, computed as the docs' example does."""
    key = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    digest = hmac.new(key, stamp.encode() + b"." + body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()


def is_loopback(url: str) -> bool:
    try:
        host = URL(url).host or ""
    except ValueError:
        return False
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def hex_id(seed: int, *parts: object, size: int = 16) -> str:
    text = "|".join(str(part) for part in (seed, *parts))
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).isoformat()


def event_moment(push: PushState) -> float:
    """When a pushed event happens: the emulator's clock once it was moved, else now."""
    clock = push.events_clock
    return clock.now_us / 1_000_000 if clock.moved else push.clock()


def payload(
    push: PushState, *, webhook: StoredWebhook, event_id: str, name: str, entity_id: str,
    entity_type: str, key: str, index: int,
) -> bytes:  # fmt: skip
    """The JSON body of one delivery, its data made as the events endpoints make it."""
    when = iso(event_moment(push))
    if name in PROSPECT_EVENT_TYPES:
        data = _event_data(push.seed, entity_id, name, index, when)
    elif name in BUSINESS_EVENT_TYPES:
        data = _business_data(push.seed, entity_id, name, index, when)
    else:  # a simulated name of the connectivity check ("award", "funding_round")
        data = {"event_name": name, "event_time": when, "title": f"{name} (emulated)",
                "link": f"https://example.com/news/{event_id}"}  # fmt: skip
    return _encode(
        {
            "tenant_id": TENANT_ID,
            "partner_id": webhook.partner_id,
            "event_id": event_id,
            "event_name": name,
            "entity_id": entity_id,
            "entity_type": entity_type,
            "data": data,
            "enrollment_key": key,
        }
    )


def _round(push: PushState, options: DeliveryOptions) -> list[Delivery]:
    """The new events of every enrolled entity, one delivery each, with their faults drawn."""
    push.rounds += 1
    rng = random.Random(f"{push.seed}|faults|{push.rounds}")
    deliveries: list[Delivery] = []
    for stored in list(push.enrollments.values()):
        for webhook in list(push.webhooks.values()):
            if webhook.owner != stored.owner:
                continue
            if not is_loopback(webhook.url):
                push.stats.refused_urls += 1
                continue
            for entity_id in stored.ids:
                for index in range(options.events_per_prospect):
                    parts = (push.rounds, stored.enrollment_id, entity_id, index)
                    event_id = hex_id(push.seed, "push", *parts)
                    pick = int(hex_id(push.seed, "type", *parts), 16) % len(stored.event_types)
                    body = payload(
                        push,
                        webhook=webhook,
                        event_id=event_id,
                        name=stored.event_types[pick],
                        entity_id=entity_id,
                        entity_type=stored.entity,
                        key=stored.enrollment_key,
                        index=1000 * push.rounds + index,
                    )
                    push.stats.generated.append(event_id)
                    deliveries.append(
                        Delivery(
                            event_id=event_id,
                            url=webhook.url,
                            secret=webhook.secret,
                            body=body,
                            bad_signature=rng.random() < options.bad_signature_rate,
                            duplicate=rng.random() < options.duplicate_rate,
                        )
                    )
    return deliveries


async def send(
    session: aiohttp.ClientSession, push: PushState, delivery: Delivery, *, bad: bool,
    seconds: float,
) -> int | None:  # fmt: skip
    """One signed POST; its status, or None when no answer came."""
    stamp = str(int(push.clock()))
    secret = delivery.secret[::-1] if bad else delivery.secret
    headers = {
        "Content-Type": "application/json",
        "X-Timestamp": stamp,
        "X-Signature": signature(secret, stamp, delivery.body),
    }
    push.stats.attempts += 1
    try:
        async with session.post(
            delivery.url,
            data=delivery.body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


async def _deliver_one(
    session: aiohttp.ClientSession, push: PushState, delivery: Delivery, options: DeliveryOptions,
    report: DeliveryReport,
) -> None:  # fmt: skip
    for attempt in range(1, options.max_attempts + 1):
        if options.delay_ms:
            await asyncio.sleep(options.delay_ms / 1000)
        bad = delivery.bad_signature and attempt == 1
        push.stats.bad_signatures_sent += bad
        push.stats.redeliveries += attempt > 1
        report.attempts += 1
        status = await send(session, push, delivery, bad=bad, seconds=options.timeout)
        if status is not None and 200 <= status < 300:
            push.stats.delivered[delivery.event_id] = 1
            report.delivered += 1
            if delivery.duplicate:
                push.stats.duplicates_sent += 1
                again = await send(session, push, delivery, bad=False, seconds=options.timeout)
                if again is not None and 200 <= again < 300:
                    push.stats.delivered[delivery.event_id] += 1
            return
        if attempt < options.max_attempts:
            wait = min(options.max_backoff_ms, options.backoff_ms * 2 ** (attempt - 1))
            await asyncio.sleep(wait / 1000)
    push.stats.gave_up.append(delivery.event_id)
    report.gave_up += 1


async def deliver(app: web.Application, options: DeliveryOptions | None = None) -> DeliveryReport:
    """Make one round of new events for every enrollment and deliver them; returns when done.

    Done means every event was acknowledged (2xx) or given up after ``max_attempts``.
    """
    options = options or DeliveryOptions()
    push = app[PUSH_KEY]
    deliveries = _round(push, options)
    report = DeliveryReport(generated=len(deliveries))
    queue: asyncio.Queue[Delivery] = asyncio.Queue()
    for delivery in deliveries:
        queue.put_nowait(delivery)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            await _deliver_one(session, push, queue.get_nowait(), options, report)

    connector = aiohttp.TCPConnector(limit=options.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(options.concurrency, max(1, len(deliveries)))):
                group.create_task(worker(session))
    return report
