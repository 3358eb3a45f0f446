"""``explorium-events sync``: keep a list of prospects current, from cron, a timer, or ``--every``.

The sync itself is ``explorium_events.sync``; this module gives it a command line:
flags (the shared ones from ``_flags``), the files checked before anything is opened
(``--ids``, ``--out`` and ``--state`` three different files, the outputs writable),
one summary per run on standard error (how many new events, since when, any gap said
out loud), Ctrl-C and SIGTERM that stop within a moment with the state consistent
(exit status 130; the next run carries on), and a watch mode (``--every``) that runs
one sync per period until stopped. Prospects only: business IDs cannot be synced yet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator

from .._client import EventsClient
from .._errors import (
    AuthenticationError,
    ConfigurationError,
    ExploriumError,
    InvalidIdError,
    OutputWriteError,
    ServerUnavailableError,
)
from .._paths import Named, clash, output_problem, read_once
from .._retry import RetryPolicy
from .._sinks import FORMATS
from .._sync import DEFAULT_LOOKBACK, SyncSummary, output_path, sync
from . import _entity, _flags
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    descriptor,
    is_terminal,
    plural,
    report,
    say,
)
from ._summary_json import check_target, write_summary

# Waits ``seconds`` unless ``stop`` is set first; True when stopped. Tests inject one.
Wait = Callable[[float, asyncio.Event], Awaitable[bool]]

_DESCRIPTION = """\
Bring only what is new: the events of a list of prospect IDs that this --state has not
written yet. The first run fetches each ID's whole window (the API keeps 3 months); each
later run asks each ID from where its last successful fetch started, minus --lookback,
and writes only events never written before. IDs added to the list get their whole
window; IDs removed leave the state. A daily sync of an unchanged list costs one
request per 40 IDs.

--out is appended to (JSONL, CSV) or upserted into (SQLite); put {started} in its name
for a new file per run (events-{started}.jsonl). Exactly once across crashes: after
Ctrl-C, a crash or kill -9, run the same command again. The state is a small SQLite
file (its schema is documented and versioned); keep one state per list.
"""

_EPILOG = f"""\
examples:
  # once a day from cron: only the new events, appended
  {PROG} sync --ids crm.txt --state crm.sync --out events.jsonl

  # into SQLite (one row per event), re-reading 30 days for late arrivals
  {PROG} sync --ids crm.txt --state crm.sync --out events.db --lookback 30d

  # a new file per run, for a pipeline that picks files up
  {PROG} sync --ids crm.txt --state crm.sync --out 'inbox/events-{{started}}.jsonl'

  # no cron? run every 6 hours until Ctrl-C or SIGTERM
  {PROG} sync --ids crm.txt --state crm.sync --out events.jsonl --every 6h

  # against the local emulator, whose clock you can move (see `{PROG} serve --help`)
  {PROG} sync --base-url http://127.0.0.1:8787 --api-key anything \\
      --ids crm.txt --state crm.sync --out events.jsonl

exit status:
  0    every ID was fetched; the new events are in --out
  1    some batches failed after their retries (their IDs keep their cursor and are
       asked again next run), the key was refused, the server answered nothing usable
       for --give-up-after seconds, or --out / --state could not be written
  2    usage or input error: the message names the bad value
  130  interrupted (Ctrl-C, SIGTERM): what was written is recorded; run it again
