"""What every command shares: the program's name, the exit-code table, and how a person is told.

Data goes to standard output (or ``--out``); everything meant for a person goes to
standard error through ``say``, so that ``explorium-events fetch | jq`` stays clean.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TextIO

PROG = "explorium-events"

# The one exit-code table of every command.
EXIT_OK = 0  # the work is done
EXIT_FAILED = 1  # some work failed (a batch, the key, the output); the summary says which
EXIT_USAGE = 2  # a usage or input error: the message names the value
EXIT_INTERRUPTED = 130  # Ctrl-C (or SIGTERM where a command says so)
# The reader of standard output went away (`| head -1`): 128 + SIGPIPE (13), the status a
# shell shows for a program that SIGPIPE ended, as `yes | head -1` does. Returned rather
# than dying by the signal, so that --failed-out and --summary-json are still written.
EXIT_PIPE = 141


class UsageError(Exception):
    """A usage or input error: exit status 2, with this message."""


def say(*lines: str, stream: TextIO | None = None) -> None:
    """Print lines for a person: on standard error unless ``stream`` says otherwise."""
    target = stream or sys.stderr
    for line in lines:
        print(line, file=target)
    target.flush()


def report(quiet: bool, *lines: str) -> None:
    """Print a report for a person on standard error, unless -q/--quiet asked for none."""
    if not quiet:
        say(*lines)


def silence_stdout() -> None:
    """Send what is still bound for a closed standard output to /dev/null.

    Python flushes ``sys.stdout`` at exit, and a closed pipe makes that flush print
    "Exception ignored ... BrokenPipeError": pointing the descriptor at /dev/null (the
    idiom of Python's documentation on SIGPIPE) lets everything close quietly.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 batch``, ``2 batches``: the count with thousands separators and the right word."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"


def descriptor(stream: object) -> int | None:
    """The descriptor under a standard stream, or None (a test's stand-in has none)."""
    try:
        fileno = getattr(stream, "fileno", None)
        return int(fileno()) if fileno is not None else None
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def is_terminal(stream: object) -> bool:
    """Whether ``stream`` is a terminal (False for a closed stream or a capture)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
