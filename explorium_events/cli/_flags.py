"""Every flag more than one command takes, declared once, with the argument types that check them.

A command's module builds its parser from these (``add_rate_limit(parser)``) plus its
own flags. Each argument type names the bad value and the rule, so argparse's error
line (``argument --since: ...``) is all a person needs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import shutil
from collections.abc import Callable
from typing import TypeAlias

from .._checks import MIN_RATE_WINDOW, RATE_WINDOW_RULE
from .._errors import ConfigurationError
from .._ids import MAX_BATCH_SIZE
from .._query import parse_timestamp
from .._retry import RetryPolicy
from .._settings import (
    API_KEY_VARIABLE,
    BASE_URL_VARIABLE,
    DEFAULT_BASE_URL,
    DEFAULT_GIVE_UP_AFTER,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_RATE_LIMIT,
    DEFAULT_RATE_WINDOW,
    RATE_LIMIT_STORE_VARIABLE,
)
from .._sinks import DEFAULT_FORMAT, EXTENSIONS, FORMATS
from ._common import UsageError

# What add_parser(subparsers) receives; a string, since argparse's class is not generic at runtime.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

API_RATE_LIMIT = (DEFAULT_RATE_LIMIT, DEFAULT_RATE_WINDOW)


# -- argument types: each names the bad value ------------------------------------------------


def rate_limit_type(text: str) -> tuple[int | None, float]:
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
    if window < MIN_RATE_WINDOW:
        raise argparse.ArgumentTypeError(f"{text!r}: the window must be {RATE_WINDOW_RULE}")
    return count, window


def timestamp_type(text: str) -> dt.date | dt.datetime:
    """A date or an ISO 8601 datetime (UTC unless it says otherwise), as the library reads it."""
    try:
        moment = parse_timestamp(text, name=None)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    assert moment is not None
    return moment


def int_between(low: int, high: int | None = None) -> Callable[[str], int]:
    """A whole number from ``low`` (to ``high``)."""

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


def number_at_least(low: float) -> Callable[[str], float]:
    """A finite number no less than ``low``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= low):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number >= {low:g}")
        return value

    return parse


def give_up_after_type(text: str) -> float | None:
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


def probability_type(text: str) -> float:
    """A number from 0 to 1."""
    value = number_at_least(0.0)(text)
    if value > 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability from 0 to 1")
    return value


# -- a command's parser ----------------------------------------------------------------------


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks; a little wider than argparse's default."""

    def __init__(self, prog: str) -> None:
        width = shutil.get_terminal_size((100, 24)).columns - 2
        super().__init__(prog, max_help_position=32, width=min(width, 100))


