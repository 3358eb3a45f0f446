"""The command line: ``explorium-events fetch | serve | demo``.

``main(argv)`` parses, runs one command and returns its exit status; it never calls
``sys.exit`` itself, so tests drive it directly. Data goes to standard output (or
``--out``); everything meant for a person (progress, logs, the summary, errors) goes
to standard error, so that ``explorium-events fetch | jq`` stays clean.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from explorium_events import (
    AuthenticationError,
    BatchFailure,
    ConfigurationError,
    Event,
    EventsClient,
    EventType,
    FetchStats,
    OutputWriteError,
    PermissionDeniedError,
    RetryPolicy,
    ServerUnavailableError,
    __version__,
)

from ._cli_bulk import BulkRequest, bulk_usage_problem, run_bulk
from ._ids import MAX_BATCH_SIZE
from ._input import IdInput, InputError, read_ids
from ._progress import (
    Progress,
    ProgressLogHandler,
    RunReport,
    Snapshot,
    pace,
    summary_lines,
)
from ._query import utc_range_problem
from ._settings import DEFAULT_BASE_URL
from ._sinks import FORMATS as SINKS
from ._sinks import BuiltinSink as EventSink
from ._sinks import format_for, open_sink

if TYPE_CHECKING:
    from explorium_events.emulator import EmulatorConfig

PROG = "explorium-events"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
API_KEY_VARIABLE = "EXPLORIUM_API_KEY"
BASE_URL_VARIABLE = "EXPLORIUM_BASE_URL"

EVENT_TYPE_ALIASES = {
    "role": EventType.PROSPECT_CHANGED_ROLE.value,
    "company": EventType.PROSPECT_CHANGED_COMPANY.value,
    "anniversary": EventType.PROSPECT_JOB_START_ANNIVERSARY.value,
}

DEMO_RATE_LIMIT = (40, 5.0)
DEMO_LATENCY_MS = 50.0
DEMO_ERROR_RATE = 0.02
DEMO_DUPLICATE_RATE = 0.02
DEFAULT_GIVE_UP_AFTER = 300.0

logger = logging.getLogger("explorium_events")


class UsageError(Exception):
    """A usage or input error: exit status 2, with this message."""


# -- argument types: each names the bad value ------------------------------------------------


def _rate_limit(text: str) -> tuple[int | None, float]:
    """``N/SECONDS`` (``200/60``), ``N`` (per 60 s), or ``off``."""
    value = text.strip().lower()
    if value in ("off", "none", "0"):
        return None, 60.0
    count_text, _, window_text = value.partition("/")
    try:
        count = int(count_text)
        window = float(window_text.removesuffix("s")) if window_text else 60.0
    except ValueError:
        count, window = 0, 0.0
    if count < 1 or not (math.isfinite(window) and window > 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not N/SECONDS, such as 200/60 (200 per minute), or 'off'"
        )
    return count, window


def _timestamp(text: str) -> dt.date | dt.datetime:
    value = text.strip()
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (2026-06-01) or an ISO 8601 datetime (2026-06-01T12:00:00Z)"
        ) from None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    problem = utc_range_problem(moment)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r} {problem}")
    return moment


def _event_types(text: str) -> list[str]:
    chosen: list[str] = []
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        name = EVENT_TYPE_ALIASES.get(name, name)
        if name not in {kind.value for kind in EventType}:
            known = ", ".join(kind.value for kind in EventType)
            raise argparse.ArgumentTypeError(
                f"unknown event type {part.strip()!r}; known: {known} "
                f"(or short: {', '.join(EVENT_TYPE_ALIASES)})"
            )
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise argparse.ArgumentTypeError("name at least one event type")
    return chosen


def _int_between(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number {bound}")
        return value

    return parse


def _number_at_least(low: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= low):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number >= {low:g}")
        return value

    return parse


def _give_up_after(text: str) -> float | None:
    """Seconds (a positive number), or ``off``."""
    if text.strip().lower() in ("off", "none", "never"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds, or 'off'")
    return value


def _probability(text: str) -> float:
    value = _number_at_least(0.0)(text)
    if value > 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability from 0 to 1")
    return value


# -- the parser ----------------------------------------------------------------------------

_DESCRIPTION = """\
Fetch Explorium prospect events for any number of prospects, at the API's rate limit,
or run a local emulator of the Events API. New here? Run `explorium-events demo`.
"""

_MAIN_EPILOG = f"""\
examples:
  {PROG} demo
  export {API_KEY_VARIABLE}=...       # your key; never printed
  {PROG} fetch --ids prospects.txt --out events.jsonl
  {PROG} serve --port 8787
  {PROG} COMMAND --help          # every flag of a command, with examples
"""

_FETCH_DESCRIPTION = """\
Pull the events of a list of prospect IDs, in batches of 40, as fast as the rate limit
allows and never faster; failed requests are retried (5xx, timeouts, 429 after its
Retry-After), and events are written as they arrive.

