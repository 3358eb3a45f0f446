"""``explorium-events demo``: a pull of made-up prospects from an in-process emulator, checked.

The pull is the same one ``fetch`` runs (``_run``); the demo adds the emulator around
it, a pull of made-up businesses beside it (``pull()`` again, same client, same
rate-limit budget), and at the end checks every event against what the emulator holds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._bulk import pull
from .._client import EventsClient
from .._errors import ConfigurationError, ExploriumError
from .._paths import output_problem
from .._results import AnyEvent
from .._settings import resolve_rate_limit_store, settings_from_environment
from . import _flags
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE,
    PROG,
    UsageError,
    report,
    say,
)
from ._progress import Progress, progress_enabled
from ._request import PullRequest
from ._run import PullRun
from ._summary import pace
from ._summary_json import check_target, write_summary

if TYPE_CHECKING:
    from ..emulator import EmulatorConfig, EmulatorStats

DEMO_RATE_LIMIT = (40, 5.0)
DEMO_LATENCY_MS = 50.0
DEMO_ERROR_RATE = 0.02
DEMO_DUPLICATE_RATE = 0.02
DEMO_BUSINESSES = 200  # a few requests beside the prospects', within the same windows

_DEMO_LIMIT = f"{DEMO_RATE_LIMIT[0]} requests per {DEMO_RATE_LIMIT[1]:g} s"
_DEMO_ERRORS = f"{DEMO_ERROR_RATE:.0%}"
_DEMO_DUPLICATES = f"{DEMO_DUPLICATE_RATE:.0%}"
_DEMO_DESCRIPTION = f"""\
Start the emulator in this process on a free loopback port, make up --prospects
prospect IDs, pull their events with the progress bar, write them to --out, and
report on standard error what happened: batches, requests, retries, 429s, events,
duplicates dropped, time, throughput, and how close the pull ran to the rate limit. At
the same time, with the same key and rate limit, it pulls the business events (funding,
offices, hiring...) of {DEMO_BUSINESSES} made-up businesses. Every event is then checked
against what the emulator holds for those prospects and businesses.

So that the rate limiter is seen at work in seconds rather than minutes, the demo's
emulator allows {_DEMO_LIMIT} (the real API: 200 per 60 s), adds latency,
answers {_DEMO_ERRORS} of requests with a 5xx and sends {_DEMO_DUPLICATES} of events twice; the
client runs at the same limit. With the defaults it takes about 20 seconds.
"""

_DEMO_EPILOG = f"""\
examples:
  {PROG} demo
  {PROG} demo --prospects 1000 --out demo.csv
  # the real API's limit and no faults: 5,000 IDs are 125 requests, under 200 a minute
  {PROG} demo --rate-limit 200/60 --error-rate 0

  # the events alone on standard output (the report is on standard error)
  {PROG} demo --out - -q | jq -r .event_name | sort | uniq -c

events.jsonl, the default --out, is never replaced without --force.

