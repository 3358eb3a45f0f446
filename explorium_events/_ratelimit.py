"""Client-side pacing that mirrors the server's sliding window, and what its headers say.

The server counts requests (or prospect IDs) over a sliding 60-second window. A leaky
bucket bursts after idle time and trips such a window (aiolimiter#298), so this limiter
counts what it actually sent in the last window instead. Each slot starts to age when
its answer comes back, not when the request left: the server stamps a request on
arrival, somewhere in between, so counting from the answer is never early.

Three more things can hold a request back:
- the server's own view, read from ``X-RateLimit-Limit/-Remaining/-Reset`` on every
  answer: a lower limit than configured, or another process spending the same key;
- a shared pause after any 429, until its ``Retry-After`` moment, for every worker at
  once (plus a small positive jitter each), not just the one that got it;
- a probe: until the first answer (and again after a pause or a reset) only one request
  is in flight, so that a window still full from an earlier run costs one 429 at most.
  The first probe is skipped where the limit is not in play, since it costs a whole
  answer's latency while every other worker waits: with no client-side limit
  (``limit=None``: the client assumes none until an answer shows one), or with a limit
  far above what ``concurrency`` requests in flight could spend in a window even at
  one answer every ``FASTEST_ANSWER`` seconds each (an earlier run of this client
  cannot have filled such a window). After a 429 the probe is back, always. A
  checkpoint or sync state remembers the server's limit (``recall``), so that a
  resumed run, which may well be back in a window its earlier run filled, probes even
  with ``limit=None``, and paces to that limit until an answer says otherwise.
  A probe that fails without a word on the window (a timeout, a dropped connection, an
  unreadable body) ends the probe all the same: waiting for a readable answer would
  hold a silent server's whole pull to one request at a time, and the local window
  still paces what follows.

The window itself is learned too (``WindowEstimate``): each answer whose units are all
this client's bounds the server's window, through ``X-RateLimit-Reset`` and through
which of this client's units the server no longer counts. A shorter window than the
configured one, or a longer one, is then the window in force (a 429 while a shorter
one is drops it for good). Not with a shared window, whose length is the store's.

The server's view gates requests only while it counts units this client cannot account
for. Each grant remembers how many of this client's units the server could at most hold
when it stamps that request (those answered less than a window before it was sent, those
in flight, those sent after it); an answer whose ``limit - remaining`` is no more than
that shows nobody else spending the key, and the local window, which holds each unit
longer than the server does, paces alone: more finely than a whole-second
``X-RateLimit-Reset``, and without counting requests in flight twice.

Several processes spending one key can share one window through a SharedWindow (Redis,
in ``_ratelimit_redis``): a request then goes when this process's own window admits it
and the shared window grants it, and a 429's pause reaches every process. The shared
window holds every process's units, so the server's remaining count no longer gates a
shared grant; its limit still lowers the one in force. While the store is unreachable
the shared window answers None and this process paces alone, keeping to the share of
the window it held when the store failed (so that the processes that shared it stay
within the limit together). Once the store answers again, this process's last window is
recorded there (entries it already holds are skipped), so neither what was sent
meanwhile nor what a restarted store forgot lets the processes together overshoot.
"""

from __future__ import annotations

import asyncio
import collections
import random

from ._checks import check_count, check_rate_window
from ._clock import Clock
from ._errors import RateLimitError
from ._ratelimit_types import (
    Grant,
    RateLimitCost,
    RateLimitHeaders,
    RateLimitState,
    ServerLimit,
    SharedDecision,
    SharedWindow,
)
from ._window_estimate import WindowEstimate

__all__ = [
    "FASTEST_ANSWER",
    "Grant",
    "RateLimitCost",
    "RateLimitHeaders",
    "RateLimitState",
    "ServerLimit",
    "SharedDecision",
    "SharedWindow",
    "SlidingWindowLimiter",
]

# While the shared store is unreachable, how often a wait looks whether it is back.
_RECHECK_STORE = 0.25
# Faster than any answer the API gives (it takes about 0.75 s): a limit that concurrency
# requests in flight cannot spend in a window even at this pace is not in play.
FASTEST_ANSWER = 0.01
# The most IDs a request carries: its most units when the limit counts IDs.
_MOST_IDS = 40


