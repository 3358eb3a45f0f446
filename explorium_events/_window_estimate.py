"""The server's window length, learned from its answers: the limiter's window in force.

A client told the wrong window paces wrongly: told 60 s against a 2-second window, it
waits 30 times too long; told 60 s against a longer one, it resends too early. Every
answer counts the units in the server's window (``limit - remaining``) and says when
the oldest of them leaves (``X-RateLimit-Reset``, a Unix timestamp rounded up to whole
seconds). While those units are all this client's own (the limiter checks that), the
counted ones are its latest ``used`` units in the server's order, and the server
stamped each unit after this client granted it and before the answer came back. So
each answer bounds the window ``W`` three ways:

- ``W <= reset - granted(oldest unit still counted)``: from the server's reset;
- ``W <= answered(this request) - granted(newest unit no longer counted)``: it left
  the window before this request was stamped; no rounding, no server clock in it;
- ``W > reset - 1 - answered(this request)``: the reset is rounded up by less than 1 s.

The upper bounds' smallest is the estimate. The second is sound whoever else spends
the key (their units only make this client's units look older). The first assumes the
oldest counted unit is this client's, which the limiter's check ("every counted unit
could be ours") cannot prove while another process's few older units hide among this
client's unstamped ones: taken only when it shows a window at most half the
configured one (what breaks a pull told 60 s against 2 s out of its first wait), it
cannot shave a correctly told window. A 429 while a shorter estimate is in force drops
it for good (see the limiter): the last guard, also against a server clock that
disagrees with this one. The lower bound only tells that the window is longer than
configured; the estimate is what then paces.

Requests may reach the server in another order than they were sent, by up to
``slack`` units (the most units ever in flight beside a request): the answered request's place
in the server's order, and a unit's place in send order, each differ by that much at
most, so the bounds take units ``2 * slack`` further from the edge in send order.
"""

from __future__ import annotations

import collections

# Sends remembered at most; past that the oldest are dropped (and bounds that would
# need them are not taken).
_MOST_SENDS = 10_000


class WindowEstimate:
    """Bounds on the server's window length, tightened by every answer."""

    def __init__(self, configured: float) -> None:
        self._configured = configured
        # (last unit of the request in send order, wall-clock time it was granted)
        self._sends: collections.deque[tuple[int, float]] = collections.deque()
        self._first_unit = 1  # the first unit whose grant time is still known
        self._slack = 0
        self._enabled = True
        self.value: float | None = None  # the smallest upper bound so far
        self._by_reset: float | None = None  # the smallest first bound, however long
        self.lower = 0.0  # the largest lower bound so far

    @property
    def enabled(self) -> bool:
        """Whether answers still teach it (False after forget())."""
        return self._enabled

    def sent(self, through: int, wall: float, in_flight: int) -> None:
        """A request was granted at ``wall``: units up to ``through``, ``in_flight`` others out."""
        if not self._enabled:
            return
        self._slack = max(self._slack, in_flight)
        self._sends.append((through, wall))
        if len(self._sends) > _MOST_SENDS:
            self._first_unit = self._sends.popleft()[0] + 1

    def _granted(self, unit: int) -> float | None:
        """When the request holding ``unit`` was granted, if still known."""
        if unit < self._first_unit:
            return None
        for last, wall in self._sends:
            if last >= unit:
                return wall
        return None

    def observe(self, *, reset: float, used: int, through: int, now: float) -> None:
        """An answer, at wall-clock ``now``, to the request granted up to unit ``through``:
        ``used`` units counted, all this client's, the oldest leaving at ``reset``."""
        if not self._enabled or used < 1:
            return
        self.lower = max(self.lower, reset - 1.0 - now)
        gone = through - used - 2 * self._slack  # surely out of the server's window
        # The oldest counted unit, in send order, is ``gone + 1`` or later. Before the
        # first unit this client ever sent, it is that first unit; before a unit whose
        # grant time was dropped as gone for good, the count holds others' units.
        oldest_unit: int | None = gone + 1
        if gone + 1 < self._first_unit:
            oldest_unit = 1 if self._first_unit == 1 else None
        sends = self._sends
        # Units before ``gone`` left the server's window for good (it only slides
        # forward): their grant times are no longer needed.
        while len(sends) > 1 and sends[0][0] < gone:
            self._first_unit = sends.popleft()[0] + 1
        bounds = []
        if gone >= 1:
            left = self._granted(gone)
            if left is not None:
                bounds.append(now - left)
        oldest = self._granted(oldest_unit) if oldest_unit is not None else None
        if oldest is not None:
            by_reset = reset - oldest
            if self._by_reset is None or by_reset < self._by_reset:
                self._by_reset = by_reset
            if by_reset <= self._configured / 2:
                bounds.append(by_reset)
        for bound in bounds:
            if bound > 0 and (self.value is None or bound < self.value):
                self.value = bound

    def window(self) -> float:
        """The window to pace by: the estimate when shorter, or when the server's is longer."""
        configured = self._configured
        if self.lower > configured:
            # Longer than told: pace by the tightest upper bound, never below the lower.
            uppers = [bound for bound in (self.value, self._by_reset) if bound is not None]
            return max(min(uppers, default=self.lower), self.lower)
        value = self.value
        return configured if value is None else min(value, configured)

    def forget(self) -> None:
        """Stop learning and drop the estimate: the configured window holds from now on."""
        self._enabled = False
        self.value = None
        self._by_reset = None
        self.lower = 0.0
        self._sends.clear()

    def __repr__(self) -> str:
        return f"<WindowEstimate value={self.value} lower={self.lower} enabled={self._enabled}>"
