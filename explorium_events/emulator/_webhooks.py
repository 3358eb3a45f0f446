"""Webhooks, emulated: register, get, delete, check connectivity, and signed delivery with faults.

Routes: ``POST /v1/webhooks``, ``GET``/``DELETE /v1/webhooks/{partner_id}``, ``POST
/v1/webhooks/check_connectivity`` (validated like the spec), and the trigger ``POST
/_emulator/webhooks/deliver`` (also ``deliver()`` from Python): every enrolled entity of
the caller gets ``events_per_prospect`` new, deterministic events, each POSTed to the
caller's webhook, signed as documented (HMAC-SHA256 over ``"{X-Timestamp}.{body}"`` with
the URL-safe-base64-decoded secret, in ``X-Signature``), retried with exponential backoff
until a 2xx or ``max_attempts``. Faults on demand: a first attempt signed with the wrong
key (``bad_signature_rate``), an acknowledged event sent again (``duplicate_rate``), a
delay before each send (``delay_ms``). Deliveries go to loopback URLs only: the emulator
never POSTs to another machine. Secrets are issued unpadded, as the spec leaves open.
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
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
from aiohttp import web
from yarl import URL

from ._data import _event_data
from ._enrollments import (
    PUSH_KEY,
    PushState,
    StoredWebhook,
    check_string,
    context,
    counted,
    json_response,
    not_found,
    owner_of,
    parse_object,
    unprocessable,
)
from ._validation import EVENT_TYPES as PROSPECT_EVENT_TYPES
from ._validation import ValidationDetail

__all__ = ["DELIVER_PATH", "DeliveryOptions", "DeliveryReport", "add_webhook_routes", "deliver"]

DELIVER_PATH = "/_emulator/webhooks/deliver"
PUSH_STATS_PATH = "/_emulator/push"
TENANT_ID = "con_emulator0000000"
SIMULATION_TYPES = frozenset(
    {
        "award", "funding_round", "prospect_changed_company", "prospect_changed_role",
        "prospect_job_start_anniversary", "ipo_announcement", "new_funding_round",
        "new_investment", "new_product", "new_office", "closing_office", "new_partnership",
        "merger_and_acquisitions", "employee_joined_company", "company_award",
        "outages_and_security_breaches", "cost_cutting", "lawsuits_and_legal_issues",
        *(f"hiring_in_{name}_department" for name in (
            "creative", "education", "engineering", "finance", "health", "human_resources",
            "legal", "marketing", "operations", "professional_service", "sales", "support",
            "trade", "unknown",
        )),
        *(f"{way}_in_{name}" for way in ("increase", "decrease") for name in (
            "engineering_department", "sales_department", "marketing_department",
            "operations_department", "customer_service_department", "all_departments",
        )),
    }
)  # fmt: skip
_DATE_TIME = r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
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
class _Delivery:
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


def _is_loopback(url: str) -> bool:
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


def _hex(seed: int, *parts: object, size: int = 16) -> str:
    text = "|".join(str(part) for part in (seed, *parts))
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).isoformat()


def _payload(
    push: PushState, *, webhook: StoredWebhook, event_id: str, name: str, entity_id: str,
    entity_type: str, key: str, index: int,
) -> bytes:  # fmt: skip
    when = _iso(push.clock())
    if name in PROSPECT_EVENT_TYPES:
        data = _event_data(push.seed, entity_id, name, index, when)
    else:
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


def _round(push: PushState, options: DeliveryOptions) -> list[_Delivery]:
    """The new events of every enrolled entity, one delivery each, with their faults drawn."""
    push.rounds += 1
    rng = random.Random(f"{push.seed}|faults|{push.rounds}")
    deliveries: list[_Delivery] = []
    for stored in list(push.enrollments.values()):
        for webhook in list(push.webhooks.values()):
            if webhook.owner != stored.owner:
                continue
            if not _is_loopback(webhook.url):
                push.stats.refused_urls += 1
                continue
            for entity_id in stored.ids:
                for index in range(options.events_per_prospect):
                    parts = (push.rounds, stored.enrollment_id, entity_id, index)
                    event_id = _hex(push.seed, "push", *parts)
                    pick = int(_hex(push.seed, "type", *parts), 16) % len(stored.event_types)
                    body = _payload(
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
                        _Delivery(
                            event_id=event_id,
                            url=webhook.url,
                            secret=webhook.secret,
                            body=body,
                            bad_signature=rng.random() < options.bad_signature_rate,
                            duplicate=rng.random() < options.duplicate_rate,
                        )
                    )
    return deliveries


async def _send(
    session: aiohttp.ClientSession, push: PushState, delivery: _Delivery, *, bad: bool,
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
    session: aiohttp.ClientSession, push: PushState, delivery: _Delivery, options: DeliveryOptions,
    report: DeliveryReport,
) -> None:  # fmt: skip
    for attempt in range(1, options.max_attempts + 1):
        if options.delay_ms:
            await asyncio.sleep(options.delay_ms / 1000)
        bad = delivery.bad_signature and attempt == 1
        push.stats.bad_signatures_sent += bad
        push.stats.redeliveries += attempt > 1
        report.attempts += 1
        status = await _send(session, push, delivery, bad=bad, seconds=options.timeout)
        if status is not None and 200 <= status < 300:
            push.stats.delivered[delivery.event_id] = 1
            report.delivered += 1
            if delivery.duplicate:
                push.stats.duplicates_sent += 1
                again = await _send(session, push, delivery, bad=False, seconds=options.timeout)
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
    queue: asyncio.Queue[_Delivery] = asyncio.Queue()
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


def _check_webhook_body(raw: bytes) -> tuple[dict[str, Any] | None, list[ValidationDetail]]:
    details: list[ValidationDetail] = []
    body = parse_object(raw, frozenset({"partner_id", "webhook_url"}), details)
    if body is not None:
        check_string(body, "partner_id", details)
        check_string(body, "webhook_url", details)
    return (None if details else body), details


def _check_connectivity_body(raw: bytes) -> tuple[dict[str, Any] | None, list[ValidationDetail]]:
    details: list[ValidationDetail] = []
    body = parse_object(raw, frozenset({"partner_id", "simulation"}), details)
    if body is None:
        return None, details
    check_string(body, "partner_id", details)
    simulation = body.get("simulation", {})

    def problem(field: str, msg: str, type_: str) -> None:
        loc = ["body", "simulation", *([field] if field else [])]
        details.append({"loc": loc, "msg": msg, "type": type_})

    if not isinstance(simulation, dict):
        problem("", "Input should be a valid dictionary", "dict_type")
        return None, details
    if "event_name" in simulation and simulation["event_name"] not in SIMULATION_TYPES:
        problem("event_name", "Input should be a valid enum member", "enum")
    count = simulation.get("number_of_events", 1)
    if isinstance(count, float) and count.is_integer():
        count = simulation["number_of_events"] = int(count)  # 3.0 is an integer in JSON Schema
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10:
        problem("number_of_events", "Input should be an integer from 1 to 10", "int_range")
    when = simulation.get("event_time")
    if "event_time" in simulation and not (
        isinstance(when, str) and re.fullmatch(_DATE_TIME, when)
    ):
        problem("event_time", "Input should be a valid datetime", "datetime_parsing")
    return (None if details else body), details


def _webhook_answer(webhook: StoredWebhook) -> dict[str, Any]:
    return {
        "response_context": context(),
        "created_at": webhook.created_at,
        "last_modified_time": webhook.modified_at,
        "webhook_url": webhook.url,
        "webhook_secret": webhook.secret,
    }


Handler = Callable[[web.Request], Awaitable[web.Response]]


async def _register(request: web.Request) -> web.Response:
    push = request.app[PUSH_KEY]
    refusal = await push.gate.authenticate(request)
    if refusal is not None:
        return refusal
    body, details = _check_webhook_body(await request.read())
    if body is None:
        return unprocessable(details)
    refusal = await push.gate.admit(request)
    if refusal is not None:
        return refusal
    now = _iso(push.clock())
    earlier = push.webhooks.get(body["partner_id"])
    # One webhook per partner; registering again replaces the URL and issues a new secret.
    webhook = StoredWebhook(
        partner_id=body["partner_id"],
        url=body["webhook_url"],
        secret=secrets.token_urlsafe(32),
        created_at=earlier.created_at if earlier is not None else now,
        modified_at=now,
        owner=owner_of(request),
    )
    push.webhooks[webhook.partner_id] = webhook
    return json_response(200, _webhook_answer(webhook))


async def _lookup(request: web.Request) -> tuple[StoredWebhook | None, web.Response | None]:
    push = request.app[PUSH_KEY]
    refusal = await push.gate.authenticate(request) or await push.gate.admit(request)
    if refusal is not None:
        return None, refusal
    partner_id = request.match_info["partner_id"]
    webhook = push.webhooks.get(partner_id)
    if webhook is None or webhook.owner != owner_of(request):
        return None, not_found(f"no webhook for partner {partner_id!r}")
    return webhook, None


async def _get(request: web.Request) -> web.Response:
    webhook, refusal = await _lookup(request)
    if webhook is None:
        assert refusal is not None
        return refusal
    return json_response(200, _webhook_answer(webhook))


async def _delete(request: web.Request) -> web.Response:
    webhook, refusal = await _lookup(request)
    if webhook is None:
        assert refusal is not None
        return refusal
    del request.app[PUSH_KEY].webhooks[webhook.partner_id]
    return json_response(200, {"response_context": context()})


async def _check_connectivity(request: web.Request) -> web.Response:
    push = request.app[PUSH_KEY]
    refusal = await push.gate.authenticate(request)
    if refusal is not None:
        return refusal
    body, details = _check_connectivity_body(await request.read())
    if body is None:
        return unprocessable(details)
    refusal = await push.gate.admit(request)
    if refusal is not None:
        return refusal
    webhook = push.webhooks.get(body["partner_id"])
    if webhook is None or webhook.owner != owner_of(request):
        return not_found(f"no webhook for partner {body['partner_id']!r}")
    simulation = body.get("simulation") or {}
    name = simulation.get("event_name", "new_office")
    prospect = name.startswith("prospect_")
    failures: list[str] = []
    async with aiohttp.ClientSession() as session:
        for index in range(simulation.get("number_of_events", 1)):
            push.stats.simulated += 1
            event_id = _hex(push.seed, "simulation", push.stats.simulated)
            entity_id = _hex(push.seed, "entity", push.stats.simulated, size=20 if prospect else 16)
            payload = msgspec.json.decode(_payload(
                push, webhook=webhook, event_id=event_id, name=name, entity_id=entity_id,
                entity_type="prospect" if prospect else "business", key="connectivity-check",
                index=index,
            ))  # fmt: skip
            if "event_time" in simulation and isinstance(payload["data"], dict):
                payload["data"]["event_time"] = simulation["event_time"]
            delivery = _Delivery(
                event_id, webhook.url, webhook.secret, _encode(payload), False, False
            )
            if not _is_loopback(webhook.url):
                push.stats.refused_urls += 1
                failures.append("the emulator delivers to loopback URLs only")
                break
            status = await _send(session, push, delivery, bad=False, seconds=10.0)
            if status is None or not 200 <= status < 300:
                failures.append("no answer" if status is None else f"HTTP {status}")
    if failures:
        return json_response(
            400,
            {
                "details": f"Client webhook failed on: {failures[0]}",
                "correlation_id": uuid.uuid4().hex,
            },
        )
    return json_response(200, {"response_context": context()})


async def _deliver_route(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        fields = msgspec.json.decode(raw) if raw.strip() else {}
        wait = bool(fields.pop("wait", True)) if isinstance(fields, dict) else True
        options = DeliveryOptions(**fields)
    except (msgspec.DecodeError, TypeError, ValueError) as exc:
        return json_response(400, {"details": f"bad delivery options: {exc}"})
    if not wait:
        task = asyncio.create_task(deliver(request.app, options))
        request.app[_TASKS_KEY].tasks.add(task)
        task.add_done_callback(request.app[_TASKS_KEY].tasks.discard)
        return json_response(202, {"queued": True})
    report = await deliver(request.app, options)
    return json_response(200, report.as_dict())


async def _push_stats(request: web.Request) -> web.Response:
    return json_response(200, request.app[PUSH_KEY].stats.as_dict())


@dataclasses.dataclass(eq=False)
class _Background:
    """Deliveries started with ``"wait": false``: cancelled when the app shuts down."""

    tasks: set[asyncio.Task[DeliveryReport]] = dataclasses.field(default_factory=set)


_TASKS_KEY = web.AppKey("explorium_events.emulator.push_tasks", _Background)


async def _cancel_deliveries(app: web.Application) -> None:
    tasks = list(app[_TASKS_KEY].tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def add_webhook_routes(app: web.Application) -> None:
    """Serve the webhook endpoints, the delivery trigger and the push counters."""
    app[_TASKS_KEY] = _Background()
    app.on_shutdown.append(_cancel_deliveries)
    app.router.add_post("/v1/webhooks", counted(_register))
    app.router.add_post("/v1/webhooks/check_connectivity", counted(_check_connectivity))
    app.router.add_get("/v1/webhooks/{partner_id}", counted(_get))
    app.router.add_delete("/v1/webhooks/{partner_id}", counted(_delete))
    app.router.add_post(DELIVER_PATH, _deliver_route)
    app.router.add_get(PUSH_STATS_PATH, _push_stats)
