"""The aiohttp application: ``POST /v1/prospects/events``, ``POST /v1/businesses/events``
(``_business``) and two control routes.

A request to either endpoint goes through, in order (one sliding window per key,
shared by both endpoints, as the API's limit is per key across its endpoints):

1. latency (drawn for every request and counted from its arrival: the answer leaves
   that long after the request came in, however long building it took);
2. auth: header ``api_key``; missing or wrong: 401;
3. validation of the body: 422 naming every problem;
4. an injected 429, if drawn; then the sliding-window limit: 429 when over it
   (neither consumes the window);
5. the other faults: dropped connection, 5xx, truncated body, latency spike;
6. the events, with some duplicated if asked.

Every answer of the endpoint carries the ``X-RateLimit-*`` headers while the limit
is on. The API key is never logged, echoed or stored (the limiter keys on a hash).

``GET /_emulator/stats`` answers the counters as JSON; ``POST /_emulator/reset``
zeroes them and empties every rate window; ``GET``/``POST /_emulator/clock`` reads and
moves the emulator's clock (``_clock``). None of them needs a key.

The push side (enrollments, webhooks, delivery) lives in ``_enrollments`` and
``_webhooks``; it shares this app's key check and rate limit (one window per key)
through a ``Gate``, and its events are dated by this app's clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import msgspec
from aiohttp import web

from ._business import BUSINESS_EVENTS_PATH, BUSINESSES, PROSPECTS, Endpoint
from ._clock import EmulatorClock
from ._config import EmulatorConfig
from ._enrollments import PUSH_KEY, Gate, PushState, add_enrollment_routes
from ._faults import FaultInjector
from ._ratelimit import RateDecision, SlidingWindowLimiter
from ._stats import EmulatorStats
from ._validation import EventsQuery
from ._webhooks import add_webhook_routes

__all__ = [
    "BUSINESS_EVENTS_PATH",
    "CLOCK_KEY",
    "CLOCK_PATH",
    "EVENTS_PATH",
    "RESET_PATH",
    "STATS_KEY",
    "STATS_PATH",
    "create_app",
    "reconfigure_app",
    "reset_app",
]

EVENTS_PATH = "/v1/prospects/events"
STATS_PATH = "/_emulator/stats"
RESET_PATH = "/_emulator/reset"
CLOCK_PATH = "/_emulator/clock"
_API_KEY_HEADER = "api_key"  # aiohttp's headers are case-insensitive

_log = logging.getLogger("explorium_events.emulator")
_encode = msgspec.json.Encoder().encode


@dataclasses.dataclass(kw_only=True, eq=False)
class _State:
    config: EmulatorConfig
    clock: EmulatorClock
    stats: EmulatorStats
    faults: FaultInjector
    limiter: SlidingWindowLimiter | None


STATS_KEY = web.AppKey("explorium_events.emulator.stats", EmulatorStats)
"""The app's live :class:`EmulatorStats`: ``app[STATS_KEY]``."""
CLOCK_KEY = web.AppKey("explorium_events.emulator.clock", EmulatorClock)
"""The app's :class:`EmulatorClock`: ``app[CLOCK_KEY]``."""
_STATE_KEY = web.AppKey("explorium_events.emulator.state", _State)


@dataclasses.dataclass(kw_only=True, eq=False)
class _Reply:
    status: int
    payload: dict[str, Any]
    headers: dict[str, str]
    action: Literal["send", "drop", "truncate"] = "send"
    keep: float = 0.0
    delay: float = 0.0


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """Build the emulator's aiohttp application.

    The synthetic data is anchored to ``config.now``, or to midnight UTC of the
    day this is called. The counters are at ``app[STATS_KEY]``.
    """
    config = config or EmulatorConfig()
    stats = EmulatorStats()
    clock = EmulatorClock(config.anchor())
    limiter = _limiter(config, clock)
    app = web.Application()
    app[STATS_KEY] = stats
    app[CLOCK_KEY] = clock
    app[_STATE_KEY] = _State(
        config=config,
        clock=clock,
        stats=stats,
        faults=FaultInjector(config),
        limiter=limiter,
    )
    app.router.add_post(EVENTS_PATH, _handler(PROSPECTS))
    app.router.add_post(BUSINESS_EVENTS_PATH, _handler(BUSINESSES))
    app.router.add_get(STATS_PATH, _stats)
    app.router.add_post(RESET_PATH, _reset)
    app.router.add_get(CLOCK_PATH, _clock)
    app.router.add_post(CLOCK_PATH, _clock)
    gate = Gate(authenticate=_push_authenticate, admit=_push_admit)
    push = PushState(seed=config.seed, clock=config.clock, events_clock=clock, gate=gate)
    add_enrollment_routes(app, push)
    add_webhook_routes(app)
    return app


