"""Faults on demand, drawn from one ``random.Random(seed)`` that the app owns.

Each request draws in a fixed order, whatever the rates: latency, then (for a
request that passed auth and validation) an injected 429, then the outcome
(drop, 5xx, truncation or none), then a latency spike, then one draw per event
for duplicates. With the same seed and the same sequence of requests, the same
faults happen.
"""

from __future__ import annotations

import dataclasses
import math
import random
import uuid
from typing import Any, Literal

from ._config import EmulatorConfig

__all__ = ["Fault", "FaultInjector"]

_SERVER_ERRORS = {
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Fault:
    """What goes wrong with one admitted request.

    ``kind`` is ``"none"``, ``"drop"`` (close without answering), ``"server_error"``
    (``status`` and ``body`` say which) or ``"truncate"`` (send ``keep`` of the
    body's bytes, as a fraction in [0, 1), then close). ``spike`` is extra delay
    in seconds.
    """

    kind: Literal["none", "drop", "server_error", "truncate"] = "none"
    status: int = 200
    body: dict[str, Any] = dataclasses.field(default_factory=dict)
    keep: float = 0.0
    spike: float = 0.0


class FaultInjector:
    """Draws the faults of each request from the config's rates and seed."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._rng = random.Random(config.seed)

    def __repr__(self) -> str:
        c = self._config
        return (
            f"<FaultInjector error_rate={c.error_rate} rate_limit_error_rate="
            f"{c.rate_limit_error_rate} drop_rate={c.drop_rate} truncate_rate="
            f"{c.truncate_rate} duplicate_rate={c.duplicate_rate} slow_rate={c.slow_rate}>"
        )

    def latency(self) -> float:
        """Return this request's added latency in seconds (never negative)."""
        c = self._config
        jitter = self._rng.uniform(-c.latency_jitter_ms, c.latency_jitter_ms)
        return max(0.0, c.latency_ms + jitter) / 1000.0

    def injected_retry_after(self) -> int | None:
        """Return the ``Retry-After`` of an injected 429, or None when there is none."""
        if self._rng.random() < self._config.rate_limit_error_rate:
            return math.ceil(self._config.retry_after_seconds)
        return None

    def draw(self) -> Fault:
        """Return the fault (possibly none) of an admitted request."""
        c = self._config
        outcome = self._rng.random()
        status = self._rng.choice(tuple(_SERVER_ERRORS))
        detailed_body = self._rng.random() < 0.5
        keep = self._rng.random()
        spike = c.slow_ms / 1000.0 if self._rng.random() < c.slow_rate else 0.0
        if outcome < c.drop_rate:
            return Fault(kind="drop", status=0, spike=spike)
        outcome -= c.drop_rate
        if outcome < c.error_rate:
            message = _SERVER_ERRORS[status]
            body: dict[str, Any] = (
                {"details": message, "correlation_id": uuid.uuid4().hex}
                if detailed_body
                else {"error": message}
            )
            return Fault(kind="server_error", status=status, body=body, spike=spike)
        outcome -= c.error_rate
        if outcome < c.truncate_rate:
            return Fault(kind="truncate", keep=keep, spike=spike)
        return Fault(spike=spike)

    def duplicate(self, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """Return the events with some sent twice (each copy right after its original)."""
        rate = self._config.duplicate_rate
        out: list[dict[str, Any]] = []
        copies = 0
        for event in events:
            out.append(event)
            if self._rng.random() < rate:
                out.append(event)
                copies += 1
        return out, copies