Input (--ids FILE, or standard input): one prospect ID per line (40 hex characters;
blank lines, surrounding whitespace and case do not matter; UTF-8, a BOM and CRLF are
fine), or a CSV file with a header line, read from its prospect_id column. The whole
input is checked before the first request: a bad ID stops the run with its line
number, unless --skip-invalid. Repeated IDs are fetched once.

Output (--out FILE, or standard output): JSONL, one event per line as the API sent it
(same keys, order and values, on one line), or CSV, one row per event under a fixed
header (event_id, event_name, event_time, prospect_id, the data fields of the three
event types, data_json), with text cells that would start a spreadsheet formula
prefixed by ' (see --csv-raw-cells). Rows come in the order batches finish. A batch
counts as done once its events are flushed and fsynced. Progress, logs and the summary
go to standard error.
"""

_FETCH_EPILOG = f"""\
examples:
  # IDs in a text file, events into a JSONL file
  {PROG} fetch --ids prospects.txt --out events.jsonl

  # a CSV export with a prospect_id column; role and company changes since June, as CSV
  {PROG} fetch --ids contacts.csv --event-types role,company --since 2026-06-01 \\
      --out events.csv

  # from a pipe to a pipe, skipping values that are not prospect IDs
  cut -d, -f1 contacts.csv | {PROG} fetch --skip-invalid | jq -r .event_name

  # keep the IDs of batches that failed, then fetch just those, appending
  {PROG} fetch --ids prospects.txt --out events.jsonl --failed-out failed.txt
  {PROG} fetch --ids failed.txt --out events.jsonl --append

  # a million IDs, resumable: after Ctrl-C, a crash or kill -9, run the same command
  # again; then retry exactly the batches that failed
  {PROG} fetch --ids million.txt --out events.jsonl --checkpoint events.ckpt
  {PROG} fetch --ids million.txt --out events.jsonl --checkpoint events.ckpt --retry-failed

  # into SQLite, one row per event (upserted by event_id), to query what was pulled
  {PROG} fetch --ids million.txt --out events.db --checkpoint events.ckpt
  sqlite3 events.db "SELECT event_name, COUNT(*) FROM events GROUP BY 1"

  # a key whose limit counts prospect IDs, not requests: 200 IDs a minute
  {PROG} fetch --ids prospects.txt --rate-limit 200/60 --rate-limit-cost id

  # against the local emulator (any key works there)
  {PROG} fetch --base-url http://127.0.0.1:8787 --api-key anything --ids prospects.txt

environment:
  {API_KEY_VARIABLE}   the API key when --api-key is not given (safer than the flag,
                      which other users of the machine can see in the process list)
  {BASE_URL_VARIABLE}  the API's address when --base-url is not given

exit status:
  0    every batch was fetched
  1    some batches failed after their retries (listed in the summary and written to
       --failed-out), the API refused the key (401/403: not retried), the server
       answered nothing usable for --give-up-after seconds (every ID not yet fetched
       counts as failed), or the output could not be written (disk full, file too
       large, I/O error: the message names the file; the IDs not written go to
       --failed-out, or stay in --checkpoint)
  2    usage or input error: the message names the bad value (and its line number)
  130  interrupted (Ctrl-C; with --checkpoint also SIGTERM); the output holds every
       batch finished before that, and --checkpoint resumes from there
"""

_SERVE_DESCRIPTION = """\
Run the emulator of the Events API (POST /v1/prospects/events) until Ctrl-C or
SIGTERM. It validates requests like the real API (422 with FastAPI-style details),
checks the api_key header (401), rate-limits per key over a sliding window (429 with
Retry-After, X-RateLimit-* headers), and serves deterministic synthetic events: the
same prospect ID and --seed always give the same events. Faults on demand: latency,
5xx, injected 429s, dropped connections, truncated bodies, duplicated events.
GET /_emulator/stats shows what it served; POST /_emulator/reset zeroes the counters.
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

exit status: 0 after a clean stop; 2 for a bad flag or a port that cannot be used.
"""

_DEMO_LIMIT = f"{DEMO_RATE_LIMIT[0]} requests per {DEMO_RATE_LIMIT[1]:g} s"
_DEMO_ERRORS = f"{DEMO_ERROR_RATE:.0%}"
_DEMO_DUPLICATES = f"{DEMO_DUPLICATE_RATE:.0%}"
_DEMO_DESCRIPTION = f"""\
Start the emulator in this process on a free loopback port, make up --prospects
prospect IDs, pull their events with the progress bar, write them to --out, and
report what happened: batches, requests, retries, 429s, events, duplicates dropped,
time, throughput, and how close the pull ran to the rate limit. Every event is then
checked against what the emulator holds for those prospects.

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

exit status: 0 when every event arrived exactly once; 1 otherwise; 130 interrupted.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks; a little wider than argparse's default."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=min(_terminal_width(), 100))


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns - 2


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on standard error")


def _add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show the progress line on standard error (default: only when it is a terminal)",
    )


