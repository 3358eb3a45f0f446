"""The rate limit's sliding window kept in Redis, shared by every process that spends one key.

One Lua script checks and records a request atomically, on Redis's own clock (``TIME``),
so processes on machines with skewed clocks agree. Per namespace, a sorted set holds one
member per request, ``"<units>:<random token>"`` scored with the moment its slot started
(granted, then moved to the moment its answer came back: the API stamps a request on
arrival, somewhere in between, so counting from the answer is never early); a string
``paused_until`` (set with PX) holds a 429's pause for everyone. Every key gets a TTL of
at least one window, so a crashed process leaves nothing behind.

The API key never reaches Redis: the namespace is ``explorium-events:`` followed by the
first 32 hex digits of HMAC-SHA256(key=b"explorium-events rate limit", msg=api_key), or
the name the user gives. Keys: ``<namespace>:window`` and ``<namespace>:paused_until``.

Faults of the store never stop the work. Every call has a short timeout (0.2 s); a call
that fails or exceeds it marks the store unreachable (one warning), and from then on
``acquire`` answers None at once so the limiter paces this process alone, while one
background task pings the store with a growing backoff (never a request's call); when it
answers, the window is shared again (one info line). ``redis`` is imported only here,
and only when a store is configured: ``pip install 'explorium-events[redis]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import urllib.parse
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ._checks import check_rate_window, check_seconds
from ._errors import ConfigurationError
from ._ratelimit import SharedDecision
from ._settings import check_namespace, check_store_url, safe_url

logger = logging.getLogger("explorium_events")

INSTALL_HINT = "pip install 'explorium-events[redis]'"
CALL_TIMEOUT = 0.2
RECONNECT_FIRST = 0.1
RECONNECT_CAP = 2.0
_NAMESPACE_HMAC_KEY = b"explorium-events rate limit"

# KEYS: window, paused_until. ARGV: limit (0: no window, only the pause), window ms,
# units, token, then backlog triples (age ms, units, entry or ""): each recorded, or
# moved later if its answer's move was lost. Returns {status, wait ms, units used}:
# status 1 granted, 0 wait, 2 paused.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
for i = 5, #ARGV, 3 do
  local member = ARGV[i + 2]
  if member == '' then
    member = ARGV[i + 1] .. ':' .. ARGV[4] .. '-' .. i
  end
  local score = now - tonumber(ARGV[i])
  local known = redis.call('ZSCORE', KEYS[1], member)
  if not known or tonumber(known) < score then
    redis.call('ZADD', KEYS[1], score, member)
  end
end
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then
  return {2, paused}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local limit = tonumber(ARGV[1])
local units = tonumber(ARGV[3])
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do
  used = used + tonumber(string.match(entries[i], '^(%d+):'))
end
if limit == 0 or used == 0 or used + units <= limit then
  redis.call('ZADD', KEYS[1], now, units .. ':' .. ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window + 1000)
  return {1, 0, used + units}
end
local excess = used + units - limit
for i = 1, #entries, 2 do
  excess = excess - tonumber(string.match(entries[i], '^(%d+):'))
  if excess <= 0 then
    return {0, math.max(1, tonumber(entries[i + 1]) + window - now + 1)}
  end
end
return {0, window}
"""

# KEYS: window. ARGV: member, window ms. The answer came back: the slot ages from now.
_ANSWERED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
return 1
"""

# KEYS: paused_until. ARGV: ms. Extends the pause, never shortens it.
_PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 1
"""


def namespace_for(api_key: str) -> str:
    """The Redis namespace of a key: a keyed hash of it, from which the key cannot be read."""
    digest = hmac.new(_NAMESPACE_HMAC_KEY, api_key.encode(), hashlib.sha256).hexdigest()
    return "explorium-events:" + digest[:32]


