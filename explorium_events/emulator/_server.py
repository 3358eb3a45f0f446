"""Running the emulator: on a loopback port for tests, or until a signal for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from aiohttp.log import access_logger

from ._app import CLOCK_KEY, STATS_KEY, create_app, reconfigure_app, reset_app
from ._clock import EmulatorClock
from ._config import EmulatorConfig
from ._delivery import DeliveryOptions, DeliveryReport, deliver
from ._enrollments import PUSH_KEY, PushStats
from ._stats import EmulatorStats

__all__ = ["Emulator", "serve_forever"]

_log = logging.getLogger("explorium_events.emulator")


class Emulator:
    """The emulator served on a local port for the length of an ``async with`` block.

    ``Emulator(config)`` binds 127.0.0.1 on an ephemeral port (``port=0``) when
    entered; ``url`` is then the base URL to give a client, and ``stats`` the
    live counters. Leaving the block stops the server; an Emulator runs once.

    ``shutdown_timeout`` bounds how long leaving waits for requests still being
    handled (a latency spike, say) before cancelling them. ``access_log=True``
    logs each request on aiohttp's ``aiohttp.access`` logger (headers, and so the
    key, are not part of its format).
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 1.0,
        access_log: bool = False,
    ) -> None:
        self.config = config or EmulatorConfig()
        self._host = host
        self._port = port
        self._shutdown_timeout = shutdown_timeout
        self._access_log = access_log
        self._app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._closed = False

    def __repr__(self) -> str:
        if self._url is None:
            state = "closed" if self._closed else "not started"
            return f"<Emulator {state}>"
        stats = self.stats
        return f"<Emulator url={self._url!r} requests={stats.requests} in_flight={stats.in_flight}>"

    @property
    def url(self) -> str:
        """Base URL of the running server, such as ``http://127.0.0.1:54321``."""
        if self._url is None:
            raise RuntimeError("the emulator is not running: use `async with Emulator(...)`")
        return self._url

    @property
    def app(self) -> web.Application:
        """The aiohttp application being served."""
        if self._app is None:
            raise RuntimeError("the emulator has not been started")
        return self._app

    @property
    def stats(self) -> EmulatorStats:
        """Live counters of the running app (they survive the server's stop)."""
        return self.app[STATS_KEY]

    @property
    def clock(self) -> EmulatorClock:
        """The emulator's clock: ``emulator.clock.advance(timedelta(days=7))`` and new
        events appear (see ``_clock``)."""
        return self.app[CLOCK_KEY]

    @property
    def push(self) -> PushStats:
        """Live counters of the push side: enrollment calls, deliveries, faults."""
        return self.app[PUSH_KEY].stats

    async def deliver(self, options: DeliveryOptions | None = None) -> DeliveryReport:
        """One round of new events for every enrollment, delivered to the webhooks; see
        ``DeliveryOptions``. Returns once each is acknowledged or given up."""
        return await deliver(self.app, options)

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change how the running emulator behaves, from the next request on.

        Takes EmulatorConfig's fields (``error_rate=0.2``, ``latency_ms=50``,
        ``rate_limit=10``, ``seed=3``...); ``config`` becomes the new config, which is
        returned. The fault draws restart from the seed; a new rate limit, window or
        clock starts with an empty window; a new ``now`` restarts ``clock`` there.
        ValueError for a value EmulatorConfig refuses. Call it from the emulator's event
        loop thread.

        A new ``seed`` drives the push side too, from then on: new enrollment ids, the
        event_ids, types, data and fault draws of each later ``deliver()`` round, and the
        connectivity check's events. Enrollments and webhooks stay, and the rounds go on
        counting (a round's draws are keyed by seed and round number, so no event_id
        comes twice): ``configure(seed=7)`` before any push call pushes exactly what
        ``Emulator(EmulatorConfig(seed=7))`` would.
        """
        self.config = reconfigure_app(self.app, **changes)
        return self.config

    def reset(self) -> None:
        """Zero the counters and empty every rate window, as ``POST /_emulator/reset`` does."""
        reset_app(self.app)

    async def start(self) -> None:
        """Start serving; ``async with`` calls this."""
        if self._closed or self._runner is not None:
            raise RuntimeError("an Emulator runs once: build a new one")
        self._app = create_app(self.config)
        self._runner = web.AppRunner(
            self._app,
            shutdown_timeout=self._shutdown_timeout,
            access_log=access_logger if self._access_log else None,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await self.aclose()
            raise
        self._url = _base_url(self._runner)

    async def aclose(self) -> None:
        """Stop serving; idempotent."""
        self._closed = True
        self._url = None
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _base_url(runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def serve_forever(
    config: EmulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    on_ready: Callable[[str], Any] | None = None,
) -> None:
    """Serve the emulator until SIGINT or SIGTERM, then shut down cleanly.

    ``on_ready`` is called with the base URL once the server listens (useful with
    ``port=0``); the URL is also logged at INFO on ``explorium_events.emulator``.
    Cancelling the task stops the server as well. Meant for
    ``asyncio.run(serve_forever(config))``.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[tuple[signal.Signals, Any]] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # no signal support here (Windows, a worker thread): rely on cancellation
        installed.append((sig, previous))
    try:
        async with Emulator(
            config, host=host, port=port, shutdown_timeout=5.0, access_log=True
        ) as emulator:
            _log.info("emulator: serving %s", emulator.url)
            if on_ready is not None:
                on_ready(emulator.url)
            await stop.wait()
            _log.info("emulator: stopping")
    finally:
        for sig, previous in installed:
            loop.remove_signal_handler(sig)
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(sig, previous)