def add_command(
    subparsers: Subparsers, name: str, *, help: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """A command's parser, formatted like every other; ``-v`` is added last by ``add_verbose``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=Formatter,
        allow_abbrev=False,
    )
    return parser


# -- the shared flags ------------------------------------------------------------------------


def add_api_key(
    parser: argparse.ArgumentParser,
    help: str = f"the API key (default: ${API_KEY_VARIABLE}); prefer the variable",
) -> None:
    parser.add_argument("--api-key", metavar="KEY", help=help)


def add_base_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help=f"the API's address (default: ${BASE_URL_VARIABLE}, else {DEFAULT_BASE_URL})",
    )


def add_concurrency(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        metavar="N",
        type=int_between(1, 64),
        default=DEFAULT_MAX_CONCURRENCY,
        help="requests in flight at once (default: %(default)s)",
    )


def add_batch_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-size",
        metavar="N",
        type=int_between(1, MAX_BATCH_SIZE),
        default=MAX_BATCH_SIZE,
        help="prospect IDs per request (default: %(default)s)",
    )


def add_rate_limit(
    parser: argparse.ArgumentParser,
    *,
    default: tuple[int | None, float] = API_RATE_LIMIT,
    help: str = "at most N units in any SECONDS-second window, or 'off' (default: 200/60, "
    "the API's documented limit)",
) -> None:
    parser.add_argument(
        "--rate-limit", metavar="N/SECONDS", type=rate_limit_type, default=default, help=help
    )


def add_rate_limit_cost(
    parser: argparse.ArgumentParser,
    help: str = "what one unit of --rate-limit is: a request, or a prospect ID; the API does "
    "not document which it counts (default: %(default)s)",
) -> None:
    parser.add_argument(
        "--rate-limit-cost", choices=("request", "id"), default="request", help=help
    )


def add_rate_limit_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate-limit-store",
        metavar="URL",
        default=None,
        help="a Redis URL, e.g. redis://localhost:6379/0: every process given the same "
        "store shares one rate-limit window and one 429 pause for the key (needs pip "
        f"install 'explorium-events[redis]'; default: ${RATE_LIMIT_STORE_VARIABLE}, else none)",
    )


def add_max_attempts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-attempts",
        metavar="N",
        type=int_between(1, 20),
        default=RetryPolicy().max_attempts,
        help="attempts per batch before it counts as failed; 1: no retries (default: %(default)s)",
    )


def add_give_up_after(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--give-up-after",
        metavar="SECONDS",
        type=give_up_after_type,
        default=DEFAULT_GIVE_UP_AFTER,
        help="stop when the server has answered nothing usable (only timeouts, dropped "
        "connections, unreadable bodies, 5xx or 429) for SECONDS; every ID not yet fetched "
        "then counts as failed (in --failed-out, and in --checkpoint for --retry-failed); "
        "'off': never (default: %(default)g)",
    )


def add_output(parser: argparse.ArgumentParser, default: str | None) -> None:
    """--out, --format, --append and --csv-raw-cells; with a ``default`` file, --force too.

    A default file is not put in ``args.out`` (None when --out is not given): the command
    writes it only if it does not exist yet, or with --force (``default_output``).
    """
    if default is None:
        where = "standard output"
    else:
        where = f"{default}, which is never overwritten without --force"
    parser.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help=f"write events to FILE ('-': standard output); a FILE you name is replaced "
        f"(default: {where})",
    )
    if default is not None:
        parser.set_defaults(default_out=default)
        parser.add_argument(
            "--force",
            action="store_true",
            help=f"replace {default} when --out is not given and it exists",
        )
    add_format(parser)
    parser.add_argument(
        "--append",
        action="store_true",
        help="add to --out instead of replacing it (a CSV header is written only once)",
    )
    add_csv_raw_cells(parser)


def _known_extensions() -> str:
    return ", ".join(f"{ext} ({name})" for ext, name in sorted(EXTENSIONS.items()))


def add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default=None,
        help=f"output format (default: from the --out extension: {_known_extensions()}; "
        "jsonl for standard output and for a name without an extension, such as /dev/fd/3; "
        "any other extension needs --format). json is one array, closed at the end: it "
        "cannot be appended to or resumed. parquet is a folder of part files and needs "
        "the [parquet] extra (pyarrow)",
    )


def output_format(out: str | None, explicit: str | None, flag: str = "--out") -> str:
    """The format to write: ``--format``, else ``out``'s extension's; never a guess.

    Standard output (``out`` None) and a name without an extension (``events``,
    ``/dev/stdout``, a ``>(gzip ...)`` substitution) are JSONL; an extension that is
    no format's (``.txt``) without ``--format`` is a UsageError naming the known ones.
    """
    if explicit:
        return explicit
    if out is None:
        return DEFAULT_FORMAT
    extension = os.path.splitext(os.path.basename(out))[1].lower()
    if not extension:
        return DEFAULT_FORMAT
    fmt = EXTENSIONS.get(extension)
    if fmt is None:
        raise UsageError(
            f"{flag} {out}: {extension} is not the extension of an output format; known: "
            f"{_known_extensions()}. Name the file so, or say --format"
        )
    return fmt


def default_output(args: argparse.Namespace) -> str | None:
    """``--out`` as given; else the command's default file, refused if it exists (no --force).

    None is standard output. A file the user named is theirs to replace; a default one
    they may not know is there (``events.jsonl`` from an earlier fetch) is kept.
    """
    if args.out is not None:
        return None if args.out == "-" else str(args.out)
    default: str | None = getattr(args, "default_out", None)
    if default is None:
        return None
    if os.path.lexists(default) and not args.force and not args.append:
        raise UsageError(
            f"{default} exists and --out was not given: pass --force to replace it, or "
            f"--out FILE to write elsewhere"
        )
    return default


def add_csv_raw_cells(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--csv-raw-cells",
        action="store_true",
        help="CSV: write text cells as the API sent them. By default a text cell starting "
        "with =, +, -, @, a tab or a carriage return gets a leading ' so that a spreadsheet "
        "shows it instead of running it as a formula (OWASP 'CSV injection'); numbers "
        "such as -3 are never changed",
    )


def add_latency_ms(parser: argparse.ArgumentParser, *, default: float, help: str) -> None:
    parser.add_argument(
        "--latency-ms", metavar="MS", type=number_at_least(0), default=default, help=help
    )


def add_error_rate(parser: argparse.ArgumentParser, *, default: float, help: str) -> None:
    parser.add_argument(
        "--error-rate", metavar="P", type=probability_type, default=default, help=help
    )


def add_duplicate_rate(parser: argparse.ArgumentParser, *, default: float, help: str) -> None:
    parser.add_argument(
        "--duplicate-rate", metavar="P", type=probability_type, default=default, help=help
    )


def add_seed(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--seed", type=int, default=0, help=help)


def add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show the progress line on standard error (default: only when it is a terminal)",
    )


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """-v/--verbose and -q/--quiet, which exclude each other."""
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v", "--verbose", action="store_true", help="debug logs on standard error"
    )
    loudness.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress line, no report or summary: only errors on standard error (the "
        "exit status tells how it went)",
    )


def add_summary_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--summary-json",
        metavar="FILE",
        help="also write the summary's figures as one JSON object to FILE ('-': standard "
        "output, when the data goes elsewhere); its schema_version field says its shape",
    )