class RedisWindow:
    """A SharedWindow in Redis: at most ``limit`` units per ``window`` seconds, all processes.

    Binds to the event loop lazily, on first use. ``call_timeout``: the most any Redis
    call may take before the store counts as unreachable (default: CALL_TIMEOUT).
    """

    def __init__(
        self,
        *,
        url: str,
        namespace: str,
        window: float,
        call_timeout: float | None = None,
        reconnect_first: float = RECONNECT_FIRST,
        reconnect_cap: float = RECONNECT_CAP,
        rng: random.Random | None = None,
    ) -> None:
        self._url = check_store_url(url)
        check_namespace(namespace)
        self._window_ms = round(check_rate_window(window) * 1000)
        timeout = CALL_TIMEOUT if call_timeout is None else call_timeout
        self._call_timeout = check_seconds("call_timeout", timeout, zero_ok=False)
        self._reconnect_first = reconnect_first
        self._reconnect_cap = reconnect_cap
        self._rng = rng or random.Random()
        self._window_key = namespace + ":window"
        self._pause_key = namespace + ":paused_until"
        try:
            import redis.asyncio  # noqa: F401  (checked here, used on first call)
        except ImportError:
            raise ConfigurationError(
                f"rate_limit_store needs the redis package: {INSTALL_HINT}"
            ) from None
        self._redis: Any = None
        self._scripts: dict[str, Any] = {}
        self._available = True
        self._outages = 0
        self._reconnect: asyncio.Task[None] | None = None
        self._answers: set[asyncio.Task[None]] = set()
        self._calls: set[asyncio.Task[Any]] = set()  # redis-py calls under way (_bounded)
        self._closed = False

    @property
    def available(self) -> bool:
        """Whether the store answered the last call (False while pacing locally)."""
        return self._available

    @property
    def outages(self) -> int:
        """How many times the store became unreachable so far."""
        return self._outages

    @property
    def keys(self) -> tuple[str, str]:
        """The Redis keys this window uses: the sorted set and the pause."""
        return self._window_key, self._pause_key

    def _client(self) -> Any:
        if self._redis is None:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            # No retries inside redis-py: a failed call falls back at once, and the
            # background task alone tries again.
            self._redis = redis.asyncio.Redis.from_url(
                self._url,
                socket_timeout=self._call_timeout,
                socket_connect_timeout=self._call_timeout,
                retry=Retry(NoBackoff(), 0),
            )
            self._scripts = {
                name: self._redis.register_script(text)
                for name, text in (
                    ("acquire", _ACQUIRE),
                    ("answered", _ANSWERED),
                    ("pause", _PAUSE),
                )
            }
        return self._redis

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run one script within the timeout; on any failure, fall back and raise _Down."""
        self._client()
        try:
            return await self._bounded(self._scripts[script](keys=keys, args=args))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the store: its absence must not stop work
            self._fall_back(exc)
            raise _Down from None

    async def _bounded(self, call: Coroutine[Any, Any, Any]) -> Any:
        """Await one redis-py call in a task of its own, for at most the call timeout.

        Never cancel redis-py itself and rely on it: on Python 3.11 its writes go through
        ``asyncio.wait_for``, which swallows a cancellation that arrives as the write
        completes (cpython#86296); the call then carries on as if nothing happened. So the
        caller waits on the call's task instead, which a cancellation or the timeout always
        ends; the call is then cancelled in turn and, should that be lost too, ends within
        redis-py's own socket timeouts (tracked, so that aclose() awaits it).
        """
        task = asyncio.get_running_loop().create_task(call)
        self._calls.add(task)
        task.add_done_callback(_forget_call(self._calls))
        try:
            done, _ = await asyncio.wait({task}, timeout=self._call_timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            task.cancel()
            raise TimeoutError(f"no answer within {self._call_timeout:g}s")
        return task.result()

    def _fall_back(self, exc: BaseException) -> None:
        if not self._available or self._closed:
            return
        self._available = False
        self._outages += 1
        # redis-py's messages name host and port, never the password; scrub it anyway.
        detail = str(exc) or type(exc).__name__
        password = urllib.parse.urlsplit(self._url).password
        if password:
            detail = detail.replace(password, "****")
        logger.warning(
            "the shared rate limit store %s is unreachable (%s: %s); this process paces "
            "itself alone until it answers again",
            safe_url(self._url),
            type(exc).__name__,
            detail,
        )
        self._reconnect = asyncio.get_running_loop().create_task(self._rejoin())

    async def _rejoin(self) -> None:
        """Ping the store with a growing backoff until it answers; then share again."""
        delay = self._reconnect_first
        # A fresh connection pool: the old one's connections may all be dead.
        stale, self._redis = self._redis, None
        if stale is not None:
            # Calls still under way on it (cancelled by their timeout) would otherwise open
            # connections after it closed, and leave them open.
            if self._calls:
                await asyncio.wait(set(self._calls), timeout=self._call_timeout)
            with contextlib.suppress(Exception):
                await stale.aclose()
        while True:
            await asyncio.sleep(delay * self._rng.uniform(1.0, 1.25))
            try:
                await self._bounded(self._client().ping())
            except asyncio.CancelledError:
                raise
            except Exception:  # still unreachable
                delay = min(delay * 2, self._reconnect_cap)
                continue
            self._available = True
            logger.info(
                "the shared rate limit store %s answers again: the limit is shared again",
                safe_url(self._url),
            )
            return

    async def acquire(
        self, units: int, limit: int | None, backlog: Sequence[tuple[float, int, str | None]]
    ) -> SharedDecision | None:
        """Check and record ``units`` at once; None while the store is unreachable.

        ``backlog``: (age in seconds, units, entry or None) of requests answered in the
        last window, recorded first unless their entry is already there.
        """
        if not self._available or self._closed:
            return None
        token = uuid.uuid4().hex[:20]
        args: list[Any] = [limit or 0, self._window_ms, units, token]
        for age, count, entry in backlog:
            args += [max(0, round(age * 1000)), count, entry or ""]
        try:
            answer = await self._call("acquire", [self._window_key, self._pause_key], args)
        except _Down:
            return None
        status, wait_ms = answer[0], answer[1]
        if status == 1:
            return SharedDecision(granted=True, token=f"{units}:{token}", used=int(answer[2]))
        return SharedDecision(granted=False, wait=int(wait_ms) / 1000, paused=status == 2)

    def answered(self, token: str) -> None:
        """The request of ``token`` was answered: move its slot's start to now, in background."""
        if not self._available or self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._answered(token))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _answered(self, token: str) -> None:
        with contextlib.suppress(_Down):
            await self._call("answered", [self._window_key], [token, self._window_ms])

    async def pause(self, seconds: float) -> None:
        """Hold every process back for ``seconds`` (a 429's Retry-After)."""
        if not self._available or self._closed or seconds <= 0:
            return
        with contextlib.suppress(_Down):
            await self._call("pause", [self._pause_key], [max(1, round(seconds * 1000))])

    async def aclose(self) -> None:
        """Stop the background work, close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks = [*self._answers, *([self._reconnect] if self._reconnect is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # The redis-py calls they left: cancelled already, each ends within its timeouts.
        await asyncio.gather(*self._calls, return_exceptions=True)
        if self._redis is not None:
            redis, self._redis = self._redis, None
            await redis.aclose()

    def __repr__(self) -> str:
        state = "shared" if self._available else "unreachable: pacing alone"
        return f"<RedisWindow {safe_url(self._url)} namespace={self._window_key[:-7]!r} {state}>"


class _Down(Exception):
    """The store did not answer a call (already logged)."""


def _forget_call(calls: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    """A done-callback: drop the call from ``calls`` and read its outcome, which may go unread."""

    def done(task: asyncio.Task[Any]) -> None:
        calls.discard(task)
        if not task.cancelled():
            task.exception()

    return done