"""


def _duration(text: str) -> dt.timedelta:
    from ..emulator import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _period(text: str) -> dt.timedelta:
    value = _duration(text)
    if value < dt.timedelta(minutes=1):
        raise argparse.ArgumentTypeError(f"{text!r} is shorter than a minute: give 1m or more")
    return value


def add_parser(subparsers: _flags.Subparsers) -> None:
    """Add ``sync`` and its flags."""
    parser = _flags.add_command(
        subparsers,
        "sync",
        help="keep a list current: only the events that are new since the last run",
        description=_DESCRIPTION,
        epilog=_EPILOG,
    )
    parser.add_argument(
        "--ids", metavar="FILE", required=True, help="prospect IDs, one per line ('-': stdin)"
    )
    parser.add_argument(
        "--state", metavar="PATH", required=True, help="the sync's state (made on the first run)"
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        required=True,
        help="where new events go: .jsonl, .csv (appended) or .db (upserted); "
        "{started} in the name: a new file per run",
    )
    _flags.add_format(parser)
    parser.add_argument(
        "--lookback",
        metavar="DURATION",
        type=_duration,
        default=DEFAULT_LOOKBACK,
        help="re-read this much before each ID's cursor, for events that arrive late or "
        f"carry a coarse date (default: {DEFAULT_LOOKBACK.days}d)",
    )
    parser.add_argument(
        "--every",
        metavar="DURATION",
        type=_period,
        help="watch mode: run one sync per DURATION (6h, 1d, ...) until Ctrl-C or SIGTERM",
    )
    parser.add_argument(
        "--event-types",
        metavar="TYPES",
        type=_entity.parse_event_types,
        default=None,
        help="comma-separated prospect event types: role, company, anniversary or their "
        "full names (default: all three); one state keeps one set",
    )
    parser.add_argument(
        "--skip-invalid", action="store_true", help="skip values that are not prospect IDs"
    )
    _flags.add_csv_raw_cells(parser)
    _flags.add_base_url(parser)
    _flags.add_api_key(parser)
    _flags.add_concurrency(parser)
    _flags.add_rate_limit(parser)
    _flags.add_rate_limit_cost(parser)
    _flags.add_max_attempts(parser)
    _flags.add_give_up_after(parser)
    _flags.add_summary_json(parser)
    _flags.add_rate_limit_store(parser)
    _flags.add_verbose(parser)


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def summary_lines(summary: SyncSummary, source: str) -> list[str]:
    """What a person reads after a run: new events, since when, any gap, what failed."""
    if summary.since is None:
        since = "(the first run of this list: each ID's whole window, the last 3 months)"
    else:
        asked = summary.since - summary.lookback
        since = (
            f"since {_when(summary.since)} (asked from {asked:%Y-%m-%d}, "
            f"a {summary.lookback.days}-day lookback)"
        )
    head = "Interrupted" if summary.interrupted else "Synced" if summary.complete else "Unfinished"
    lines = [f"{head}: {plural(summary.new_events, 'new event')} {since}."]
    if summary.new_ids and summary.since is not None:
        lines.append(f"  new IDs     {summary.new_ids:,}: their whole window was fetched")
    lines.append(
        f"  list        {source}: {plural(summary.ids, 'ID')}; "
        f"{summary.removed_ids:,} removed since the last run, {summary.invalid:,} invalid, "
        f"{summary.duplicates:,} repeated"
    )
    lines.append(
        f"  this run    {plural(summary.requests, 'request')} "
        f"({plural(summary.retries, 'retry', 'retries')}, {summary.rate_limited:,} answered "
        f"429); {summary.events_seen:,} events seen, "
        f"{summary.events_seen - summary.new_events:,} already written before; "
        f"{summary.elapsed:.1f}s"
    )
    lines.append(f"  output      {summary.output}")
    lines.append(f"  state       {summary.state}")
    if summary.gap is not None:
        start, end = summary.gap
        lines.append(
            f"  GAP         the last sync was {_when(start)}, more than 3 months ago: events "
            f"dated {start:%Y-%m-%d} to {end:%Y-%m-%d} may have been missed (the API no "
            "longer has them). Run at least every few weeks."
        )
    if summary.failed:
        lines.append(
            f"  FAILED      {plural(summary.failed, 'ID')} after their retries: they keep "
            "their cursor and are asked again next run"
        )
    if summary.not_tried and not summary.interrupted:
        lines.append(f"  not tried   {summary.not_tried:,} IDs: asked again next run")
    if summary.interrupted:
        lines.append(
            f"  resume      {summary.synced:,} IDs were done and recorded; run the same "
            "command again to do the rest"
        )
    return lines


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop``; a second one cancels the run outright."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and task is not None:
            task.cancel()
        stop.set()

    installed = []
    for number in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(number) is signal.SIG_IGN:
            continue  # ignored by whoever started us (nohup, a background job): keep it so
        try:
            loop.add_signal_handler(number, on_signal)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(number)
    try:
        yield
    finally:
        for number in installed:
            loop.remove_signal_handler(number)


async def _sleep_unless_stopped(seconds: float, stop: asyncio.Event) -> bool:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()


async def _run(args: argparse.Namespace, client: EventsClient, wait: Wait) -> int:
    stop = asyncio.Event()
    status = EXIT_OK
    source = "standard input" if args.ids == "-" else args.ids
    ids: str = "/dev/stdin" if args.ids == "-" else args.ids
    with _stop_on_signals(stop):
        async with client:
            while True:
                began = asyncio.get_running_loop().time()
                try:
                    summary = await sync(
                        client,
                        ids,
                        args.out,
                        state=args.state,
                        lookback=args.lookback,
                        event_types=args.event_types,
                        format=args.format,
                        skip_invalid=args.skip_invalid,
                        stop=stop,
                        csv_raw_cells=args.csv_raw_cells,
                    )
                except (ConfigurationError, InvalidIdError) as error:
                    say(f"{PROG} sync: error: {error}")
                    return EXIT_USAGE
                except AuthenticationError as error:
                    say(
                        f"{PROG} sync: the API refused the key (HTTP {error.status}): nothing "
                        "more was sent; what was done is recorded. Check --api-key or "
                        "EXPLORIUM_API_KEY."
                    )
                    status = EXIT_FAILED
                    _stopped(args, status, "key_refused", f"HTTP {error.status}")
                except ServerUnavailableError as error:
                    say(
                        f"{PROG} sync: stopped: {error.message}. What was done is recorded; "
                        "the rest is asked next run."
                    )
                    status = EXIT_FAILED
                    _stopped(args, status, "gave_up", error.message)
                except OutputWriteError as error:
                    say(
                        f"{PROG} sync: error: {error}. The state keeps only what was written "
                        "whole: fix the cause, then run the same command again."
                    )
                    status = EXIT_FAILED
                    _stopped(args, status, "write_failed", str(error))
                except asyncio.CancelledError:  # a second signal
                    say(f"{PROG} sync: interrupted; run the same command again to carry on")
                    return EXIT_INTERRUPTED
                else:
                    lines = summary_lines(summary, source)
                    report(args.quiet, *lines)
                    if args.quiet:  # a gap is a loss the exit status cannot tell
                        gap = [line.strip() for line in lines if line.startswith("  GAP")]
                        say(*(f"{PROG} sync: warning: {line}" for line in gap))
                    status = (
                        EXIT_INTERRUPTED
                        if summary.interrupted
                        else EXIT_OK
                        if summary.complete
                        else EXIT_FAILED
                    )
                    write_summary(args.summary_json, "sync", status, sync_figures(summary, source))
                    if summary.interrupted:
                        return EXIT_INTERRUPTED
                if args.every is None:
                    return status
                took = asyncio.get_running_loop().time() - began
                pause = max(args.every.total_seconds() - took, 0.0)
                report(
                    args.quiet, f"  next run    in {pause / 3600:.2f}h (--every); Ctrl-C to stop"
                )
                if await wait(pause, stop):
                    say(f"{PROG} sync: stopped while waiting; the state is consistent")
                    return EXIT_INTERRUPTED


def run(args: argparse.Namespace, *, wait: Wait | None = None) -> int:
    """Run ``sync`` (once, or every ``--every``); the exit status. ``wait``: for tests."""
    for name in args.event_types or ():
        if _entity.event_types_problem("prospect", [name]) is not None:
            raise UsageError(
                f"--event-types: {name!r} is a business event type, and sync keeps lists of "
                "prospects only (business IDs cannot be synced yet): give prospect event types"
            )
    if args.ids == "-" and is_terminal(sys.stdin):
        raise UsageError("no prospect IDs: give --ids FILE, or pipe them in with --ids -")
    if args.every is not None:
        once = read_once(None if args.ids == "-" else args.ids)
        if once is not None:
            # A second run would find a pipe empty (and forget every ID) or wait on a FIFO.
            raise UsageError(
                f"--every reads --ids again each run, and {args.ids} is {once}; save the IDs "
                "to a file first (e.g. `cat ... > ids.txt`), then pass --ids ids.txt"
            )
    _check_files(args)
    rate_limit, rate_window = args.rate_limit
    try:
        client = EventsClient(
            api_key=args.api_key,
            base_url=args.base_url,
            max_concurrency=args.concurrency,
            rate_limit=rate_limit,
            rate_window=rate_window,
            rate_limit_cost=args.rate_limit_cost,
            retry=RetryPolicy(max_attempts=args.max_attempts),
            give_up_after=args.give_up_after,
            rate_limit_store=args.rate_limit_store,
        )
    except ExploriumError as error:
        raise UsageError(str(error)) from None
    try:
        return asyncio.run(_run(args, client, wait or _sleep_unless_stopped))
    except KeyboardInterrupt:
        say(f"{PROG} sync: interrupted; run the same command again to carry on")
        return EXIT_INTERRUPTED


def _check_files(args: argparse.Namespace) -> None:
    """Refuse, before anything is read or opened, files that clash or cannot be written."""
    # The name this run would write ({started} filled in): its folder must exist.
    out = output_path(args.out, dt.datetime.now(dt.UTC))
    ids = None if args.ids == "-" else args.ids
    inputs: list[Named] = [
        ("--ids", ids) if ids is not None else ("standard input", descriptor(sys.stdin))
    ]
    problem = clash(inputs, [("--out", out), ("--state", args.state)])
    if problem is not None:
        raise UsageError(problem)
    fmt = _flags.output_format(args.out, args.format)
    if FORMATS[fmt].resume == "none":
        raise UsageError(
            f"--out {args.out}: a sync adds to its output every run, and --format {fmt} (one "
            "JSON array, whole once closed) cannot be added to: write JSONL (.jsonl), CSV "
            "or SQLite (.db)"
        )
    if problem is None:
        problem = output_problem("--out", out, sqlite=fmt == "sqlite", folder=fmt == "parquet")
    if problem is None:
        # What an existing file holds, the state itself tells better ("not a sync state").
        problem = output_problem("--state", args.state, sqlite=True, database=False)
    if problem is not None:
        raise UsageError(problem)
    check_target(
        args.summary_json,
        data_on_stdout=False,
        others=[*inputs, ("--out", out), ("--state", args.state)],
    )


def _stopped(args: argparse.Namespace, status: int, outcome: str, error: str) -> None:
    """--summary-json of a run that stopped before its summary: how, and why."""
    write_summary(args.summary_json, "sync", status, {"outcome": outcome, "error": error})


def sync_figures(summary: SyncSummary, source: str) -> dict[str, object]:
    """Every figure of ``summary_lines``, as JSON values (for --summary-json)."""

    def when(moment: dt.datetime | None) -> str | None:
        return None if moment is None else moment.isoformat(timespec="seconds")

    outcome = "interrupted" if summary.interrupted else "done" if summary.complete else "failed"
    return {
        "outcome": outcome,
        "elapsed_seconds": round(summary.elapsed, 3),
        "started": when(summary.started),
        "since": when(summary.since),
        "asked_from": when(summary.since - summary.lookback) if summary.since else None,
        "previous_run": when(summary.previous_run),
        "lookback_seconds": summary.lookback.total_seconds(),
        "list": {
            "source": source,
            "ids": summary.ids,
            "new_ids": summary.new_ids,
            "removed_ids": summary.removed_ids,
            "invalid": summary.invalid,
            "invalid_examples": [
                {"value": bad.value, "position": bad.position, "reason": bad.reason}
                for bad in summary.invalid_examples
            ],
            "repeated": summary.duplicates,
        },
        "ids": {
            "synced": summary.synced,
            "failed": summary.failed,
            "not_tried": summary.not_tried,
        },
        "events": {
            "new": summary.new_events,
            "seen": summary.events_seen,
            "written_before": summary.events_seen - summary.new_events,
        },
        "requests": {
            "sent": summary.requests,
            "retries": summary.retries,
            "rate_limited": summary.rate_limited,
        },
        "output": summary.output,
        "state": summary.state,
        "pruned": summary.pruned,
        "gap": None if summary.gap is None else [when(summary.gap[0]), when(summary.gap[1])],
    }
