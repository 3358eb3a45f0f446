"""``explorium-events fetch``: the events of a list of prospect IDs, into a file or standard output.

This module checks the flags, the files (no output may be the input or another output,
each must be writable) and the input (every line, before the first request; input that
can be read only once is read once), builds the client, and hands the pull to ``_run``,
the one pull path.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .._client import EventsClient
from .._errors import ConfigurationError
from .._paths import Named, clash, output_problem, read_once
from .._query import start_of
from .._retry import RetryPolicy
from .._settings import API_KEY_VARIABLE, BASE_URL_VARIABLE, settings_from_environment
from .._sinks import FORMATS
from . import _entity, _flags
from ._common import PROG, UsageError, descriptor, is_terminal
from ._input import InputError, read_ids
from ._progress import Progress, progress_enabled
from ._request import PullRequest
from ._run import run_pull
from ._summary_json import check_target

logger = logging.getLogger("explorium_events")

_FETCH_DESCRIPTION = """\
Pull the events of a list of prospect IDs, in batches of 40, as fast as the rate limit
allows and never faster; failed requests are retried (5xx, timeouts, 429 after its
Retry-After), and events are written as they arrive.

Input (--ids FILE, or standard input): one prospect ID per line (40 hex characters;
blank lines, surrounding whitespace and case do not matter; UTF-8, a BOM and CRLF are
fine), or a CSV file with a header line, read from its prospect_id column. The whole
input is checked before the first request: a bad ID stops the run with its line
number, unless --skip-invalid. Repeated IDs are fetched once. Input that can be read
only once (standard input, a pipe such as --ids <(zcat ids.gz), /dev/stdin, a FIFO) is
read exactly once.

--ids, --out, --failed-out and --checkpoint must be different files (compared as files:
symlinks, hard links and relative paths resolved), and every output writable; else exit
2 before anything is opened.

Output (--out FILE, or standard output): the format is --format, else the --out
extension (an unknown one is refused; no extension: JSONL). JSONL, one event per line
as the API sent it (same keys, order and values, on one line); JSON (.json), the same
objects in one array, closed when the run ends; or CSV, one row per event under a fixed
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

  # one JSON array instead of JSONL; the summary's figures as JSON for a script
  {PROG} fetch --ids prospects.txt --out events.json -q --summary-json summary.json

  # against the local emulator (any key works there)
  {PROG} fetch --base-url http://127.0.0.1:8787 --api-key anything --ids prospects.txt

environment:
  {API_KEY_VARIABLE}   the API key when --api-key is not given (safer than the flag,
                      which other users of the machine can see in the process list)
  {BASE_URL_VARIABLE}  the API's address when --base-url is not given

exit status:
  0    every input ID was fetched (or skipped as invalid with --skip-invalid)
  1    some batches failed after their retries (listed in the summary and written to
       --failed-out), the API refused the key (401/403: not retried), IDs are
       unaccounted for (the run checks at its end that every ID read was fetched,
       failed, invalid or a repeat, and says how many are missing), the server
       answered nothing usable for --give-up-after seconds (every ID not yet fetched
       counts as failed), or the output could not be written (disk full, file too
       large, I/O error: the message names the file; the IDs not written go to
       --failed-out, or stay in --checkpoint)
  2    usage or input error: the message names the bad value (and its line number), or
       the flags and the file when two of them name the same file or an output cannot
       be written
  130  interrupted (Ctrl-C; with --checkpoint also SIGTERM); the output holds every
       batch finished before that, and --checkpoint resumes from there
  141  standard output was closed by its reader (`| head -1`): the run stops quietly,
       and the IDs whose events were not written go to --failed-out
