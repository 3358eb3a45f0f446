"""``explorium-events listen``: receive pushed events, verify them, store each durably, once."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import stat
import sys

from .._checks import MILLISECOND
from .._errors import ConfigurationError
from .._paths import clash, output_problem
from .._receiver import (
    DEFAULT_HOST,
    DEFAULT_MAX_BODY,
    DEFAULT_PORT,
    DEFAULT_READ_TIMEOUT,
    RECEIVER_FORMATS,
    Receiver,
    serve_receiver,
)
from .._verify import DEFAULT_TOLERANCE
from . import _flags
from ._common import EXIT_OK, EXIT_USAGE, PROG, UsageError, report, say

_DESCRIPTION = f"""\
Receive the events Explorium pushes to your webhook. Each delivery's signature and
timestamp are checked (401 when they fail, 400 for a body that is not an event, 413 over
--max-body-bytes, 408 for a body not all in within --read-timeout); the event is then
stored durably (SQLite: committed; JSONL: flushed and fsynced) before the 200 goes back,
and a redelivery of a stored event_id is dropped, also after a restart. Binds
{DEFAULT_HOST} unless --host says otherwise: put a TLS reverse proxy in front (see the
README). GET /health answers the counters. SIGTERM or Ctrl-C stops it cleanly, after the
deliveries in flight.
"""

_EPILOG = f"""\
examples:
  {PROG} listen --port {DEFAULT_PORT} --secret-file wh.secret --out events.db
  {PROG} listen --secret-file wh.secret --out events.jsonl --tolerance 120
"""


def add_parser(subparsers: _flags.Subparsers) -> None:
    """Add ``listen`` to the command line."""
    parser = _flags.add_command(
        subparsers,
        "listen",
        help="receive pushed events: verify, store durably, drop redeliveries",
        description=_DESCRIPTION,
        epilog=_EPILOG,
    )
    parser.add_argument("--secret-file", metavar="PATH", required=True, help="the webhook secret")
    parser.add_argument(
        "--out",
        metavar="FILE",
        required=True,
        help="events.db (SQLite: prospects' events in the events table, businesses' in "
        "business_events) or events.jsonl",
    )
    parser.add_argument(
        "--format", choices=RECEIVER_FORMATS, help="default: from the --out extension"
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=_flags.int_between(0, 65535),
        default=DEFAULT_PORT,
        help="port (default: %(default)s; 0: any free one, shown when listening)",
    )
    parser.add_argument(
        "--tolerance",
        metavar="SECONDS",
        type=_flags.number_at_least(0),
        default=DEFAULT_TOLERANCE,
        help="how far X-Timestamp may be from now, either way (default: %(default)g)",
    )
    parser.add_argument(
        "--max-body-bytes",
        metavar="N",
        type=_flags.int_between(1),
        default=DEFAULT_MAX_BODY,
        help="refuse larger bodies with 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--read-timeout",
        metavar="SECONDS",
        type=_flags.number_at_least(MILLISECOND),
        default=DEFAULT_READ_TIMEOUT,
        help="answer 408 to a delivery whose body is not all in by then, so a client that "
        "stalls holds nothing (default: %(default)g)",
    )
    _flags.add_verbose(parser)


def _read_secret(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            secret = handle.read(4096).strip()
        mode = os.stat(path).st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"cannot read --secret-file {path}: {getattr(exc, 'strerror', None) or 'not text'}"
        ) from None
    if not secret:
        raise ConfigurationError(f"--secret-file {path} is empty")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logging.getLogger("explorium_events").warning(
            "%s can be read by others (mode %o): chmod 600 it", path, stat.S_IMODE(mode)
        )
    return secret


def _check_files(args: argparse.Namespace) -> None:
    """Refuse, before anything is read or opened, an --out that is the secret or unwritable."""
    fmt = _flags.output_format(args.out, args.format)
    problem = clash([("--secret-file", args.secret_file)], [("--out", args.out)])
    if problem is None and fmt in RECEIVER_FORMATS:
        problem = output_problem("--out", args.out, sqlite=fmt == "sqlite")
    if problem is not None:
        raise UsageError(problem)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; the exit status."""
    command = f"{PROG} listen"
    _check_files(args)
    try:
        receiver = Receiver(
            secret=_read_secret(args.secret_file),
            out=args.out,
            fmt=args.format,
            tolerance=args.tolerance,
            max_body=args.max_body_bytes,
            read_timeout=args.read_timeout,
        )
    except ConfigurationError as exc:
        say(f"{command}: error: {exc}")
        return EXIT_USAGE
    logger = logging.getLogger("explorium_events")
    if logger.getEffectiveLevel() > logging.INFO and not args.quiet:
        logger.setLevel(logging.INFO)  # one line per delivery: what a receiver's log is for

    def ready(url: str) -> None:
        report(
            args.quiet,
            f"{command}: listening on {url} (POST: deliveries; GET /health); "
            f"storing into {args.out} ({receiver.format})",
        )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        await serve_receiver(receiver, host=args.host, port=args.port, stop=stop, on_ready=ready)

    try:
        asyncio.run(main())
    except OSError as exc:
        say(f"{command}: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return EXIT_USAGE
    except ConfigurationError as exc:
        say(f"{command}: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        pass
    counts = receiver.counts
    report(
        args.quiet,
        f"{command}: stopped; {counts.stored:,} stored, {counts.duplicates:,} redeliveries "
        f"dropped, {counts.unauthorized:,} refused (401), {counts.bad_request:,} bad (400), "
        f"{counts.too_large:,} too large (413), {counts.timed_out:,} too slow (408)",
    )
    sys.stderr.flush()
    return EXIT_OK