async def _push_authenticate(request: web.Request) -> web.Response | None:
    """The key check of the events endpoints, for the push routes."""
    state = request.app[_STATE_KEY]
    key = request.headers.get(_API_KEY_HEADER, "").strip()
    refusal = _authenticate(key, state)
    return None if refusal is None else _json(refusal.status, refusal.payload, refusal.headers)


async def _push_admit(request: web.Request) -> web.Response | None:
    """One unit of the key's sliding window (every endpoint shares it), or a 429."""
    state = request.app[_STATE_KEY]
    key = request.headers.get(_API_KEY_HEADER, "").strip()
    if state.limiter is None:
        return None
    decision = state.limiter.acquire(key, 1)
    if decision.allowed:
        return None
    refusal = _rate_limited(decision, decision.retry_after)
    return _json(refusal.status, refusal.payload, refusal.headers)


async def _clock(request: web.Request) -> web.Response:
    clock = request.app[CLOCK_KEY]
    if request.method == "POST":
        try:
            clock.apply(msgspec.json.decode(await request.read()))
        except (msgspec.DecodeError, ValueError) as exc:
            return _json(400, {"error": str(exc)})
        _log.info("emulator: the clock now reads %s", clock.now.isoformat())
    return _json(200, clock.as_dict())


_LIMIT_FIELDS = frozenset({"rate_limit", "rate_window", "clock"})


def reconfigure_app(app: web.Application, **changes: Any) -> EmulatorConfig:
    """Change the running app's config (faults, latency, rate limit, seed...); the new config.

    The fault draws start again from the (new) seed; a new seed also drives the push side
    from then on (see ``Emulator.configure``); a change to ``rate_limit``, ``rate_window``
    or ``clock`` starts an empty window; a new ``now`` restarts the emulator's clock there
    (``EmulatorClock.restart``). Raises ValueError for a field that does not exist or a
    value that EmulatorConfig refuses.
    """
    state = app[_STATE_KEY]
    unknown = set(changes) - {field.name for field in dataclasses.fields(EmulatorConfig)}
    if unknown:
        raise ValueError(f"EmulatorConfig has no field {', '.join(sorted(unknown))}")
    config = dataclasses.replace(state.config, **changes)
    state.config = config
    state.faults = FaultInjector(config)
    # The seed drives every draw, pushed ones too: a pushed event's data must be the one
    # the events endpoints serve for that seed. What exists (enrollments, webhooks) stays,
    # and the rounds go on counting, so that no pushed event_id comes twice.
    app[PUSH_KEY].seed = config.seed
    if "now" in changes:
        state.clock.restart(config.anchor())
    if _LIMIT_FIELDS & set(changes):
        state.limiter = _limiter(config, state.clock)
    return config


def reset_app(app: web.Application) -> None:
    """Zero the counters and empty every rate window (``POST /_emulator/reset``)."""
    state = app[_STATE_KEY]
    state.stats.reset()
    if state.limiter is not None:
        state.limiter.reset()


def _limiter(config: EmulatorConfig, clock: EmulatorClock) -> SlidingWindowLimiter | None:
    if not config.rate_limit:
        return None
    # One clock: moving the emulator's clock on also ages the rate windows by as much.
    return SlidingWindowLimiter(
        limit=config.rate_limit,
        window=config.rate_window,
        clock=config.clock,
        skipped=lambda: clock.skipped,
    )


async def _stats(request: web.Request) -> web.Response:
    return _json(200, request.app[STATS_KEY].as_dict())


async def _reset(request: web.Request) -> web.Response:
    reset_app(request.app)
    return _json(200, {"reset": True})


def _json(
    status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=_encode(payload), headers=headers, content_type="application/json"
    )


