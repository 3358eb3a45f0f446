"""The sliding-window limiter, driven without I/O on an injected clock."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence

import pytest

from explorium_events import RateLimitError
from explorium_events._ratelimit import (
    RateLimitHeaders,
    ServerLimit,
    SharedDecision,
    SlidingWindowLimiter,
)
from tests.conftest import FakeClock


def limiter(
    clock: FakeClock, limit: int | None = 10, window: float = 60.0, cost: str = "request"
) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(
        limit=limit,
        window=window,
        cost=cost,  # type: ignore[arg-type]
        clock=clock,
        rng=random.Random(0),
        pause_jitter=0.0,
    )


NO_HEADERS = RateLimitHeaders()


async def send(
    lim: SlidingWindowLimiter,
    clock: FakeClock,
    sent: list[float],
    headers: RateLimitHeaders | None = NO_HEADERS,
    units: int = 1,
) -> None:
    await lim.acquire(units)
    sent.append(clock.monotonic())
    lim.release(units, headers)


async def test_runs_at_the_limit_and_never_over(clock: FakeClock) -> None:
    """35 instant requests under 10 per 60 s: 10 per window, each window full, none over."""
    lim = limiter(clock)
    sent: list[float] = []
    for _ in range(35):
        await send(lim, clock, sent)
    assert sent[:10] == [0.0] * 10
    assert sent[10:20] == [60.0] * 10
    assert sent[30:] == [180.0] * 5
    for index, moment in enumerate(sent):
        assert sum(1 for other in sent[index:] if other < moment + 60.0) <= 10


async def test_slot_ages_from_the_answer_not_the_send(clock: FakeClock) -> None:
    """A request answered at t=5 holds its slot until t=65, not t=60."""
    lim = limiter(clock, limit=1)
    await lim.acquire(1)
    clock.now = 5.0
    lim.release(1, RateLimitHeaders())
    sent: list[float] = []
    await send(lim, clock, sent)
    assert sent == [65.0]


async def test_a_slot_that_ends_exactly_now_makes_room_for_one_request_not_all(
    clock: FakeClock,
) -> None:
    """Answered at 5.1 s, limit 1: the next goes at 65.1 s and the one after a window later.

    In floats 65.1 - 60 < 5.1 while 5.1 + 60 - 65.1 == 0: the window's end and the wait
    must be the same sum, or every waiter goes at 65.1 s.
    """
    lim = limiter(clock, limit=1)
    await lim.acquire(1)
    clock.now = 5.1
    lim.release(1, RateLimitHeaders())
    sent: list[float] = []
    for _ in range(3):
        await send(lim, clock, sent)
    assert sent[0] == 5.1 + 60.0
    assert sent[1] >= sent[0] + 60.0 and sent[2] >= sent[1] + 60.0


async def test_first_request_probes_alone(clock: FakeClock) -> None:
    """Until the first answer arrives, a second acquire waits."""
    lim = limiter(clock)
    await lim.acquire(1)
    second = asyncio.create_task(lim.acquire(1))
    await asyncio.sleep(0)
    assert not second.done()
    lim.release(1, RateLimitHeaders(limit=10, remaining=9, reset=clock.time() + 60))
    await asyncio.wait_for(second, 1)
    assert lim.state().in_flight == 1


@pytest.mark.parametrize(
    ("limit", "concurrency", "cost"),
    [(None, 8, "request"), (50_000, 8, "request"), (2_000_000, 8, "id")],
)
async def test_no_probe_where_the_limit_is_not_in_play(
    clock: FakeClock, limit: int | None, concurrency: int, cost: str
) -> None:
    """No limit, or one 8 requests in flight cannot spend in 60 s at 10 ms each: all go at once."""
    lim = SlidingWindowLimiter(
        limit=limit, window=60.0, cost=cost,  # type: ignore[arg-type]
        clock=clock, rng=random.Random(0), concurrency=concurrency,
    )  # fmt: skip
    units = lim.cost_of(40)
    grants = [await asyncio.wait_for(lim.acquire(units), 1) for _ in range(concurrency)]
    assert not any(grant.probe for grant in grants)
    assert lim.state().in_flight == concurrency


@pytest.mark.parametrize(("limit", "cost"), [(200, "request"), (47_999, "request"), (8_000, "id")])
async def test_the_first_request_probes_where_the_limit_is_within_reach(
    clock: FakeClock, limit: int, cost: str
) -> None:
    """A limit 8 in flight could spend in a window at 10 ms an answer: the probe goes alone."""
    lim = SlidingWindowLimiter(
        limit=limit, window=60.0, cost=cost,  # type: ignore[arg-type]
        clock=clock, rng=random.Random(0), concurrency=8,
    )  # fmt: skip
    assert (await lim.acquire(lim.cost_of(40))).probe
    second = asyncio.create_task(lim.acquire(lim.cost_of(40)))
    await asyncio.sleep(0)
    assert not second.done()
    second.cancel()


async def test_without_a_limit_a_429_still_brings_the_probe_back(clock: FakeClock) -> None:
    """No probe at first with limit=None; after a 429's pause one request goes alone again."""
    lim = SlidingWindowLimiter(
        limit=None, window=60.0, cost="request", clock=clock, rng=random.Random(0),
        pause_jitter=0.0, concurrency=8,
    )  # fmt: skip
    first = await lim.acquire(1)
    assert not first.probe
    lim.release(1, RateLimitHeaders(limit=200, remaining=0, retry_after=5.0), first)
    lim.pause(5.0)
    probe = await lim.acquire(1)
    assert probe.probe and clock.monotonic() == 5.0
    second = asyncio.create_task(lim.acquire(1))
    await asyncio.sleep(0)
    assert not second.done()
    lim.release(1, RateLimitHeaders(limit=200, remaining=150), probe)
    await asyncio.wait_for(second, 1)