"""


def add_parser(subparsers: _flags.Subparsers) -> None:
    """Add ``fetch`` and its flags."""
    fetch = _flags.add_command(
        subparsers,
        "fetch",
        help="pull the events of a list of prospect IDs into JSONL or CSV",
        description=_FETCH_DESCRIPTION,
        epilog=_FETCH_EPILOG,
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
        type=_entity.parse_event_types,
        default=None,
        help=_entity.EVENT_TYPES_HELP,
    )
    _entity.add_entity_flag(fetch)
    fetch.add_argument(
        "--since",
        metavar="WHEN",
        type=_flags.timestamp_type,
        help="events at or after WHEN: a date "
        "(2026-06-01) or an ISO 8601 datetime (UTC unless it says otherwise); the API keeps "
        "the last 3 months only",
    )
    fetch.add_argument(
        "--until",
        metavar="WHEN",
        type=_flags.timestamp_type,
        help="events at or before WHEN (a date means that whole day)",
    )
    _flags.add_output(fetch, None)
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
        "left, never writing an event twice; needs --ids FILE and --out FILE, and --ids "
        "must be a regular file (a resume reads it again): save piped IDs to a file first",
    )
    fetch.add_argument(
        "--retry-failed",
        action="store_true",
        help="with --checkpoint: retry exactly the batches that failed in earlier runs "
        "(they are otherwise skipped)",
    )
    _flags.add_base_url(fetch)
    _flags.add_api_key(fetch)
    _flags.add_concurrency(fetch)
    _flags.add_batch_size(fetch)
    _flags.add_rate_limit(fetch)
    _flags.add_rate_limit_cost(fetch)
    _flags.add_max_attempts(fetch)
    _flags.add_give_up_after(fetch)
    _flags.add_rate_limit_store(fetch)
    _flags.add_progress(fetch)
    _flags.add_summary_json(fetch)
    _flags.add_verbose(fetch)


def run(args: argparse.Namespace) -> int:
    """Check the flags and the input, then pull; the exit status."""
    out = None if args.out in (None, "-") else args.out
    fmt = _check_flags(args, out)
    client = _client(args)
    if args.ids in (None, "-") and is_terminal(sys.stdin):
        raise UsageError(
            f"no {args.entity} IDs: give --ids FILE, or pipe them in (one per line), e.g. "
            f"`{PROG} fetch < ids.txt`"
        )
    try:
        ids = read_ids(args.ids, stdin=sys.stdin, entity=args.entity)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    if ids.invalid_count and not args.skip_invalid:
        raise UsageError(ids.invalid_message())
    if ids.valid == 0:
        logger.warning("%s holds no %s IDs: nothing to fetch", ids.name, args.entity)
    request = PullRequest(
        command="fetch",
        ids=ids,
        total=ids.valid,
        source=ids.name,
        invalid=ids.invalid_count,
        invalid_examples=[bad.describe() for bad in ids.invalid],
        out=out,
        fmt=fmt,
        append=args.append,
        checkpoint=args.checkpoint,
        retry_failed=args.retry_failed,
        failed_out=args.failed_out,
        event_types=args.event_types,
        since=args.since,
        until=args.until,
        csv_raw_cells=args.csv_raw_cells,
        entity=args.entity,
        quiet=args.quiet,
        summary_json=args.summary_json,
    )
    progress = Progress(sys.stderr, enabled=progress_enabled(args.progress, quiet=args.quiet))
    return run_pull(client, request, progress)


def _check_flags(args: argparse.Namespace, out: str | None) -> str:
    """The output format, once the flags are known to go together; else UsageError."""
    # The environment is read in _settings only; a blank key counts as none.
    key = args.api_key if args.api_key is not None else settings_from_environment().get("api_key")
    if not (key or "").strip():
        raise UsageError(
            f"no API key: pass --api-key KEY or set the {API_KEY_VARIABLE} environment variable"
        )
    since, until = args.since, args.until
    if since is not None and until is not None and start_of(since) > start_of(until):
        raise UsageError(f"--since {since} is after --until {until}")
    if (problem := _entity.event_types_problem(args.entity, args.event_types)) is not None:
        raise UsageError(problem)
    # Before the input is read (a pipe is consumed by it) and before any output is opened.
    fmt = _check_paths(args, out)
    if fmt == "sqlite" and out is None:
        raise UsageError("--format sqlite writes to a file: give --out FILE, e.g. events.db")
    if fmt == "parquet" and out is None:
        raise UsageError(
            "--format parquet writes a folder of part files: give --out DIR, e.g. events.parquet"
        )
    require = FORMATS[fmt].require
    if require is not None:
        try:
            require()  # a missing extra, said before the input is read
        except ConfigurationError as exc:
            raise UsageError(str(exc)) from None
    if args.checkpoint is not None:
        problem = _checkpoint_problem(args, out, fmt)
        if problem is not None:
            raise UsageError(problem)
    elif args.retry_failed:
        raise UsageError("--retry-failed needs --checkpoint: failed batches are recorded there")
    return fmt


def _checkpoint_problem(args: argparse.Namespace, out: str | None, fmt: str) -> str | None:
    """Why these flags cannot go with --checkpoint, or None.

    (Whether --checkpoint is the input or another output is for ``_check_paths``.)
    """
    if args.ids in (None, "-"):
        return (
            "--checkpoint needs --ids FILE: standard input cannot be read again on resume; "
            "save the IDs to a file first (e.g. `... > ids.txt`), then pass --ids ids.txt"
        )
    once = read_once(args.ids)
    if once is not None:
        # A resume must read the same input again: a pipe or FIFO is gone once read.
        return (
            f"--checkpoint needs --ids FILE that can be read again on resume, and {args.ids} "
            f"is {once}; save the IDs to a file first (e.g. `cat ... > ids.txt`), then pass "
            "--ids ids.txt"
        )
    if out is None:
        return "--checkpoint needs --out FILE: standard output cannot be resumed"
    if args.append:
        return "--checkpoint appends on resume by itself: drop --append"
    if FORMATS[fmt].resume == "none":
        return (
            f"--checkpoint cannot resume --format {fmt} (one JSON array, whole only once "
            "closed): write JSONL (.jsonl; `jq -s .` makes the array), or drop --checkpoint"
        )
    return None


def _check_paths(args: argparse.Namespace, out: str | None) -> str:
    """Refuse, before anything is read or opened, files that clash or cannot be written.

    Returns the output format, which is judged once no file clashes with another.
    """
    ids = None if args.ids in (None, "-") else args.ids
    inputs: list[Named] = [
        ("--ids", ids) if ids is not None else ("standard input", descriptor(sys.stdin))
    ]
    outputs: list[Named] = [
        ("--out", out) if out is not None else ("standard output", descriptor(sys.stdout)),
        ("--failed-out", args.failed_out),
        ("--checkpoint", args.checkpoint),
    ]
    problem = clash(inputs, outputs)
    if problem is not None:
        raise UsageError(problem)
    fmt = _flags.output_format(out, args.format)
    if problem is None and out is not None:
        problem = output_problem("--out", out, sqlite=fmt == "sqlite", folder=fmt == "parquet")
    if problem is None and args.failed_out is not None:
        problem = output_problem("--failed-out", args.failed_out)
    if problem is None and args.checkpoint is not None:
        # What an existing file holds, the checkpoint itself tells better ("not a checkpoint").
        problem = output_problem("--checkpoint", args.checkpoint, sqlite=True, database=False)
    if problem is not None:
        raise UsageError(problem)
    check_target(args.summary_json, data_on_stdout=out is None, others=[*inputs, *outputs])
    return fmt


def _client(args: argparse.Namespace) -> EventsClient:
    rate_limit, rate_window = args.rate_limit
    try:
        return EventsClient(
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
            rate_limit_store=args.rate_limit_store,
        )
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
