"""``--summary-json FILE``: a command's summary as one JSON object, for scripts, versioned.

The object carries every figure of the summary a person reads on standard error (the
same numbers), plus ``schema_version`` (this module's ``SCHEMA_VERSION``, raised when a
field changes meaning or goes away; new fields may appear without it), ``command`` and
``exit_status``. ``-`` writes it to standard output, as one line, which is refused when
the command's data goes there too. A FILE is replaced; with ``sync --every``, each run
replaces it (on standard output: one line per run).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from .._errors import OutputWriteError
from .._paths import Named, clash, output_problem
from ._common import UsageError

SCHEMA_VERSION = 1

_encode = msgspec.json.Encoder().encode


def check_target(path: str | None, *, data_on_stdout: bool, others: Sequence[Named] = ()) -> None:
    """Refuse, before anything runs, a --summary-json that cannot be written or clashes.

    ``data_on_stdout``: the command writes its data to standard output, so ``-`` is
    refused. ``others`` are the command's other files (inputs and outputs), which the
    summary must not replace.
    """
    if path is None:
        return
    if path == "-":
        if data_on_stdout:
            raise UsageError(
                "--summary-json - would mix the summary into the data on standard output: "
                "give --summary-json FILE, or --out FILE for the data"
            )
        return
    problem = clash(list(others), [("--summary-json", path)])
    if problem is None:
        problem = output_problem("--summary-json", path)
    if problem is not None:
        raise UsageError(problem)


def write_summary(
    path: str | None, command: str, exit_status: int, figures: dict[str, Any]
) -> None:
    """Write the summary object to ``path`` (``-``: standard output); nothing when None."""
    if path is None:
        return
    document = {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "exit_status": exit_status,
        **figures,
    }
    data = _encode(document) + b"\n"
    if path == "-":
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            sys.stdout.write(data.decode())
            sys.stdout.flush()
        return
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as exc:  # a full disk: the message names the file
        raise OutputWriteError(path, exc) from exc


__all__ = ["SCHEMA_VERSION", "check_target", "write_summary"]