def no_limit(clock: FakeClock, cost: str = "request") -> SlidingWindowLimiter:
    return SlidingWindowLimiter(
        limit=None, window=60.0, cost=cost,  # type: ignore[arg-type]
        clock=clock, rng=random.Random(0), concurrency=8,
    )  # fmt: skip


async def test_a_remembered_server_limit_brings_the_probe_back_without_a_limit(
    clock: FakeClock,
) -> None:
    """limit=None, but an earlier run read 200 from the server: paced to 200, the first probes."""
    lim = no_limit(clock)
    lim.recall(ServerLimit(200, "request"))
    assert lim.limit == 200 and lim.state().server_limit == 200
    assert (await lim.acquire(1)).probe
    second = asyncio.create_task(lim.acquire(1))
    await asyncio.sleep(0)
    assert not second.done()
    second.cancel()


async def test_a_remembered_limit_gives_way_to_what_the_answers_say(clock: FakeClock) -> None:
    """The first answer's X-RateLimit-Limit replaces it; an answer with none drops it."""
    told = no_limit(clock)
    told.recall(ServerLimit(200, "request"))
    grant = await told.acquire(1)
    told.release(1, RateLimitHeaders(limit=300, remaining=299, reset=clock.time() + 60), grant)
    assert told.limit == 300
    silent = no_limit(clock)
    silent.recall(ServerLimit(200, "request"))
    silent.release(1, RateLimitHeaders(), await silent.acquire(1))
    assert silent.limit is None
    assert not (await asyncio.wait_for(silent.acquire(1), 1)).probe


async def test_a_remembered_limit_changes_nothing_where_the_client_knows_better(
    clock: FakeClock,
) -> None:
    """A configured limit, a limit counted in another unit, or a request already sent: no change."""
    configured = SlidingWindowLimiter(
        limit=50_000, window=60.0, cost="request", clock=clock, rng=random.Random(0),
        concurrency=8,
    )  # fmt: skip
    other_unit = no_limit(clock, cost="id")
    started = no_limit(clock)
    await started.acquire(1)
    for lim in (configured, other_unit, started):
        before = lim.limit
        lim.recall(ServerLimit(200, "request"))
        assert lim.limit == before
        assert not (await asyncio.wait_for(lim.acquire(1), 1)).probe


