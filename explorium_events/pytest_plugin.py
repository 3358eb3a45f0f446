"""The pytest plugin: fixtures running the emulator on a free loopback port, and clients for it.

Installed with the package (a ``pytest11`` entry point), so a project that depends on
explorium-events has these fixtures in its tests with no set-up:

- ``explorium_emulator``: a RunningEmulator, serving in a background thread on its own
  event loop, so that sync and async tests alike can use it. It has ``url`` and
  ``api_key``, its counters (``stats``), and its controls: ``configure(...)`` (faults,
  latency, rate limit, seed), ``reset()``, and its one clock (``clock``, ``advance``):
  moved on, it ends rate windows and brings the events due by then.
- ``explorium_client``: an EventsClient bound to it, for async tests (needs
  pytest-asyncio); closed after the test.
- ``explorium_sync_client``: a SyncEventsClient bound to it, for plain tests.

The emulator's starting config comes from the ``explorium_emulator`` marker, whose
keyword arguments are EmulatorConfig's fields::

    @pytest.mark.explorium_emulator(error_rate=0.2, seed=7)
    def test_survives_errors(explorium_sync_client): ...
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ._client import EventsClient
from ._loop_thread import LoopThread
from ._sync_client import SyncEventsClient
from .emulator import Emulator, EmulatorClock, EmulatorConfig, EmulatorStats

__all__ = ["EMULATOR_API_KEY", "RunningEmulator"]

EMULATOR_API_KEY = "explorium-emulator-test-key"
"""The key the fixture's emulator accepts (any other gets 401); not a secret."""


class RunningEmulator:
    """The emulator, serving 127.0.0.1 on a free port from a background thread.

    Start it with ``start()`` (or ``with RunningEmulator(...)``), stop it with
    ``close()``. Usable from any thread, whether or not an event loop runs there.
    """

    def __init__(self, config: EmulatorConfig | None = None, **settings: Any) -> None:
        if config is None:
            settings.setdefault("api_key", EMULATOR_API_KEY)
            config = EmulatorConfig(**settings)
        elif settings:
            raise TypeError("give an EmulatorConfig or its fields, not both")
        self._emulator = Emulator(config)
        self._thread = LoopThread("explorium-emulator")

    def start(self) -> None:
        """Start serving (the thread, the loop, the server)."""
        self._thread.run(self._emulator.start())

    def close(self) -> None:
        """Stop serving and stop the thread. Idempotent."""
        if not self._thread.stopped:
            try:
                self._thread.run(self._emulator.aclose())
            finally:
                self._thread.stop()

    def __enter__(self) -> RunningEmulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The base URL to give a client, such as ``http://127.0.0.1:54321``."""
        return self._emulator.url

    @property
    def api_key(self) -> str:
        """A key the emulator accepts."""
        return self._emulator.config.api_key or EMULATOR_API_KEY

    @property
    def config(self) -> EmulatorConfig:
        """The config in force."""
        return self._emulator.config

    @property
    def stats(self) -> EmulatorStats:
        """The live counters: requests, requests_by_status, ids_seen, peak_in_flight..."""
        return self._emulator.stats

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change the running emulator (``error_rate=0.3``, ``latency_ms=50``, ``rate_limit=5``).

        Takes EmulatorConfig's fields; applies from the next request on; returns the new
        config. See ``Emulator.configure``.
        """

        async def apply() -> EmulatorConfig:
            return self._emulator.configure(**changes)

        return self._thread.run(apply())

    def reset(self) -> None:
        """Zero the counters and empty every rate window."""

        async def apply() -> None:
            self._emulator.reset()

        self._thread.run(apply())

    @property
    def clock(self) -> EmulatorClock:
        """The emulator's one clock (``clock.now``; see ``explorium_events.emulator``)."""
        return self._emulator.clock

    def advance(self, by: float | dt.timedelta) -> None:
        """Move the emulator's clock forward by ``by`` (seconds, or a timedelta).

        Its rate windows age as much (``advance(61)`` ends a 60-second window), and the
        events that became visible meanwhile appear (``advance(timedelta(days=7))``).
        ValueError for a move backward.
        """
        step = by if isinstance(by, dt.timedelta) else dt.timedelta(seconds=by)
        if not step >= dt.timedelta(0):
            raise ValueError(f"the clock only moves forward, not by {by!r}")

        async def apply() -> None:
            self._emulator.clock.advance(step)

        self._thread.run(apply())

    def client(self, **settings: Any) -> EventsClient:
        """An EventsClient bound to this emulator; other settings as EventsClient takes them."""
        settings.setdefault("api_key", self.api_key)
        settings.setdefault("base_url", self.url)
        return EventsClient(**settings)

    def sync_client(self, **settings: Any) -> SyncEventsClient:
        """A SyncEventsClient bound to this emulator."""
        settings.setdefault("api_key", self.api_key)
        settings.setdefault("base_url", self.url)
        return SyncEventsClient(**settings)

    def __repr__(self) -> str:
        return f"<RunningEmulator {self._emulator!r}>"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "explorium_emulator(**fields): the EmulatorConfig fields of the explorium_emulator "
        "fixture (error_rate=0.1, latency_ms=20, rate_limit=None, seed=7, ...)",
    )


@pytest.fixture
def explorium_emulator(request: pytest.FixtureRequest) -> Iterator[RunningEmulator]:
    """The emulator on a free loopback port, for this test; see RunningEmulator."""
    marker = request.node.get_closest_marker("explorium_emulator")
    settings = dict(marker.kwargs) if marker is not None else {}
    with RunningEmulator(**settings) as emulator:
        yield emulator


@pytest.fixture
def explorium_sync_client(explorium_emulator: RunningEmulator) -> Iterator[SyncEventsClient]:
    """A SyncEventsClient bound to ``explorium_emulator``, closed after the test."""
    with explorium_emulator.sync_client() as client:
        yield client


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the async fixture says what it needs instead

    @pytest.fixture
    def explorium_client() -> None:
        """Needs pytest-asyncio, which is not installed."""
        pytest.fail("the explorium_client fixture needs pytest-asyncio: pip install pytest-asyncio")

else:

    @pytest_asyncio.fixture
    async def explorium_client(  # type: ignore[misc]  # one of two definitions
        explorium_emulator: RunningEmulator,
    ) -> AsyncIterator[EventsClient]:
        """An EventsClient bound to ``explorium_emulator``, closed after the test."""
        async with explorium_emulator.client() as client:
            yield client