exit status: 0 when every event arrived exactly once; 1 otherwise; 2 usage error (an
existing events.jsonl without --force, say); 130 interrupted; 141 standard output
closed by its reader.
"""


def add_parser(subparsers: _flags.Subparsers) -> None:
    """Add ``demo`` and its flags."""
    demo = _flags.add_command(
        subparsers,
        "demo",
        help="pull 5,000 made-up prospects from an in-process emulator: try this first",
        description=_DEMO_DESCRIPTION,
        epilog=_DEMO_EPILOG,
    )
    demo.add_argument(
        "--prospects",
        metavar="N",
        type=_flags.int_between(1, 1_000_000),
        default=5_000,
        help="how many prospect IDs to make up (default: %(default)s)",
    )
    _flags.add_output(demo, "events.jsonl")
    _flags.add_rate_limit(
        demo,
        default=DEMO_RATE_LIMIT,
        help="requests per sliding window, for the emulator and the client alike "
        f"(default: {DEMO_RATE_LIMIT[0]}/{DEMO_RATE_LIMIT[1]:g})",
    )
    _flags.add_latency_ms(
        demo,
        default=DEMO_LATENCY_MS,
        help="the emulator's latency; jitter: half of it either way (default: %(default)g)",
    )
    _flags.add_error_rate(
        demo,
        default=DEMO_ERROR_RATE,
        help="share of requests the emulator answers with a 5xx (default: %(default)g)",
    )
    _flags.add_duplicate_rate(
        demo,
        default=DEMO_DUPLICATE_RATE,
        help="share of events the emulator sends twice (default: %(default)g)",
    )
    _flags.add_concurrency(demo)
    _flags.add_seed(demo, help="the made-up IDs and the faults (default: %(default)s)")
    _flags.add_give_up_after(demo)
    _flags.add_rate_limit_store(demo)
    _flags.add_progress(demo)
    _flags.add_summary_json(demo)
    _flags.add_verbose(demo)


def demo_prospect_ids(count: int, seed: int = 0) -> list[str]:
    """The demo's prospect IDs: the emulator's public ``make_prospect_ids``, for tests too."""
    from ..emulator import make_prospect_ids

    return make_prospect_ids(count, seed)


def demo_business_ids(count: int, seed: int = 0) -> list[str]:
    """The demo's business IDs: the emulator's public ``make_business_ids``, for tests too."""
    from ..emulator import make_business_ids

    return make_business_ids(count, seed)


@dataclass
class _Check:
    """What the demo learns besides the pull: every event written, and what the server did."""

    seen: dict[str, int] = field(default_factory=dict)
    expected: set[str] = field(default_factory=set)
    server: EmulatorStats | None = None
    businesses: list[str] = field(default_factory=list)
    accounts: dict[str, int] = field(default_factory=dict)  # business events seen
    expected_accounts: set[str] = field(default_factory=set)
    account_requests: int = 0
    account_kinds: set[str] = field(default_factory=set)
    accounts_failed: str | None = None  # why the business pull did not finish

    def count(self, events: Sequence[AnyEvent]) -> None:
        for event in events:
            self.seen[event.event_id] = self.seen.get(event.event_id, 0) + 1

    @property
    def accounts_ok(self) -> bool:
        """Whether every business event arrived, once each."""
        return (
            self.accounts_failed is None
            and set(self.accounts) == self.expected_accounts
            and all(times == 1 for times in self.accounts.values())
        )


class _Tally:
    """An EventSink that keeps nothing but which business events arrived, how often."""

    def __init__(self, check: _Check) -> None:
        self._check = check

    def write(self, events: Sequence[AnyEvent]) -> int:
        for event in events:
            seen = self._check.accounts
            seen[event.event_id] = seen.get(event.event_id, 0) + 1
            self._check.account_kinds.add(event.event_name)
        return len(events)

    def flush_durably(self) -> None:
        pass

    def close(self) -> None:
        pass


def run(args: argparse.Namespace) -> int:
    """Pull the made-up prospects, report and check; the exit status."""
    from ..emulator import EmulatorConfig

    rate_limit, rate_window = args.rate_limit
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    config = EmulatorConfig(
        rate_limit=rate_limit,
        rate_window=rate_window,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_ms / 2,
        error_rate=args.error_rate,
        duplicate_rate=args.duplicate_rate,
        seed=args.seed,
        now=today,  # fixed, so that the check at the end agrees even across midnight
    )
    out = _flags.default_output(args)
    fmt = _flags.output_format(out, args.format)
    if fmt == "sqlite" and out is None:
        raise UsageError("--format sqlite writes to a file: give --out FILE, e.g. demo.db")
    problem = (
        None
        if out is None
        else output_problem("--out", out, sqlite=fmt == "sqlite", folder=fmt == "parquet")
    )
    if problem is not None:
        raise UsageError(problem)
    check_target(args.summary_json, data_on_stdout=out is None, others=[("--out", out)])
    try:
        # Checked before the emulator starts: a bad store is a usage error, not a failed pull.
        resolve_rate_limit_store(args.rate_limit_store, settings_from_environment())
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    check = _Check(businesses=demo_business_ids(DEMO_BUSINESSES, args.seed))
    request = PullRequest(
        command="demo",
        ids=demo_prospect_ids(args.prospects, args.seed),
        total=args.prospects,
        source="made-up IDs",
        out=out,
        fmt=fmt,
        append=args.append,
        csv_raw_cells=args.csv_raw_cells,
        quiet=args.quiet,  # the report goes to standard error, as every command's does
        watch=check.count,
    )
    progress = Progress(sys.stderr, enabled=progress_enabled(args.progress, quiet=args.quiet))
    with PullRun(request, progress) as pull_run:
        try:
            asyncio.run(_pull_from_an_emulator(args, config, pull_run, check))
        except KeyboardInterrupt:
            pull_run.interrupted = True
        status = pull_run.finish()
    stopped = status in (EXIT_INTERRUPTED, EXIT_PIPE) or pull_run.write_failed
    if stopped or pull_run.final is None:
        write_summary(args.summary_json, "demo", status, pull_run.figures)
        return status
    got = set(check.seen)
    twice = sum(1 for times in check.seen.values() if times > 1)
    ok = got == check.expected and twice == 0 and not pull_run.final.failed
    requests = pull_run.final.requests + check.account_requests
    report(args.quiet, *_closing_lines(check, ok, twice, requests, rate_limit))
    if args.quiet and not (ok and check.accounts_ok):
        say(f"{PROG} demo: error: the check failed (run it without -q for the report)")
    ok = ok and check.accounts_ok
    # The pull's own status too: IDs unaccounted for fail the demo, events or not.
    status = EXIT_OK if ok and status == EXIT_OK else EXIT_FAILED
    figures = {**pull_run.figures, "check": _check_figures(check, ok, twice)}
    write_summary(args.summary_json, "demo", status, figures)
    return status


async def _pull_from_an_emulator(
    args: argparse.Namespace, config: EmulatorConfig, pull_run: PullRun, check: _Check
) -> None:
    from ..emulator import Emulator, expected_business_events, expected_events

    ids = list(pull_run.request.ids)
    async with Emulator(config) as emulator:
        client = EventsClient(
            api_key="demo-key-not-a-secret",
            base_url=emulator.url,
            max_concurrency=args.concurrency,
            rate_limit=config.rate_limit,
            rate_window=config.rate_window,
            give_up_after=args.give_up_after,
            rate_limit_store=args.rate_limit_store,
        )
        limit = (
            "no rate limit"
            if config.rate_limit is None
            else (f"rate limit {config.rate_limit} requests per {config.rate_window:g}s")
        )
        report(
            args.quiet,
            f"{PROG} demo: an emulated Events API at {emulator.url}",
            f"  {limit} (the real API: 200 per 60s), {config.latency_ms:g}ms latency "
            f"(+-{config.latency_jitter_ms:g}ms),",
            f"  {config.error_rate:.0%} of requests answered with a 5xx, "
            f"{config.duplicate_rate:.0%} of events sent twice.",
            f"Pulling the events of {len(ids):,} made-up prospects ({client.batch_size} per "
            f"request, {client.max_concurrency} at a time) into "
            f"{pull_run.request.out or 'standard output'},",
            f"and at the same time those of {len(check.businesses)} made-up businesses (business "
            "events: funding, offices, hiring...) with the same key and rate limit ...",
            "",
        )

        async def pull_businesses(stop: asyncio.Event) -> None:
            try:
                summary = await pull(
                    client,
                    check.businesses,
                    _Tally(check),
                    None,
                    stop=stop,
                    commit_interval=0.0,
                    entity="business",
                )
            except ExploriumError as error:  # go() reports the prospects' side of it
                check.accounts_failed = str(error)
                return
            check.account_requests = summary.requests
            if not summary.complete:
                check.accounts_failed = f"{summary.failed + summary.not_tried:,} IDs not done"

        # One client, one rate-limit budget for both kinds of events.
        await pull_run.go(client, beside=pull_businesses)
        check.server = emulator.stats
        check.expected = {event["event_id"] for event in expected_events(ids, config=config)}
        check.expected_accounts = {
            event["event_id"] for event in expected_business_events(check.businesses, config=config)
        }


def _closing_lines(
    check: _Check, ok: bool, twice: int, requests: int, rate_limit: int | None
) -> list[str]:
    server = check.server
    assert server is not None
    got, expected = set(check.seen), check.expected
    by_status = ", ".join(
        f"{number} x {status}" for status, number in sorted(server.requests_by_status.items())
    )
    lines = [
        f"  server      {server.requests:,} requests answered: {by_status}",
        f"              at most {server.peak_in_flight} in flight; "
        f"{server.duplicated_events:,} events sent twice on purpose",
    ]
    if ok:
        lines.append(
            f"  checked     all {len(expected):,} events the emulator holds for these "
            "prospects arrived, once each"
        )
    else:
        lines.append(
            f"  CHECK FAILED  expected {len(expected):,} events; got {len(got & expected):,} of "
            f"them, {len(got - expected):,} unexpected, {twice:,} written twice"
        )
    lines.append(
        f"  businesses  {sum(check.accounts.values()):,} business events of "
        f"{len(check.account_kinds)} types for {len(check.businesses)} made-up businesses, "
        f"{check.account_requests} requests"
    )
    lines.append(
        "              in the same rate-limit budget: "
        + (
            "all arrived, once each"
            if check.accounts_ok
            else f"CHECK FAILED ({check.accounts_failed or 'events missing or repeated'})"
        )
    )
    real = pace(requests, 200, 60.0, 1.0)
    if rate_limit is not None and real is not None:
        lines.append(
            f"  real API    at 200 requests per 60s, {requests:,} requests would "
            f"need {real[0]:.0f}s at least"
        )
    lines.extend(
        [
            "",
            f"Next: `{PROG} serve` runs this emulator on port 8787 for your own code;",
            f"      `{PROG} fetch --entity business --ids accounts.csv` pulls business events;",
            f"      `{PROG} fetch --help` tells how to pull real events.",
        ]
    )
    return lines


def _check_figures(check: _Check, ok: bool, twice: int) -> dict[str, object]:
    """The check's figures of ``_closing_lines``, for --summary-json."""
    server = check.server
    assert server is not None
    got = set(check.seen)
    return {
        "ok": ok,
        "expected_events": len(check.expected),
        "expected_received": len(got & check.expected),
        "unexpected": len(got - check.expected),
        "written_twice": twice,
        "server_requests": server.requests,
        "server_requests_by_status": {
            str(status): number for status, number in sorted(server.requests_by_status.items())
        },
        "server_peak_in_flight": server.peak_in_flight,
        "server_duplicated_events": server.duplicated_events,
        "businesses": {
            "ids": len(check.businesses),
            "events": sum(check.accounts.values()),
            "event_types": len(check.account_kinds),
            "requests": check.account_requests,
            "ok": check.accounts_ok,
            "failed": check.accounts_failed,
        },
    }