async def test_lower_server_limit_is_adopted(clock: FakeClock) -> None:
    """X-RateLimit-Limit below the configured limit becomes the limit in force."""
    lim = limiter(clock, limit=200)
    await send(lim, clock, [], RateLimitHeaders(limit=50, remaining=49, reset=clock.time() + 60))
    assert lim.limit == 50
    assert lim.state().server_limit == 50


async def test_shared_key_remaining_holds_requests_until_reset(clock: FakeClock) -> None:
    """Remaining 0 from the server (another process spent it) waits until X-RateLimit-Reset."""
    lim = limiter(clock, limit=200)
    await send(lim, clock, [], RateLimitHeaders(limit=200, remaining=0, reset=clock.time() + 42))
    sent: list[float] = []
    await send(lim, clock, sent)
    assert sent == [42.0]


async def test_restart_into_a_full_window_costs_one_request(clock: FakeClock) -> None:
    """After a restart the probe finds the window nearly full and waits for its reset."""
    lim = limiter(clock, limit=200)
    sent: list[float] = []
    await send(lim, clock, sent, RateLimitHeaders(limit=200, remaining=2, reset=clock.time() + 30))
    await send(lim, clock, sent, None)
    await send(lim, clock, sent, None)
    assert sent == [0.0, 0.0, 30.0]


async def test_units_of_another_spender_leave_it_half_of_what_remains(clock: FakeClock) -> None:
    """Someone else holds 100 of 200: of the 100 left the client spends 50, then waits."""
    lim = limiter(clock, limit=200)
    sent: list[float] = []
    await send(
        lim, clock, sent, RateLimitHeaders(limit=200, remaining=100, reset=clock.time() + 20)
    )
    for _ in range(51):
        await send(lim, clock, sent, None)
    assert sent[:51] == [0.0] * 51  # the probe, then its half of the 100 left
    assert sent[51] == 20.0


async def test_pause_holds_every_acquirer_until_the_moment(clock: FakeClock) -> None:
    """After pause(7) every acquire returns at 7 s or later."""
    lim = limiter(clock, limit=None)
    await send(lim, clock, [])
    lim.pause(7.0)
    sent: list[float] = []
    await asyncio.gather(*(send(lim, clock, sent) for _ in range(5)))
    assert min(sent) >= 7.0


async def test_pause_longer_than_max_fails_at_once(clock: FakeClock) -> None:
    """A pause longer than max_pause raises RateLimitError without waiting."""
    lim = limiter(clock, limit=None)
    await send(lim, clock, [])
    lim.pause(3600.0)
    with pytest.raises(RateLimitError) as caught:
        await lim.acquire(1, max_pause=60.0)
    assert caught.value.retry_after == pytest.approx(3600.0)
    assert clock.now == 0.0


async def test_cost_per_id_counts_units(clock: FakeClock) -> None:
    """With cost per ID, two 40-ID requests fill an 80-unit window."""
    lim = limiter(clock, limit=80, cost="id")
    assert lim.cost_of(40) == 40
    sent: list[float] = []
    for _ in range(3):
        await send(lim, clock, sent, units=40)
    assert sent == [0.0, 0.0, 60.0]


async def test_request_dearer_than_the_limit_still_goes_alone(clock: FakeClock) -> None:
    """A request costing more than the limit goes when the window is empty, not never."""
    lim = limiter(clock, limit=10, cost="id")
    sent: list[float] = []
    await send(lim, clock, sent, units=40)
    await send(lim, clock, sent, units=40)
    assert sent == [0.0, 60.0]


async def test_repr_shows_state(clock: FakeClock) -> None:
    """The repr shows the limit, the use and any pause."""
    lim = limiter(clock)
    await send(lim, clock, [])
    assert "limit=10/60s per request used=1" in repr(lim)


async def test_own_requests_in_flight_counted_by_the_server_do_not_hold_back_the_window(
    clock: FakeClock,
) -> None:
    """Remaining 5 of 10 while our other 4 are out: all 5 local slots go now, not at reset."""
    lim = limiter(clock, limit=10)
    first = await lim.acquire(1)
    lim.release(1, RateLimitHeaders(limit=10, remaining=9, reset=clock.time() + 60), first)
    out = [await lim.acquire(1) for _ in range(4)]
    # The server had stamped all 5 when it answered the first of the four: remaining 5.
    lim.release(1, RateLimitHeaders(limit=10, remaining=5, reset=clock.time() + 60), out[0])
    sent: list[float] = []
    for _ in range(5):
        await lim.acquire(1)
        sent.append(clock.monotonic())
    assert sent == [0.0] * 5