def _handler(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await _events(request, endpoint)

    return handle


async def _events(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    state = request.app[_STATE_KEY]
    started = time.perf_counter()
    state.stats.enter()
    try:
        latency = state.faults.latency()
        state.stats.latency_seconds += latency
        reply = await _decide(request, state, endpoint)
        # The latency counts from the request's arrival: a server whose answers take
        # 100 ms takes 100 ms, not 100 ms plus the time spent building the answer.
        delay = latency + reply.delay - (time.perf_counter() - started)
        if delay > 0:
            await asyncio.sleep(delay)
        return await _answer(request, state.stats, reply, started)
    finally:
        state.stats.leave()


def _correlation_id() -> str:
    return uuid.uuid4().hex


async def _decide(request: web.Request, state: _State, endpoint: Endpoint) -> _Reply:
    """Work out the answer; nothing is sent and nothing sleeps here."""
    key = request.headers.get(_API_KEY_HEADER, "").strip()
    refusal = _authenticate(key, state)
    if refusal is not None:
        return refusal
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        return _error(413, exc.text or "Request body too large.", _window(key, state))
    query, problems = endpoint.validate(raw)
    if query is None:
        return _Reply(status=422, payload={"detail": problems}, headers=_window(key, state))
    refusal, headers = _admit(key, query, state)
    if refusal is not None:
        return refusal

    state.stats.fetched(query.prospect_ids)
    fault = state.faults.draw()
    if fault.kind == "drop":
        return _Reply(status=0, payload={}, headers={}, action="drop", delay=fault.spike)
    if fault.kind == "server_error":
        return _Reply(status=fault.status, payload=fault.body, headers=headers, delay=fault.spike)
    return _Reply(
        status=200,
        payload=_success(state, query, endpoint),
        headers=headers,
        action="truncate" if fault.kind == "truncate" else "send",
        keep=fault.keep,
        delay=fault.spike,
    )


def _window(key: str, state: _State) -> dict[str, str]:
    """The rate-limit headers of ``key``'s window, consuming nothing."""
    return state.limiter.peek(key).headers() if state.limiter is not None else {}


def _error(status: int, details: str, headers: dict[str, str]) -> _Reply:
    payload = {"details": details, "correlation_id": _correlation_id()}
    return _Reply(status=status, payload=payload, headers=headers)


def _authenticate(key: str, state: _State) -> _Reply | None:
    expected = state.config.api_key
    if not key:
        return _error(401, "Missing API key: send it in the 'api_key' header.", _window(key, state))
    if expected is not None and not hmac.compare_digest(key.encode(), expected.encode()):
        return _error(401, "Invalid API key.", _window(key, state))
    return None


def _admit(key: str, query: EventsQuery, state: _State) -> tuple[_Reply | None, dict[str, str]]:
    """Apply an injected 429, then the sliding window; return a refusal or the headers."""
    limiter = state.limiter
    injected = state.faults.injected_retry_after()
    if injected is not None:
        window = limiter.peek(key) if limiter is not None else None
        if window is not None:
            window = dataclasses.replace(window, allowed=False, retry_after=injected)
        return _rate_limited(window, injected), {}
    if limiter is None:
        return None, {}
    cost = len(query.prospect_ids) if state.config.rate_limit_cost == "id" else 1
    decision = limiter.acquire(key, cost)
    if not decision.allowed:
        return _rate_limited(decision, decision.retry_after), {}
    return None, decision.headers()


def _rate_limited(decision: RateDecision | None, retry_after: int) -> _Reply:
    headers = decision.headers() if decision is not None else {"Retry-After": str(retry_after)}
    return _Reply(
        status=429,
        payload={
            "error": "rate_limit_exceeded",
            "message": f"Rate limit exceeded: retry after {retry_after} seconds.",
            "retry_after": retry_after,
        },
        headers=headers,
    )


def _success(state: _State, query: EventsQuery, endpoint: Endpoint) -> dict[str, Any]:
    events = endpoint.select(
        seed=state.config.seed,
        clock=state.clock,
        prospect_ids=query.prospect_ids,
        event_types=query.event_types,
        start_us=query.start_us,
        end_us=query.end_us,
    )
    events, copies = state.faults.duplicate(events)
    state.stats.duplicated_events += copies
    return {
        "response_context": {
            "correlation_id": _correlation_id(),
            "request_status": "success" if events else "miss",
            "time_took_in_seconds": 0.0,  # set when answering, after the latency
        },
        "output_events": events,
    }


async def _answer(
    request: web.Request, stats: EmulatorStats, reply: _Reply, started: float
) -> web.StreamResponse:
    transport = request.transport
    if reply.action == "drop":
        stats.dropped += 1
        _log.debug("emulator: dropped the connection of a request")
        if transport is not None:
            transport.close()
        # aiohttp cannot write this to the closed transport and moves on quietly;
        # 444 is what the access log shows (nginx's "no response").
        return web.Response(status=444)

    context = reply.payload.get("response_context")
    if isinstance(context, dict):
        context["time_took_in_seconds"] = round(time.perf_counter() - started, 3)
    stats.answered(reply.status)
    _log.debug("emulator: answered %d", reply.status)
    if reply.action == "send":
        return _json(reply.status, reply.payload, reply.headers)

    body = _encode(reply.payload)
    stats.truncated += 1
    response = web.StreamResponse(status=reply.status, headers=reply.headers)
    response.content_type = "application/json"
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: int(len(body) * reply.keep)])
    if transport is not None:
        transport.close()
    return response
