"""The command line: ``explorium-events fetch | serve | demo | sync | enroll | ...``; ``main``.

``main(argv)`` parses, runs one command and returns its exit status; it never calls
``sys.exit`` itself, so tests drive it directly. Data goes to standard output (or
``--out``); everything meant for a person (progress, logs, the summary, errors) goes
to standard error, so that ``explorium-events fetch | jq`` stays clean.

Each command is a module with ``add_parser(subparsers)`` and ``run(args) -> int``; a
new command is a new module and one line in ``COMMANDS``. Shared flags are in
``_flags``, the one pull path (fetch and demo) in ``_run``, its summary in ``_summary``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from types import ModuleType

from .._settings import API_KEY_VARIABLE
from .._version import __version__
from . import _demo, _enroll, _enrollments, _fetch, _flags, _listen, _serve, _sync, _webhook
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    EXIT_USAGE,
    PROG,
    UsageError,
    say,
    silence_stdout,
)
from ._progress import ProgressLogHandler

# Each: add_parser(subparsers) -> None and run(args) -> int, in the order --help lists them.
COMMANDS: tuple[ModuleType, ...] = (
    _fetch,
    _serve,
    _demo,
    _sync,
    _enroll,
    _enrollments,
    _webhook,
    _listen,
)

_DESCRIPTION = """\
Fetch Explorium prospect events for any number of prospects, at the API's rate limit,
keep a list current with only what is new (sync), have events pushed as they happen
(enroll, webhook, listen), or run a local emulator of the Events API. New here? Run
`explorium-events demo`.
"""

_MAIN_EPILOG = f"""\
examples:
  {PROG} demo
  export {API_KEY_VARIABLE}=...       # your key; never printed
  {PROG} fetch --ids prospects.txt --out events.jsonl
  {PROG} sync --ids crm.txt --state crm.sync --out events.jsonl   # only what is new
  {PROG} enroll --ids crm.txt --enrollment-key crm-2026 --event-types role,company
  {PROG} listen --secret-file wh.secret --out events.db   # pushed events, verified
  {PROG} serve --port 8787
  {PROG} COMMAND --help          # every flag of a command, with examples

conventions (every command): data alone on standard output, everything for a person on
standard error; -q/--quiet: errors only; --summary-json FILE: the summary as JSON (fetch,
demo, sync, enroll); --out's format from --format or its extension, never guessed; a
default output file is never replaced without --force. Exit status: 0 done, 1 failed
work, 2 usage or input error, 130 interrupted, 141 standard output closed by its reader.
"""

# Log lines per command: the emulator's carry a time, as a server's do.
_SERVER_LOG = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LOG_FORMATS = {"serve": _SERVER_LOG, "listen": _SERVER_LOG}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command; each command's run() is its ``run`` default."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=_MAIN_EPILOG,
        formatter_class=_flags.Formatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in COMMANDS:
        before = set(subparsers.choices)
        command.add_parser(subparsers)
        runner: Callable[[argparse.Namespace], int] = command.run
        for name in set(subparsers.choices) - before:
            subparsers.choices[name].set_defaults(run=runner)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status (0, 1, 2, 130, or 141 for a closed pipe)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # Retries are counted in the demo's report; its screen stays clean unless --verbose.
    # -q: errors only.
    quiet = logging.ERROR if args.command == "demo" or args.quiet else logging.WARNING
    level = logging.DEBUG if args.verbose else quiet
    fmt = _LOG_FORMATS.get(args.command, "%(levelname)s: %(message)s")
    try:
        with _logging_to_stderr(level, fmt):
            status: int = args.run(args)
            return status
    except UsageError as exc:
        say(f"{PROG} {args.command}: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        say(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of standard output went away (`| head`): stop quietly, as other tools do.
        silence_stdout()
        return EXIT_PIPE
    except OSError as exc:
        say(f"{PROG} {args.command}: error: {exc}")
        return EXIT_FAILED


@contextlib.contextmanager
def _logging_to_stderr(level: int, fmt: str) -> Iterator[ProgressLogHandler]:
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


__all__ = ["COMMANDS", "build_parser", "main"]