async def test_units_of_another_process_in_the_server_count_still_hold_until_reset(
    clock: FakeClock,
) -> None:
    """With a grant, remaining 0 of 200 after one request of ours still waits for the reset."""
    lim = limiter(clock, limit=200)
    grant = await lim.acquire(1)
    lim.release(1, RateLimitHeaders(limit=200, remaining=0, reset=clock.time() + 42), grant)
    sent: list[float] = []
    await send(lim, clock, sent)
    assert sent == [42.0]


class FakeShared:
    """A SharedWindow that grants everything, or is unreachable; records what it was told."""

    def __init__(self) -> None:
        self.available = True
        self.outages = 0
        self.used = 0
        self.backlogs: list[list[tuple[float, int, str | None]]] = []
        self.answered_tokens: list[str] = []

    async def acquire(
        self, units: int, limit: int | None, backlog: Sequence[tuple[float, int, str | None]]
    ) -> SharedDecision | None:
        if not self.available:
            return None
        self.backlogs.append(list(backlog))
        self.used += units
        return SharedDecision(granted=True, token=f"{units}:t{self.used}", used=self.used)

    def answered(self, token: str) -> None:
        self.answered_tokens.append(token)

    async def pause(self, seconds: float) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def test_when_the_store_fails_each_process_keeps_to_its_share_of_the_limit(
    clock: FakeClock,
) -> None:
    """Held 2 of the limit's 10 when the store failed: paces alone at 2, then rejoins."""
    shared = FakeShared()
    lim = SlidingWindowLimiter(limit=10, window=60.0, cost="request", clock=clock,
                               rng=random.Random(0), pause_jitter=0.0, shared=shared)  # fmt: skip
    shared.used = 2
    for _ in range(2):
        grant = await lim.acquire(1)
        lim.release(1, RateLimitHeaders(limit=10, remaining=6), grant)
        assert grant.token is not None and shared.answered_tokens[-1] == grant.token
    shared.available = False
    third = asyncio.create_task(lim.acquire(1))
    for _ in range(5):
        await asyncio.sleep(0)
    # It waits, in short steps, looking whether the store is back.
    assert not third.done() and clock.sleeps and max(clock.sleeps) <= 0.25
    assert lim.state().shared is False
    shared.available = True
    granted = await asyncio.wait_for(third, 1)
    assert granted.token is not None
    # The store got this process's window with the grant: both earlier units.
    assert sorted(count for _, count, _ in shared.backlogs[-1]) == [1, 1]
    assert clock.now < 60.0


async def test_with_a_store_the_servers_remaining_count_does_not_gate(clock: FakeClock) -> None:
    """Shared grants: another process's units in X-RateLimit-Remaining do not hold us back."""
    shared = FakeShared()
    lim = SlidingWindowLimiter(limit=10, window=60.0, cost="request", clock=clock,
                               rng=random.Random(0), pause_jitter=0.0, shared=shared)  # fmt: skip
    grant = await lim.acquire(1)
    lim.release(1, RateLimitHeaders(limit=10, remaining=1, reset=clock.time() + 60), grant)
    for _ in range(5):
        grant = await lim.acquire(1)
        lim.release(1, RateLimitHeaders(limit=10, remaining=0, reset=clock.time() + 60), grant)
    assert clock.now == 0.0 and lim.state().server_remaining is None


