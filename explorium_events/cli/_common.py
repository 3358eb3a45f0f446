"""What every command shares: the program's name, the exit-code table, and how a person is told.

Data goes to standard output (or ``--out``); everything meant for a person goes to
standard error through ``say``, so that ``explorium-events fetch | jq`` stays clean.
"""

from __future__ import annotations

import sys
from typing import TextIO

PROG = "explorium-events"

# The one exit-code table of every command.
EXIT_OK = 0  # the work is done
EXIT_FAILED = 1  # some work failed (a batch, the key, the output); the summary says which
EXIT_USAGE = 2  # a usage or input error: the message names the value
EXIT_INTERRUPTED = 130  # Ctrl-C (or SIGTERM where a command says so)


class UsageError(Exception):
    """A usage or input error: exit status 2, with this message."""


def say(*lines: str, stream: TextIO | None = None) -> None:
    """Print lines for a person: on standard error unless ``stream`` says otherwise."""
    target = stream or sys.stderr
    for line in lines:
        print(line, file=target)
    target.flush()


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
