"""A local stand-in for Explorium's Events API, fetch and push: no network, no key.

Prospect and business events, enrollments and webhooks, with signed deliveries.

It validates, authenticates and rate-limits like the documented API, serves
deterministic synthetic events, and injects faults on demand, so a client (the
project's own, or a user's code) can be tested end to end on a laptop::

    from explorium_events.emulator import Emulator, EmulatorConfig, expected_events

    async with Emulator(EmulatorConfig(rate_limit=10, error_rate=0.1)) as emu:
        ...  # point the client at emu.url with any API key
        assert emu.stats.requests_by_status.get(429, 0) == 0
        emu.clock.advance(datetime.timedelta(days=7))  # new events appear (see _clock)

The package is standalone: it uses nothing private from ``explorium_events``.
"""

from ._app import STATS_KEY, create_app
from ._business import expected_business_events, make_business_ids
from ._clock import EmulatorClock, expected_events_at, parse_duration
from ._config import EmulatorConfig
from ._data import expected_events, make_prospect_ids
from ._delivery import DeliveryOptions, DeliveryReport, deliver
from ._enrollments import PUSH_KEY, PushStats
from ._server import Emulator, serve_forever
from ._stats import EmulatorStats

__all__ = [
    "PUSH_KEY",
    "STATS_KEY",
    "DeliveryOptions",
    "DeliveryReport",
    "Emulator",
    "EmulatorClock",
    "EmulatorConfig",
    "EmulatorStats",
    "PushStats",
    "create_app",
    "deliver",
    "expected_business_events",
    "expected_events",
    "expected_events_at",
    "make_business_ids",
    "make_prospect_ids",
    "parse_duration",
    "serve_forever",
]