class WindowServer:
    """A sliding-window server on the fake clock: whole-second X-RateLimit-Reset, rounded up."""

    def __init__(self, clock: FakeClock, limit: int, window: float, skew: float = 0.0) -> None:
        self.clock, self.limit, self.window, self.skew = clock, limit, window, skew
        self.stamps: list[float] = []
        self.refused = 0

    def answer(self) -> RateLimitHeaders:
        now = self.clock.time() + self.skew  # the server's wall clock
        self.stamps = [stamp for stamp in self.stamps if stamp + self.window > now]
        if len(self.stamps) >= self.limit:
            self.refused += 1
            wait = self.stamps[0] + self.window - now
            return RateLimitHeaders(
                limit=self.limit, remaining=0, reset=math.ceil(self.stamps[0] + self.window),
                retry_after=float(math.ceil(wait)),
            )  # fmt: skip
        self.stamps.append(now)
        return RateLimitHeaders(
            limit=self.limit,
            remaining=self.limit - len(self.stamps),
            reset=math.ceil(self.stamps[0] + self.window),
        )


async def pull(
    lim: SlidingWindowLimiter, clock: FakeClock, server: WindowServer, requests: int
) -> list[float]:
    """One request at a time, each answered 37 ms after it was sent; a 429 pauses the limiter."""
    sent: list[float] = []
    while len(sent) < requests:
        grant = await lim.acquire(1)
        clock.now += 0.037
        headers = server.answer()
        lim.release(1, headers, grant)
        if headers.retry_after is not None:
            lim.pause(headers.retry_after)
        else:
            sent.append(clock.monotonic())
    return sent


async def test_a_server_window_shorter_than_told_is_learned_from_its_reset(
    clock: FakeClock,
) -> None:
    """Told 60 s against a 2-second window: 95 requests, 10 a window, end within 1.2x its bound."""
    clock.wall_start = 1_800_000_000.3  # the server's whole seconds fall mid-pull
    lim = limiter(clock, limit=10, window=60.0)
    server = WindowServer(clock, limit=10, window=2.0)
    sent = await pull(lim, clock, server, 95)
    bound = (math.ceil(95 / 10) - 1) * 2.0 + 0.037
    assert server.refused == 0
    assert sent[-1] <= 1.2 * bound  # was 540 s: nine configured windows
    assert 2.0 <= lim.window_in_force < 2.2
    assert lim.state().window == lim.window_in_force and lim.window == 60.0


async def test_a_server_window_longer_than_told_is_still_never_exceeded(
    clock: FakeClock,
) -> None:
    """Told 60 s against a 120-second window: no 429 (there were 3), the longer window learned."""
    lim = limiter(clock, limit=10, window=60.0)
    server = WindowServer(clock, limit=10, window=120.0)
    await pull(lim, clock, server, 35)
    assert server.refused == 0
    assert 120.0 <= lim.window_in_force < 121.5


async def test_a_429_under_a_learned_window_returns_to_the_configured_one_for_good(
    clock: FakeClock,
) -> None:
    """The server's clock 1.5 s behind: the short estimate meets one 429, then 60 s holds."""
    clock.wall_start = 1_800_000_000.3
    lim = limiter(clock, limit=10, window=60.0)
    server = WindowServer(clock, limit=10, window=2.0, skew=-1.5)
    await pull(lim, clock, server, 35)
    assert server.refused == 1
    assert lim.window_in_force == 60.0


async def test_no_window_is_learned_from_units_that_are_not_this_clients(
    clock: FakeClock,
) -> None:
    """A restart into a window holding an earlier run's units: its reset teaches nothing."""
    lim = limiter(clock, limit=10, window=60.0)
    await send(lim, clock, [], RateLimitHeaders(limit=10, remaining=2, reset=clock.time() + 1))
    assert lim.window_in_force == 60.0


async def test_another_spenders_units_never_shorten_a_window_told_right(clock: FakeClock) -> None:
    """Two clients on one key, told the server's 2 s: neither learns a shorter window."""
    clock.wall_start = 1_800_000_000.6
    server = WindowServer(clock, limit=20, window=2.0)
    first, second = limiter(clock, limit=20, window=2.0), limiter(clock, limit=20, window=2.0)
    for number in range(400):
        lim = first if number % 3 else second  # the first spends twice as much
        if number == 1:
            clock.now += 0.4  # the second starts later
        grant = await lim.acquire(1)
        clock.now += 0.011
        headers = server.answer()
        lim.release(1, headers, grant)
        if headers.retry_after is not None:
            lim.pause(headers.retry_after)
        assert first.window_in_force == second.window_in_force == 2.0
