"""``explorium-events serve``: the emulator of the Events API on a local port, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging

from .._query import start_of
from . import _flags
from ._common import EXIT_INTERRUPTED, EXIT_OK, PROG, UsageError, report, say
from ._progress import ProgressLogHandler

_SERVE_DESCRIPTION = """\
Run the emulator of the Events API (POST /v1/prospects/events and
/v1/businesses/events, one rate-limit window per key for both) until Ctrl-C or
SIGTERM. It validates requests like the real API (422 with FastAPI-style details),
checks the api_key header (401), rate-limits per key over a sliding window (429 with
Retry-After, X-RateLimit-* headers), and serves deterministic synthetic events: the
same prospect ID and --seed always give the same events. Faults on demand: latency,
5xx, injected 429s, dropped connections, truncated bodies, duplicated events.
GET /_emulator/stats shows what it served; POST /_emulator/reset zeroes the counters.
Its clock starts at --start-time and stands still until moved: POST /_emulator/clock
with {"advance": "7d"} or {"set": "2026-08-01T00:00:00Z"} (no key needed), and events
that happened meanwhile appear, for `sync` to find. Push too: the enrollment and
webhook endpoints (for `enroll`, `enrollments`, `webhook`), and POST
/_emulator/webhooks/deliver pushes new events of every enrolled ID, signed, to the
registered loopback URL (for `listen`); GET /_emulator/push shows those counters.
"""

_SERVE_EPILOG = f"""\
examples:
  # the real API's limits, on port 8787, any key accepted
  {PROG} serve

  # a flaky, slow server that accepts one key only: test your retries against it
  {PROG} serve --api-key my-test-key --latency-ms 200 --error-rate 0.1 --drop-rate 0.02

  # then, from another terminal
  {PROG} fetch --base-url http://127.0.0.1:8787 --api-key my-test-key --ids ids.txt
  curl -s http://127.0.0.1:8787/_emulator/stats

  # a week passes on the emulator: the next sync brings the events of that week
  curl -s -X POST http://127.0.0.1:8787/_emulator/clock -d '{{"advance": "7d"}}'

exit status: 0 after a clean stop; 2 for a bad flag or a port that cannot be used.
"""


def add_parser(subparsers: _flags.Subparsers) -> None:
    """Add ``serve`` and its flags."""
    serve = _flags.add_command(
        subparsers,
        "serve",
        help="run the Events API emulator on a local port, for your own tests",
        description=_SERVE_DESCRIPTION,
        epilog=_SERVE_EPILOG,
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port",
        type=_flags.int_between(0, 65535),
        default=8787,
        help="port; 0: any free one (default: %(default)s)",
    )
    _flags.add_api_key(serve, help="accept only this key (default: any non-empty key)")
    _flags.add_rate_limit(
        serve,
        help="N units per sliding SECONDS-second window per key, or 'off' (default: 200/60)",
    )
    _flags.add_rate_limit_cost(
        serve,
        help="what one unit costs: a request, or each prospect ID in it (default: %(default)s)",
    )
    _flags.add_latency_ms(serve, default=0.0, help="added to every answer (default: %(default)g)")
    serve.add_argument(
        "--latency-jitter-ms",
        metavar="MS",
        type=_flags.number_at_least(0),
        default=0.0,
        help="latency varies by up to this much either way (default: %(default)g)",
    )
    _flags.add_error_rate(
        serve, default=0.0, help="share of requests answered 500/502/503/504 (default: %(default)g)"
    )
    for flag, what in (
        ("--rate-limit-error-rate", "share of requests answered with an injected 429"),
        ("--drop-rate", "share of connections dropped without an answer"),
        ("--truncate-rate", "share of 200 answers cut short"),
    ):
        serve.add_argument(
            flag,
            metavar="P",
            type=_flags.probability_type,
            default=0.0,
            help=f"{what} (default: %(default)g)",
        )
    _flags.add_duplicate_rate(
        serve, default=0.0, help="share of events sent twice (default: %(default)g)"
    )
    _flags.add_seed(serve, help="drives the synthetic events and the faults (default: %(default)s)")
    serve.add_argument(
        "--start-time",
        metavar="WHEN",
        type=_flags.timestamp_type,
        help="where the emulator's clock starts (default: midnight UTC today); move it "
        'with POST /_emulator/clock {"advance": "7d"} and new events appear',
    )
    _flags.add_verbose(serve)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; the exit status."""
    from ..emulator import EmulatorConfig, serve_forever

    rate_limit, rate_window = args.rate_limit
    try:
        config = EmulatorConfig(
            api_key=args.api_key or None,
            rate_limit=rate_limit,
            rate_window=rate_window,
            rate_limit_cost=args.rate_limit_cost,
            latency_ms=args.latency_ms,
            latency_jitter_ms=args.latency_jitter_ms,
            error_rate=args.error_rate,
            rate_limit_error_rate=args.rate_limit_error_rate,
            drop_rate=args.drop_rate,
            truncate_rate=args.truncate_rate,
            duplicate_rate=args.duplicate_rate,
            seed=args.seed,
            now=start_of(args.start_time) if args.start_time else None,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def ready(url: str) -> None:
        limit = (
            "off"
            if rate_limit is None
            else (
                f"{rate_limit} per {rate_window:g}s per "
                f"{'request' if args.rate_limit_cost == 'request' else 'prospect ID'}"
            )
        )
        key = "one key only (--api-key)" if args.api_key else "any non-empty key"
        report(
            args.quiet,
            f"{PROG}: emulator serving {url}  (POST /v1/prospects/events, /v1/businesses/events)",
            f"  rate limit {limit}; accepts {key}; stats at {url}/_emulator/stats",
            f"  try: {PROG} fetch --base-url {url} --api-key "
            f"{'KEY' if args.api_key else 'anything'} --ids ids.txt",
            "  Ctrl-C to stop",
        )

    # aiohttp's access log says one line per request; shown with --verbose, through the
    # handler main() set up for the package's own logs.
    access = logging.getLogger("aiohttp.access")
    saved_access = access.level, access.propagate
    handlers = [
        handler
        for handler in logging.getLogger("explorium_events").handlers
        if isinstance(handler, ProgressLogHandler)
    ]
    if args.verbose:
        for handler in handlers:
            access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
    try:
        asyncio.run(serve_forever(config, host=args.host, port=args.port, on_ready=ready))
    except OSError as exc:
        reason = exc.strerror or exc
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {reason}") from None
    except KeyboardInterrupt:  # a Ctrl-C before the server's own handler was in place
        say(f"{PROG}: emulator interrupted")
        return EXIT_INTERRUPTED
    finally:
        for handler in handlers:
            access.removeHandler(handler)
        access.level, access.propagate = saved_access
    report(args.quiet, f"{PROG}: emulator stopped")
    return EXIT_OK