def _add_output(parser: argparse.ArgumentParser, default: str | None) -> None:
    where = default or "standard output"
    parser.add_argument(
        "--out",
        metavar="FILE",
        default=default,
        help=f"write events to FILE ('-': standard output) (default: {where})",
    )
    parser.add_argument(
        "--format",
        choices=sorted(SINKS),
        default=None,
        help="output format (default: from the --out extension: .csv, .jsonl, .db, .sqlite or "
        ".parquet; else jsonl). parquet needs the [parquet] extra (pyarrow)",
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="add to --out instead of replacing it (a CSV header is written only once)",
    )
    parser.add_argument(
        "--csv-raw-cells",
        action="store_true",
        help="CSV: write text cells as the API sent them. By default a text cell starting "
        "with =, +, -, @, a tab or a carriage return gets a leading ' so that a spreadsheet "
        "shows it instead of running it as a formula (OWASP 'CSV injection'); numbers "
        "such as -3 are never changed",
    )


def _add_give_up(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--give-up-after",
        metavar="SECONDS",
        type=_give_up_after,
        default=DEFAULT_GIVE_UP_AFTER,
        help="stop when the server has answered nothing usable (only timeouts, dropped "
        "connections, unreadable bodies, 5xx or 429) for SECONDS; every ID not yet fetched "
        "then counts as failed (in --failed-out, and in --checkpoint for --retry-failed); "
        "'off': never (default: %(default)g)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=_MAIN_EPILOG,
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    fetch = commands.add_parser(
        "fetch",
        help="pull the events of a list of prospect IDs into JSONL or CSV",
        description=_FETCH_DESCRIPTION,
        epilog=_FETCH_EPILOG,
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    fetch.add_argument(
        "--ids",
        metavar="FILE",
        help="prospect IDs, one per line, or a CSV with a prospect_id column "
        "('-' or absent: standard input)",
    )
    fetch.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip values that are not prospect IDs (they are counted in the summary) "
        "instead of stopping",
    )
    fetch.add_argument(
        "--event-types",
        metavar="TYPES",
        type=_event_types,
        default=None,
        help="comma-separated event types: prospect_changed_role (role), "
        "prospect_changed_company (company), prospect_job_start_anniversary (anniversary) "
        "(default: all three)",
    )
    fetch.add_argument(
        "--since",
        metavar="WHEN",
        type=_timestamp,
        help="events at or after WHEN: a date "
        "(2026-06-01) or an ISO 8601 datetime (UTC unless it says otherwise); the API keeps "
        "the last 3 months only",
    )
    fetch.add_argument(
        "--until",
        metavar="WHEN",
        type=_timestamp,
        help="events at or before WHEN (a date means that whole day)",
    )
    _add_output(fetch, None)
    fetch.add_argument(
        "--failed-out",
        metavar="FILE",
        help="write the IDs of batches that failed to FILE, one per line, ready for --ids; "
        "always created, empty when none failed. Without --checkpoint a refused key also "
        "puts every ID not yet fetched there; with --checkpoint those stay in the "
        "checkpoint, and rerunning the command fetches them",
    )
    fetch.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="keep the pull's progress in PATH (a small SQLite file) and resume from it: "
        "rerun the same command after Ctrl-C, a crash or kill -9 and it does only what is "
        "left, never writing an event twice; needs --ids FILE and --out FILE",
    )
    fetch.add_argument(
        "--retry-failed",
        action="store_true",
        help="with --checkpoint: retry exactly the batches that failed in earlier runs "
        "(they are otherwise skipped)",
    )
    fetch.add_argument(
        "--base-url",
        metavar="URL",
        help=f"the API's address (default: ${BASE_URL_VARIABLE}, else {DEFAULT_BASE_URL})",
    )
    fetch.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"the API key (default: ${API_KEY_VARIABLE}); prefer the variable",
    )
    fetch.add_argument(
        "--concurrency",
        metavar="N",
        type=_int_between(1, 64),
        default=8,
        help="requests in flight at once (default: %(default)s)",
    )
    fetch.add_argument(
        "--batch-size",
        metavar="N",
        type=_int_between(1, MAX_BATCH_SIZE),
        default=MAX_BATCH_SIZE,
        help="prospect IDs per request (default: %(default)s)",
    )
    fetch.add_argument(
        "--rate-limit",
        metavar="N/SECONDS",
        type=_rate_limit,
        default=(200, 60.0),
        help="at most N units in any SECONDS-second window, or 'off' (default: 200/60, "
        "the API's documented limit)",
    )
    fetch.add_argument(
        "--rate-limit-cost",
        choices=("request", "id"),
        default="request",
        help="what one unit of --rate-limit is: a request, or a prospect ID; the API does "
        "not document which it counts (default: %(default)s)",
    )
    fetch.add_argument(
        "--max-attempts",
        metavar="N",
        type=_int_between(1, 20),
        default=RetryPolicy().max_attempts,
        help="attempts per batch before it counts as failed; 1: no retries (default: %(default)s)",
    )
    _add_give_up(fetch)
    _add_progress(fetch)
    _add_common(fetch)

    serve = commands.add_parser(
        "serve",
        help="run the Events API emulator on a local port, for your own tests",
        description=_SERVE_DESCRIPTION,
        epilog=_SERVE_EPILOG,
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port",
        type=_int_between(0, 65535),
        default=8787,
        help="port; 0: any free one (default: %(default)s)",
    )
    serve.add_argument(
        "--api-key", metavar="KEY", help="accept only this key (default: any non-empty key)"
    )
    serve.add_argument(
        "--rate-limit",
        metavar="N/SECONDS",
        type=_rate_limit,
        default=(200, 60.0),
        help="N units per sliding SECONDS-second window per key, or 'off' (default: 200/60)",
    )
    serve.add_argument(
        "--rate-limit-cost",
        choices=("request", "id"),
        default="request",
        help="what one unit costs: a request, or each prospect ID in it (default: %(default)s)",
    )
    serve.add_argument(
        "--latency-ms",
        metavar="MS",
        type=_number_at_least(0),
        default=0.0,
        help="added to every answer (default: %(default)g)",
    )
    serve.add_argument(
        "--latency-jitter-ms",
        metavar="MS",
        type=_number_at_least(0),
        default=0.0,
        help="latency varies by up to this much either way (default: %(default)g)",
    )
    serve.add_argument(
        "--error-rate",
        metavar="P",
        type=_probability,
        default=0.0,
        help="share of requests answered 500/502/503/504 (default: %(default)g)",
    )
    serve.add_argument(
        "--rate-limit-error-rate",
        metavar="P",
        type=_probability,
        default=0.0,
        help="share of requests answered with an injected 429 (default: %(default)g)",
    )
    serve.add_argument(
        "--drop-rate",
        metavar="P",
        type=_probability,
        default=0.0,
        help="share of connections dropped without an answer (default: %(default)g)",
    )
    serve.add_argument(
        "--truncate-rate",
        metavar="P",
        type=_probability,
        default=0.0,
        help="share of 200 answers cut short (default: %(default)g)",
    )
    serve.add_argument(
        "--duplicate-rate",
        metavar="P",
        type=_probability,
        default=0.0,
        help="share of events sent twice (default: %(default)g)",
    )
    serve.add_argument(
        "--seed",
        type=int,
        default=0,
        help="drives the synthetic events and the faults (default: %(default)s)",
    )
    _add_common(serve)

    demo = commands.add_parser(
        "demo",
        help="pull 5,000 made-up prospects from an in-process emulator: try this first",
        description=_DEMO_DESCRIPTION,
        epilog=_DEMO_EPILOG,
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    demo.add_argument(
        "--prospects",
        metavar="N",
        type=_int_between(1, 1_000_000),
        default=5_000,
        help="how many prospect IDs to make up (default: %(default)s)",
    )
    _add_output(demo, "events.jsonl")
    demo.add_argument(
        "--rate-limit",
        metavar="N/SECONDS",
        type=_rate_limit,
        default=DEMO_RATE_LIMIT,
        help="requests per sliding window, for the emulator and the client alike "
        f"(default: {DEMO_RATE_LIMIT[0]}/{DEMO_RATE_LIMIT[1]:g})",
    )
    demo.add_argument(
        "--latency-ms",
        metavar="MS",
        type=_number_at_least(0),
        default=DEMO_LATENCY_MS,
        help="the emulator's latency; jitter: half of it either way (default: %(default)g)",
    )
    demo.add_argument(
        "--error-rate",
        metavar="P",
        type=_probability,
        default=DEMO_ERROR_RATE,
        help="share of requests the emulator answers with a 5xx (default: %(default)g)",
    )
    demo.add_argument(
        "--duplicate-rate",
        metavar="P",
        type=_probability,
        default=DEMO_DUPLICATE_RATE,
        help="share of events the emulator sends twice (default: %(default)g)",
    )
    demo.add_argument(
        "--concurrency",
        metavar="N",
        type=_int_between(1, 64),
        default=8,
        help="requests in flight at once (default: %(default)s)",
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="the made-up IDs and the faults (default: %(default)s)"
    )
    _add_give_up(demo)
    _add_progress(demo)
    _add_common(demo)
    return parser


# -- shared machinery ------------------------------------------------------------------------


@contextlib.contextmanager
def _logging_to_stderr(
    level: int, fmt: str = "%(levelname)s: %(message)s"
) -> Iterator[ProgressLogHandler]:
    """Route the package's logs to standard error for one command; undone afterwards."""
    package = logging.getLogger("explorium_events")
    handler = ProgressLogHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    saved = package.level, package.propagate
    package.addHandler(handler)
    package.setLevel(level)
    package.propagate = False
    try:
        yield handler
    finally:
        package.removeHandler(handler)
        package.level, package.propagate = saved


def _progress_enabled(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def _say(*lines: str, stream: TextIO | None = None) -> None:
    target = stream or sys.stderr
    for line in lines:
        print(line, file=target)
    target.flush()


@dataclass
class _Pull:
    """A pull's state, readable after an interruption as well as after the end."""

    total: int
    rate_limit: int | None
    rate_window: float
    rate_cost: str
    started: float = field(default_factory=time.monotonic)
    ids_done: int = 0
    units_sent: int = 0
    stats: FetchStats = field(default_factory=FetchStats)
    failures: list[BatchFailure] = field(default_factory=list)
    unfinished_ids: int = 0
    key_rejected: str | None = None
    gave_up: str | None = None
    write_failed: str | None = None
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds from the start to the end (or to now, while running)."""
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started


async def _tick(progress: Progress, snapshot: Callable[[], Snapshot]) -> None:
    while True:
        progress.update(snapshot())
        await asyncio.sleep(progress.interval)


def _key_message(error: AuthenticationError) -> str:
    text = f"HTTP {error.status}: {error.message or 'no message'}"
    if error.correlation_id:
        text += f" (correlation_id {error.correlation_id})"
    if isinstance(error, PermissionDeniedError):
        hint = "The key may not do this: check the account's credits and permissions."
    else:
        hint = f"Check --api-key or {API_KEY_VARIABLE}."
    return f"{text}\n{hint} Nothing was retried."


async def _pull(
    client: EventsClient,
    ids: Iterable[str],
    state: _Pull,
    *,
    sink: EventSink,
    failed_out: TextIO | None,
    progress: Progress,
    event_types: list[str] | None = None,
    since: dt.date | dt.datetime | None = None,
    until: dt.date | dt.datetime | None = None,
    on_events: Callable[[tuple[Event, ...]], None] | None = None,
) -> None:
    """Stream the batches into the sink and the failures into ``failed_out``; fill ``state``."""
    stream = client.stream(
        ids,
        event_types=event_types,
        timestamp_from=since,
        timestamp_to=until,
        # The input was checked whole already, line numbers and all: nothing is skipped here,
        # and skip_invalid keeps the client from reading the input into a list first.
        skip_invalid=True,
    )
    state.stats = stream.stats
    per_id = client.rate_limit_state().cost == "id"

    requests_seen, last_request_at = 0, time.monotonic()
    writing: tuple[str, ...] = ()  # the IDs of the batch being written, until it is durable
    writing_events = 0

    def snapshot() -> Snapshot:
        nonlocal requests_seen, last_request_at
        stats = stream.stats
        now = time.monotonic()
        if stats.requests != requests_seen:
            requests_seen, last_request_at = stats.requests, now
        return Snapshot(
            ids_done=state.ids_done + stats.duplicate_ids,
            ids_total=state.total,
            events=stats.events,
            requests=stats.requests,
            retries=stats.retries,
            rate_limited=stats.rate_limited,
            elapsed=state.elapsed,
            limiter=client.rate_limit_state(),
            batch_size=client.batch_size,
            held_for=now - last_request_at,
        )

    ticker = asyncio.create_task(_tick(progress, snapshot)) if progress.enabled else None
    try:
        async with stream:
            try:
                async for batch in stream:
                    state.ids_done += len(batch.prospect_ids)
                    state.units_sent += batch.attempts * (len(batch.prospect_ids) if per_id else 1)
                    if batch.failure is None:
                        writing, writing_events = batch.prospect_ids, len(batch.events)
                        sink.write(batch.events)
                        # Durable before it counts as done: a disk that fills up later
                        # cannot take back a batch already reported done.
                        sink.flush_durably()
                        writing = ()
                        if on_events is not None:
                            on_events(batch.events)
                    else:
                        state.failures.append(batch.failure)
                        if failed_out is not None:
                            failed_out.write("".join(f"{pid}\n" for pid in batch.prospect_ids))
                            failed_out.flush()
            except AuthenticationError as error:
                # Nothing more can succeed with this key; what is left goes to --failed-out.
                state.key_rejected = _key_message(error)
                for batch_ids in stream.unfinished():
                    state.unfinished_ids += len(batch_ids)
                    if failed_out is not None:
                        failed_out.write("".join(f"{pid}\n" for pid in batch_ids))
                if failed_out is not None:
                    failed_out.flush()
            except ServerUnavailableError as error:
                # Every ID not yet fetched counts as failed, ready for --ids next time.
                state.gave_up = error.message
                for batch_ids in stream.unfinished():
                    state.ids_done += len(batch_ids)
                    stream.stats.batches += 1
                    stream.stats.failed_batches += 1
                    state.failures.append(
                        BatchFailure(
                            prospect_ids=batch_ids,
                            status=error.status,
                            message=error.message,
                            correlation_id=error.correlation_id,
                            attempts=0,
                            error=error,
                        )
                    )
                    if failed_out is not None:
                        failed_out.write("".join(f"{pid}\n" for pid in batch_ids))
                if failed_out is not None:
                    failed_out.flush()
            except OutputWriteError as error:
                # The batch being written is not done, and neither is anything left: all
                # of it goes to --failed-out, and the output is cut back to whole batches.
                state.write_failed = str(error)
                if writing:  # not done after all: the summary must not count it
                    state.ids_done -= len(writing)
                    stream.stats.batches -= 1
                    stream.stats.events -= writing_events
                discard = getattr(sink, "discard_undurable", None)
                if discard is not None:
                    discard()
                for batch_ids in (writing, *stream.unfinished()):
                    state.unfinished_ids += len(batch_ids)
                    if failed_out is not None:
                        failed_out.write("".join(f"{pid}\n" for pid in batch_ids))
                if failed_out is not None:
                    failed_out.flush()
    finally:
        state.finished = time.monotonic()
        limiter = client.rate_limit_state()  # the server may have said its limit is lower
        state.rate_limit, state.rate_window, state.rate_cost = (
            limiter.limit,
            limiter.window,
            limiter.cost,
        )
        if ticker is not None:
            ticker.cancel()
            await asyncio.wait([ticker])  # unlike awaiting it, never swallows our own cancel
            progress.update(snapshot(), force=True)
        progress.clear()


def _report(
    state: _Pull,
    *,
    source: str,
    ids: IdInput | None,
    sink_name: str,
    sink_format: str,
    failed_out: str | None,
    interrupted: bool = False,
) -> RunReport:
    return RunReport(
        source=source,
        ids_read=state.total,
        ids_done=state.ids_done + state.stats.duplicate_ids,
        stats=state.stats,
        output=sink_name,
        output_format=sink_format,
        elapsed=state.elapsed,
        rate_limit=state.rate_limit,
        rate_window=state.rate_window,
        rate_cost=state.rate_cost,
        units_sent=state.stats.requests if state.rate_cost == "request" else state.units_sent,
        invalid=ids.invalid_count if ids is not None else 0,
        invalid_examples=[bad.describe() for bad in ids.invalid] if ids is not None else [],
        failures=state.failures,
        failed_out=failed_out,
        unfinished_ids=state.unfinished_ids,
        key_rejected=state.key_rejected,
        gave_up=state.gave_up,
        write_failed=state.write_failed,
        interrupted=interrupted,
    )


def _open_outputs(
    out: str | None,
    fmt: str,
    *,
    append: bool,
    failed_out: str | None,
    csv_raw_cells: bool = False,
) -> tuple[EventSink, TextIO | None]:
    """Open the event sink and the failed-IDs file, or raise UsageError naming the file."""
    path = None if out in (None, "-") else out
    try:
        sink = open_sink(path, fmt, append=append, csv_raw_cells=csv_raw_cells)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
    except ConfigurationError as exc:  # parquet without pyarrow, or to standard output
        raise UsageError(str(exc)) from None
    failed = None
    if failed_out is not None:
        try:
            failed = open(failed_out, "w", encoding="utf-8")  # noqa: SIM115 (closed by caller)
        except OSError as exc:
            sink.close()
            raise UsageError(f"cannot write {failed_out}: {exc.strerror or exc}") from None
    return sink, failed


# -- fetch ---------------------------------------------------------------------------------


def _fetch(args: argparse.Namespace, log: ProgressLogHandler) -> int:
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_VARIABLE)
    if not (api_key or "").strip():
        raise UsageError(
            f"no API key: pass --api-key KEY or set the {API_KEY_VARIABLE} environment variable"
        )
    if (
        args.since is not None
        and args.until is not None
        and _start(args.since) > _start(args.until)
    ):
        raise UsageError(f"--since {args.since} is after --until {args.until}")
    out = None if args.out in (None, "-") else args.out
    fmt = format_for(out, args.format)
    if args.failed_out is not None and args.failed_out == out:
        raise UsageError("--failed-out must not be the same file as --out")
    if fmt == "sqlite" and out is None:
        raise UsageError("--format sqlite writes to a file: give --out FILE, e.g. events.db")
    if args.checkpoint is not None:
        problem = bulk_usage_problem(
            ids=args.ids,
            out=out,
            checkpoint=args.checkpoint,
            append=args.append,
            failed_out=args.failed_out,
        )
        if problem is not None:
            raise UsageError(problem)
    elif args.retry_failed:
        raise UsageError("--retry-failed needs --checkpoint: failed batches are recorded there")
    rate_limit, rate_window = args.rate_limit
    try:
        client = EventsClient(
            # None when the key comes from the environment: the client reads it there, and
            # names the variable if the key cannot be sent.
            api_key=args.api_key,
            base_url=args.base_url,
            max_concurrency=args.concurrency,
            batch_size=args.batch_size,
            rate_limit=rate_limit,
            rate_window=rate_window,
            rate_limit_cost=args.rate_limit_cost,
            retry=RetryPolicy(max_attempts=args.max_attempts),
            give_up_after=args.give_up_after,
        )
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None

    if args.ids in (None, "-") and _is_terminal(sys.stdin):
        raise UsageError(
            "no prospect IDs: give --ids FILE, or pipe them in (one per line), e.g. "
            f"`{PROG} fetch < ids.txt`"
        )
    try:
        ids = read_ids(args.ids, stdin=sys.stdin)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    if ids.invalid_count and not args.skip_invalid:
        raise UsageError(ids.invalid_message())
    if ids.valid == 0:
        logger.warning("%s holds no prospect IDs: nothing to fetch", ids.name)

    progress = Progress(sys.stderr, enabled=_progress_enabled(args.progress))
    if args.checkpoint is not None:
        assert out is not None
        return _fetch_bulk(args, client, ids, progress, log, out, fmt)
    state = _Pull(
        total=ids.valid,
        rate_limit=rate_limit,
        rate_window=rate_window,
        rate_cost=args.rate_limit_cost,
    )
    sink_name = out or "standard output"
    interrupted = False
    log.progress = progress
    try:
        asyncio.run(_fetch_async(args, client, ids, state, progress, out, fmt))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        log.progress = None
    report = _report(
        state,
        source=ids.name,
        ids=ids,
        sink_name=sink_name,
        sink_format=fmt,
        failed_out=args.failed_out,
        interrupted=interrupted,
    )
    _say(*summary_lines(report))
    if interrupted:
        _say(f"{PROG}: interrupted; {out or 'the output'} holds every batch finished before it")
        return EXIT_INTERRUPTED
    if state.write_failed:
        _say(f"{PROG} fetch: error: {state.write_failed}")
        return EXIT_FAILED
    return EXIT_FAILED if state.failures or state.key_rejected else EXIT_OK


def _fetch_bulk(
    args: argparse.Namespace,
    client: EventsClient,
    ids: IdInput,
    progress: Progress,
    log: ProgressLogHandler,
    out: str,
    fmt: str,
) -> int:
    """``fetch --checkpoint``: a resumable pull through explorium_events.pull (_cli_bulk.py)."""
    request = BulkRequest(
        ids=ids,
        source=ids.name,
        invalid=ids.invalid_count,
        invalid_examples=[bad.describe() for bad in ids.invalid],
        out=out,
        fmt=fmt,
        checkpoint=args.checkpoint,
        retry_failed=args.retry_failed,
        failed_out=args.failed_out,
        event_types=args.event_types,
        since=args.since,
        until=args.until,
        csv_raw_cells=args.csv_raw_cells,
    )
    log.progress = progress
    try:
        outcome = run_bulk(client, request, progress)
    finally:
        log.progress = None
    _say(*outcome.lines)
    return outcome.status


def _start(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


async def _fetch_async(
    args: argparse.Namespace,
    client: EventsClient,
    ids: IdInput,
    state: _Pull,
    progress: Progress,
    out: str | None,
    fmt: str,
) -> None:
    async with client:
        sink, failed = _open_outputs(
            out,
            fmt,
            append=args.append,
            failed_out=args.failed_out,
            csv_raw_cells=args.csv_raw_cells,
        )
        try:
            state.started = time.monotonic()
            await _pull(
                client,
                ids,
                state,
                sink=sink,
                failed_out=failed,
                progress=progress,
                event_types=args.event_types,
                since=args.since,
                until=args.until,
            )
        finally:
            sink.close()
            if failed is not None:
                failed.close()


# -- serve ---------------------------------------------------------------------------------


def _serve(args: argparse.Namespace, log: ProgressLogHandler) -> int:
    from explorium_events.emulator import EmulatorConfig, serve_forever

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
        _say(
            f"{PROG}: emulator serving {url}  (POST /v1/prospects/events)",
            f"  rate limit {limit}; accepts {key}; stats at {url}/_emulator/stats",
            f"  try: {PROG} fetch --base-url {url} --api-key "
            f"{'KEY' if args.api_key else 'anything'} --ids ids.txt",
            "  Ctrl-C to stop",
        )

    # aiohttp's access log says one line per request; shown with --verbose.
    access = logging.getLogger("aiohttp.access")
    saved_access = access.level, access.propagate
    if args.verbose:
        access.addHandler(log)
        access.setLevel(logging.INFO)
        access.propagate = False
    try:
        asyncio.run(serve_forever(config, host=args.host, port=args.port, on_ready=ready))
    except OSError as exc:
        reason = exc.strerror or exc
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {reason}") from None
    except KeyboardInterrupt:  # a Ctrl-C before the server's own handler was in place
        _say(f"{PROG}: emulator interrupted")
        return EXIT_INTERRUPTED
    finally:
        access.removeHandler(log)
        access.level, access.propagate = saved_access
    _say(f"{PROG}: emulator stopped")
    return EXIT_OK


# -- demo ----------------------------------------------------------------------------------


def demo_prospect_ids(count: int, seed: int = 0) -> list[str]:
    """The demo's IDs: the emulator's public ``make_prospect_ids``, for tests to pull too."""
    from explorium_events.emulator import make_prospect_ids

    return make_prospect_ids(count, seed)


@dataclass
class _DemoOutcome:
    """What the demo found after the pull: its closing lines, and whether the check held."""

    lines: list[str] = field(default_factory=list)
    ok: bool = False


def _demo(args: argparse.Namespace, log: ProgressLogHandler) -> int:
    from explorium_events.emulator import EmulatorConfig

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
    out = None if args.out in (None, "-") else args.out
    fmt = format_for(out, args.format)
    progress = Progress(sys.stderr, enabled=_progress_enabled(args.progress))
    state = _Pull(
        total=args.prospects, rate_limit=rate_limit, rate_window=rate_window, rate_cost="request"
    )
    outcome = _DemoOutcome()
    interrupted = False
    log.progress = progress
    try:
        asyncio.run(_demo_async(args, config, out, fmt, progress, state, outcome))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        log.progress = None
    report = _report(
        state,
        source="made-up IDs",
        ids=None,
        sink_name=out or "standard output",
        sink_format=fmt,
        failed_out=None,
        interrupted=interrupted,
    )
    _say(*summary_lines(report), stream=sys.stdout)
    if interrupted:
        _say(f"{PROG} demo: interrupted", stream=sys.stdout)
        return EXIT_INTERRUPTED
    if state.write_failed:
        _say(f"{PROG} demo: error: {state.write_failed}")
        return EXIT_FAILED
    _say(*outcome.lines, stream=sys.stdout)
    return EXIT_OK if outcome.ok else EXIT_FAILED


async def _demo_async(
    args: argparse.Namespace,
    config: EmulatorConfig,
    out: str | None,
    fmt: str,
    progress: Progress,
    state: _Pull,
    outcome: _DemoOutcome,
) -> None:
    from explorium_events.emulator import Emulator, expected_events

    ids = demo_prospect_ids(args.prospects, args.seed)
    seen: dict[str, int] = {}

    def count(events: tuple[Event, ...]) -> None:
        for event in events:
            seen[event.event_id] = seen.get(event.event_id, 0) + 1

    async with Emulator(config) as emulator:
        client = EventsClient(
            api_key="demo-key-not-a-secret",
            base_url=emulator.url,
            max_concurrency=args.concurrency,
            rate_limit=state.rate_limit,
            rate_window=state.rate_window,
            give_up_after=args.give_up_after,
        )
        limit = (
            "no rate limit"
            if state.rate_limit is None
            else (f"rate limit {state.rate_limit} requests per {state.rate_window:g}s")
        )
        _say(
            f"{PROG} demo: an emulated Events API at {emulator.url}",
            f"  {limit} (the real API: 200 per 60s), {config.latency_ms:g}ms latency "
            f"(+-{config.latency_jitter_ms:g}ms),",
            f"  {config.error_rate:.0%} of requests answered with a 5xx, "
            f"{config.duplicate_rate:.0%} of events sent twice.",
            f"Pulling the events of {len(ids):,} made-up prospects ({client.batch_size} per "
            f"request, {client.max_concurrency} at a time) into {out or 'standard output'} ...",
            "",
            stream=sys.stdout,
        )
        sink, _ = _open_outputs(
            out, fmt, append=args.append, failed_out=None, csv_raw_cells=args.csv_raw_cells
        )
        try:
            async with client:
                state.started = time.monotonic()
                await _pull(
                    client,
                    ids,
                    state,
                    sink=sink,
                    failed_out=None,
                    progress=progress,
                    on_events=count,
                )
        finally:
            sink.close()
        server = emulator.stats
        expected = {event["event_id"] for event in expected_events(ids, config=config)}

    got = set(seen)
    twice = sum(1 for times in seen.values() if times > 1)
    outcome.ok = got == expected and twice == 0 and not state.failures
    by_status = ", ".join(
        f"{number} x {status}" for status, number in sorted(server.requests_by_status.items())
    )
    outcome.lines.append(f"  server      {server.requests:,} requests answered: {by_status}")
    outcome.lines.append(
        f"              at most {server.peak_in_flight} in flight; "
        f"{server.duplicated_events:,} events sent twice on purpose"
    )
    if outcome.ok:
        outcome.lines.append(
            f"  checked     all {len(expected):,} events the emulator holds for these "
            "prospects arrived, once each"
        )
    else:
        outcome.lines.append(
            f"  CHECK FAILED  expected {len(expected):,} events; got {len(got & expected):,} of "
            f"them, {len(got - expected):,} unexpected, {twice:,} written twice"
        )
    real = pace(state.stats.requests, 200, 60.0, 1.0)
    if state.rate_limit is not None and real is not None:
        outcome.lines.append(
            f"  real API    at 200 requests per 60s, {state.stats.requests:,} requests would "
            f"need {real[0]:.0f}s at least"
        )
    outcome.lines.extend(
        [
            "",
            f"Next: `{PROG} serve` runs this emulator on port 8787 for your own code;",
            f"      `{PROG} fetch --help` tells how to pull real events.",
        ]
    )


# -- entry point ---------------------------------------------------------------------------

_LOG_FORMATS = {"serve": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
_COMMANDS: dict[str, Callable[[argparse.Namespace, ProgressLogHandler], int]] = {
    "fetch": _fetch,
    "serve": _serve,
    "demo": _demo,
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status (0, 1, 2 or 130)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # Retries are counted in the demo's report; its screen stays clean unless --verbose.
    quiet = logging.ERROR if args.command == "demo" else logging.WARNING
    level = logging.DEBUG if args.verbose else quiet
    fmt = _LOG_FORMATS.get(args.command, "%(levelname)s: %(message)s")
    try:
        with _logging_to_stderr(level, fmt) as log:
            return _COMMANDS[args.command](args, log)
    except UsageError as exc:
        _say(f"{PROG} {args.command}: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of standard output went away (`| head`): stop quietly, as other tools do.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:
        _say(f"{PROG} {args.command}: error: {exc}")
        return EXIT_FAILED