class SlidingWindowLimiter:
    """At most ``limit`` units in any ``window`` seconds, counted from each answer's return.

    ``limit=None`` turns the local window off; the server's headers still apply.
    """

    def __init__(
        self,
        *,
        limit: int | None,
        window: float,
        cost: RateLimitCost,
        clock: Clock,
        rng: random.Random,
        pause_jitter: float = 0.25,
        shared: SharedWindow | None = None,
        concurrency: int | None = None,
    ) -> None:
        if limit is not None:
            check_count("rate_limit", limit, also="or None for no client-side limit")
        check_rate_window(window)
        self._configured_limit = limit
        self._window = window
        self._cost = cost
        self._clock = clock
        self._rng = rng
        self._pause_jitter = pause_jitter
        self._shared = shared
        # After the store failed, the next answer it gives also records this process's
        # window: what was sent meanwhile, and what a restarted store forgot.
        self._backlog_due = False
        # At the last shared grant: this process's units in the window, and everyone's.
        self._own_used = 0
        self._shared_used: int | None = None
        # While the store is unreachable: the share of the limit this process keeps to,
        # the share of the shared window it held when the store failed.
        self._fallback_share: float | None = None
        self._outages_seen = 0
        # (moment the answer came back, units, shared entry or None), oldest first: the
        # monotonic clock keeps it sorted.
        self._completed: collections.deque[tuple[float, int, str | None]] = collections.deque()
        self._completed_units = 0
        self._in_flight_units = 0
        self._in_flight_requests = 0
        self._sent_units = 0
        self._others_seen_by = 0  # ``sent`` of the latest answer that showed others' units
        self._server_limit: int | None = None
        self._recalled = False  # _server_limit is an earlier run's, no answer's yet
        self._server_remaining: int | None = None
        self._server_reset_at = 0.0
        self._paused_until = 0.0
        self._concurrency = concurrency
        self._probing = self._limit_in_play(limit)
        self._learned = WindowEstimate(window)
        if shared is not None:
            self._learned.forget()
        self._waiters = 0
        # Created lazily, inside the running loop (nothing binds to a loop in __init__).
        self._turn: asyncio.Lock | None = None
        self._answered: asyncio.Event | None = None

    def _limit_in_play(self, limit: int | None) -> bool:
        """Whether the first request must probe alone (see the module's docstring)."""
        if self._shared is not None:
            return True  # the shared window decides; its grants are what it knows
        if limit is None:
            return False
        if self._concurrency is None:
            return True
        most_units = self._concurrency * (_MOST_IDS if self._cost == "id" else 1)
        return limit < most_units * self._window / FASTEST_ANSWER

    def recall(self, remembered: ServerLimit) -> None:
        """The server's limit as an earlier run read it (its checkpoint or sync state kept it).

        Only with no configured limit, before the first request, and in the same unit: the
        limit is then taken as the server's (paced to, until an answer says otherwise), and
        the first request probes alone where it is in play, as with a configured limit.
        An answer without ``X-RateLimit-Limit`` drops it again.
        """
        if self._configured_limit is not None or self._sent_units:
            return
        if remembered.cost != self._cost:
            return  # a count of IDs read as requests (or the reverse) would mislead
        self._server_limit = remembered.limit
        self._recalled = True
        self._probing = self._probing or self._limit_in_play(remembered.limit)

    @property
    def limit(self) -> int | None:
        """The limit in force: the configured one, or the server's if that is lower."""
        if self._server_limit is None:
            return self._configured_limit
        if self._configured_limit is None:
            return self._server_limit
        return min(self._configured_limit, self._server_limit)

    @property
    def window(self) -> float:
        """The window's length in seconds, as configured."""
        return self._window

    @property
    def window_in_force(self) -> float:
        """The window the limiter paces by: the configured one, or the one learned."""
        return self._learned.window()

    def cost_of(self, batch_size: int) -> int:
        """What a request for this many IDs costs."""
        return batch_size if self._cost == "id" else 1

    def state(self) -> RateLimitState:
        """A snapshot of the limiter now."""
        now = self._clock.monotonic()
        self._expire(now)
        return RateLimitState(
            limit=self.limit,
            window=self.window_in_force,
            cost=self._cost,
            used=self._completed_units + self._in_flight_units,
            in_flight=self._in_flight_requests,
            paused_for=max(0.0, self._paused_until - now),
            waiting=self._waiters > 0,
            server_limit=self._server_limit,
            server_remaining=self._server_remaining,
            shared=None if self._shared is None else self._shared.available,
        )

    async def acquire(self, units: int, *, max_pause: float | None = None) -> Grant:
        """Wait until ``units`` more fit the window, then take them; pass the Grant to release().

        Raises RateLimitError at once, without sending, when a shared pause would last
        longer than ``max_pause`` seconds.
        """
        token: str | None = None
        if self._turn is None:
            self._turn = asyncio.Lock()
            self._answered = asyncio.Event()
        assert self._answered is not None
        self._waiters += 1
        try:
            # One acquirer at a time, first come first served: the lock is FIFO.
            async with self._turn:
                while True:
                    now = self._clock.monotonic()
                    pause = self._paused_until - now
                    if pause > 0:
                        if max_pause is not None and pause > max_pause:
                            raise RateLimitError(
                                f"the server asked to wait {pause:.0f}s, more than the "
                                f"max_retry_after of {max_pause:g}s",
                                status=429,
                                retry_after=pause,
                            )
                        await self._clock.sleep(pause + self._rng.uniform(0, self._pause_jitter))
                        continue
                    delay = self._delay(units, now)
                    if delay is None:
                        self._answered.clear()
                        await self._answered.wait()
                    elif delay > 0:
                        await self._clock.sleep(delay)
                    elif self._shared is None:
                        break
                    else:
                        falling_back = not self._backlog_due
                        decision = await self._ask_shared(units, now)
                        if decision is None and falling_back:
                            continue  # once more, against the estimate the fall-back set
                        if decision is None or decision.granted:
                            token = decision.token if decision is not None else None
                            break
                        if decision.paused:
                            self.pause(decision.wait)
                        else:
                            await self._clock.sleep(decision.wait)
                self._in_flight_units += units
                self._in_flight_requests += 1
                self._sent_units += units
                # Reordering slack: the units in flight beside this request.
                self._learned.sent(
                    self._sent_units, self._clock.time(), self._in_flight_units - units
                )
                if self._server_remaining is not None:
                    self._server_remaining -= units
                self._expire(self._clock.monotonic())
                return Grant(
                    ours=self._completed_units + self._in_flight_units,
                    sent=self._sent_units,
                    probe=self._probing,
                    token=token,
                )
        finally:
            self._waiters -= 1

    async def _ask_shared(self, units: int, now: float) -> SharedDecision | None:
        """The shared window's answer (None: pace alone), with the backlog when one is due."""
        assert self._shared is not None
        was_sharing = not self._backlog_due
        outages = self._shared.outages
        if outages != self._outages_seen:
            # The store failed (and maybe came back) between two of our calls: it may
            # have forgotten, or missed a move of, this process's entries.
            self._backlog_due = True
        backlog: list[tuple[float, int, str | None]] = []
        if self._backlog_due:
            self._expire(now)
            backlog = [(now - answered, count, token) for answered, count, token in self._completed]
        decision = await self._shared.acquire(units, self.limit, backlog)
        if decision is None:
            limit = self.limit
            if was_sharing and self._shared_used and limit is not None:
                # The store just failed. Every process keeps to the share of the limit
                # it held, so that together they stay within it as they were; and for
                # the first window takes at most half of what was left.
                self._fallback_share = min(1.0, self._own_used / max(self._shared_used, limit))
                self._server_remaining = max(0, limit - self._shared_used) // 2
                self._server_reset_at = now + self.window_in_force
            self._backlog_due = True
        else:
            if self._backlog_due:
                # Back: the shared window now holds this process's window too.
                self._server_remaining = None
            self._backlog_due = False
            self._outages_seen = outages
            self._fallback_share = None
            if decision.used is not None:
                self._shared_used = decision.used
                self._own_used = self._completed_units + self._in_flight_units + units
        return decision

    def _delay(self, units: int, now: float) -> float | None:
        """0 when ``units`` may go now, seconds to wait, or None to wait for an answer."""
        if self._probing and self._in_flight_requests:
            return None
        # After the shared store failed: whether it answers again (then it decides, with
        # this process's window as backlog, and the server's view need not hold us back).
        fell_back = self._shared is not None and self._backlog_due
        store_back = fell_back and self._shared is not None and self._shared.available
        if self._server_remaining is not None and self._server_remaining < units and not store_back:
            if now < self._server_reset_at:
                wait = self._server_reset_at - now
                # Look again soon: the store may be back well before the estimate ends.
                return min(wait, _RECHECK_STORE) if fell_back else wait
            # The server's oldest unit has left its window: some room again, how much
            # only the next answer can say.
            self._server_remaining = None
            self._probing = True
            return None if self._in_flight_requests else 0.0
        limit = self.limit
        if limit is None:
            return 0.0
        if self._fallback_share is not None and fell_back and not store_back:
            limit = max(1, int(limit * self._fallback_share))
        self._expire(now)
        used = self._completed_units + self._in_flight_units
        # A request costing more than the whole limit still goes, alone, rather than never.
        if used + units <= limit or used == 0:
            return 0.0
        if self._completed:
            wait = self._completed[0][0] + self.window_in_force - now
            # Paced alone while the store is away: look again soon whether it is back.
            return min(wait, _RECHECK_STORE) if fell_back else wait
        return None

    def _expire(self, now: float) -> None:
        window = self.window_in_force
        # The same sum as the wait in _delay: a slot whose wait is 0 has left. (Comparing
        # with ``now - window`` instead can keep it while its wait says 0 already, and
        # then every waiter goes at that moment.)
        while self._completed and self._completed[0][0] + window <= now:
            self._completed_units -= self._completed.popleft()[1]

    def cancel(self, units: int) -> None:
        """Give back units taken by acquire() for a request that was not sent after all."""
        self._in_flight_units -= units
        self._in_flight_requests -= 1
        if self._server_remaining is not None:
            self._server_remaining += units
        assert self._answered is not None
        self._answered.set()

    def release(
        self, units: int, headers: RateLimitHeaders | None, grant: Grant | None = None
    ) -> None:
        """The request's answer came back (``headers``) or it failed without one (None).

        ``grant`` is what acquire() returned for it; without one, the server's remaining
        count always gates, as if another process shared the key.
        """
        now = self._clock.monotonic()
        self._in_flight_units -= units
        self._in_flight_requests -= 1
        token = grant.token if grant is not None else None
        self._completed.append((now, units, token))
        self._completed_units += units
        if self._shared is not None and token is not None:
            self._shared.answered(token)
        if headers is not None:
            self._probing = False
            self._observe(headers, now, grant)
        elif grant is not None and grant.probe:
            # The probe failed and said nothing of the window. Another probe would wait as
            # long again against a silent server, so the probe is over: the local window
            # paces from here, and a 429, should the window be full, starts a new probe.
            self._probing = False
        assert self._answered is not None
        self._answered.set()

    def _observe(self, headers: RateLimitHeaders, now: float, grant: Grant | None) -> None:
        if headers.limit is not None and headers.limit > 0:
            self._server_limit = headers.limit
        elif self._recalled:
            self._server_limit = None  # the server announces none now: no limit in play
        self._recalled = False
        if grant is not None and grant.token is not None and not self._backlog_due:
            # The shared window granted it and still answers: it holds every process's
            # units, so the server's remaining count shows nobody it does not count.
            self._server_remaining = None
            return
        if headers.remaining is not None:
            if grant is not None and self._server_limit is not None:
                ours = grant.ours + self._sent_units - grant.sent
                used = self._server_limit - max(0, headers.remaining)
                if used <= ours:
                    # Nobody else spends this key: the local window paces alone. (Unless
                    # an answer to a later request showed others: this one is older news.)
                    if grant.sent > self._others_seen_by:
                        self._server_remaining = None
                        if headers.reset is not None and not self._others_seen_by:
                            self._learned.observe(
                                reset=headers.reset,
                                used=used,
                                through=grant.sent,
                                now=self._clock.time(),
                            )
                    return
            self._others_seen_by = grant.sent if grant is not None else self._sent_units
            # Another client spends this key too and reads the same figure: take half of
            # it, so that the two together do not overshoot. Requests still out may or
            # may not be counted in that figure: assume not.
            self._server_remaining = max(0, headers.remaining) // 2 - self._in_flight_units
            wall_now = self._clock.time()
            reset_in = (headers.reset - wall_now) if headers.reset is not None else 1.0
            self._server_reset_at = now + min(max(reset_in, 0.0), self.window_in_force)

    def pause(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` (a 429's ``Retry-After``)."""
        if self.window_in_force < self._window:
            # The server refused what a shorter learned window allowed: back to the
            # configured window, for good (clocks that disagree would mislead it again).
            self._learned.forget()
        now = self._clock.monotonic()
        self._paused_until = max(self._paused_until, now + max(seconds, 0.0))
        self._server_remaining = None
        self._probing = True

    async def share_pause(self, seconds: float) -> None:
        """Hold every process sharing the store back for ``seconds``; no-op without a store."""
        if self._shared is not None:
            await self._shared.pause(seconds)

    async def aclose(self) -> None:
        """Close the shared window's connection, if any. Idempotent."""
        if self._shared is not None:
            await self._shared.aclose()

    def __repr__(self) -> str:
        state = self.state()
        return (
            f"<SlidingWindowLimiter limit={state.limit}/{state.window:g}s per {self._cost} "
            f"used={state.used} in_flight={state.in_flight} paused_for={state.paused_for:.1f}s>"
        )
