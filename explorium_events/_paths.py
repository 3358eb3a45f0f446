"""Files judged before any is opened: input that can be read only once, clashes, bad outputs.

``pull()`` asks ``read_once`` whether a checkpointed input can be read again; the
command line asks all three before it reads the input or opens an output. Everything
here looks with ``os.stat`` only. Opening would do harm: a FIFO blocks until a writer
comes and a pipe is consumed by reading it; an output opened with ``"w"`` is truncated,
which destroys it if it is also the input or another output.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

# The first 16 bytes of every SQLite 3 database file.
_SQLITE_MAGIC = b"SQLite format 3\x00"
# Paths that name an open descriptor (/dev/stdin, /dev/fd/63 from bash's <(...)) or a
# device: reopening them is not reading the same bytes again on every system.
_DESCRIPTOR_PREFIXES = ("/dev/", "/proc/")

# A flag and what it names: a path, or a file descriptor for standard input and output.
Named = tuple[str, str | int | None]


def read_once(path: str | None) -> str | None:
    """Why this input can be read only once (``"a pipe or FIFO"``...), or None if it can be reread.

    A path that cannot be looked at (missing, a folder) is None here: reading it says why.
    """
    if path is None or path == "-":
        return "standard input"
    try:
        info = os.stat(path)
    except OSError:
        return None
    if stat.S_ISFIFO(info.st_mode):
        return "a pipe or FIFO"
    if stat.S_ISDIR(info.st_mode):
        return None
    if not stat.S_ISREG(info.st_mode):
        return "a device, not a regular file"
    if os.path.abspath(path).startswith(_DESCRIPTOR_PREFIXES):
        return "an open file descriptor"
    return None


def _identity(where: str | int) -> tuple[object, ...] | None:
    """What makes two names the same file: (device, inode) if it exists, else its resolved path.

    Existing files that are not regular (``/dev/null``, a terminal) may be named twice.
    """
    try:
        info = os.fstat(where) if isinstance(where, int) else os.stat(where)
    except FileNotFoundError:
        if isinstance(where, int):
            return None
        # realpath resolves the symlinks of a path that does not exist yet, dangling ones too.
        return ("path", os.path.realpath(where))
    except (OSError, ValueError):  # a closed descriptor, a path under a regular file
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return ("file", info.st_dev, info.st_ino)


def _shown(where: str | int) -> str:
    return os.path.realpath(where) if isinstance(where, str) else "the same file"


def clash(inputs: Sequence[Named], outputs: Sequence[Named]) -> str | None:
    """The usage error when an output names the same file as the input or another output.

    ``inputs`` and ``outputs`` are (flag, path or descriptor) pairs; None means unused.
    """
    seen: list[tuple[str, str | int, tuple[object, ...], bool]] = []
    for is_input, named in [(True, item) for item in inputs] + [(False, item) for item in outputs]:
        flag, where = named
        if where is None:
            continue
        identity = _identity(where)
        if identity is None:
            continue
        for other_flag, other_where, other_identity, other_is_input in seen:
            if other_identity != identity:
                continue
            victim = "the input" if other_is_input else other_flag
            path = _shown(where) if isinstance(where, str) else _shown(other_where)
            return (
                f"{other_flag} and {flag} must not be the same file: both name {path}, and "
                f"writing {flag} would destroy {victim}. Give {flag} a file of its own"
            )
        seen.append((flag, where, identity, is_input))
    return None


def output_problem(
    flag: str,
    path: str,
    *,
    sqlite: bool = False,
    database: bool | None = None,
    folder: bool = False,
) -> str | None:
    """Why ``path`` cannot be written as this output, or None when it looks writable.

    ``sqlite``: the file is an SQLite database (an SQLite output, a checkpoint), which
    also needs its folder writable for its journal; ``database`` (default: ``sqlite``):
    an existing file must already be one. ``folder``: the output is a folder of files
    (a Parquet dataset), made if missing; what it holds is for its format to judge.
    Root may write anywhere, so the permission checks find nothing when run as root.
    """
    if folder:
        reason = _folder_output_reason(path)
    else:
        database = sqlite if database is None else database
        reason = _output_reason(path, sqlite=sqlite, database=database)
    return None if reason is None else f"{flag}: cannot write {path}: {reason}"


def _folder_output_reason(path: str) -> str | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return _folder_problem(os.path.dirname(os.path.abspath(path)))
    except NotADirectoryError:
        return f"{_not_a_folder(os.path.dirname(os.path.abspath(path)))} is not a folder"
    except OSError as exc:
        return str(exc.strerror or exc)
    if not stat.S_ISDIR(info.st_mode):
        return "it is a file, and this output is a folder of part files; give a new name"
    if not os.access(path, os.W_OK | os.X_OK):
        return "cannot create files in it (permission denied)"
    return None


def _output_reason(path: str, *, sqlite: bool, database: bool) -> str | None:
    folder = os.path.dirname(os.path.abspath(path))
    try:
        info: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        info = None
    except NotADirectoryError:
        return f"{_not_a_folder(folder)} is not a folder"
    except OSError as exc:
        return str(exc.strerror or exc)
    if info is not None and stat.S_ISDIR(info.st_mode):
        return f"it is a folder; give a file name, e.g. {os.path.join(path, 'events')}"
    if info is not None and not stat.S_ISREG(info.st_mode):
        return None  # /dev/null, a FIFO a reader waits on: opening it is the only test
    if info is None or sqlite:
        problem = _folder_problem(folder)
        if problem is not None:
            return problem
    if info is not None:
        if not os.access(path, os.W_OK):
            return "the file is read-only (permission denied)"
        if database and info.st_size and not _is_sqlite(path):
            return (
                "the file exists and is not an SQLite database; give the name of a new "
                "file, or of an SQLite database to add to"
            )
    return None


def _not_a_folder(folder: str) -> str:
    """The first part of ``folder`` that exists but is not a folder (or ``folder`` itself)."""
    probe = folder
    while True:
        parent = os.path.dirname(probe)
        if parent == probe or os.path.isdir(parent):
            return probe
        probe = parent


def _folder_problem(folder: str) -> str | None:
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        return f"the folder {folder} does not exist"
    except NotADirectoryError:
        return f"{_not_a_folder(folder)} is not a folder"
    except OSError as exc:
        return f"cannot use the folder {folder} ({exc.strerror or exc})"
    if not stat.S_ISDIR(info.st_mode):
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create files in the folder {folder} (permission denied)"
    return None


def _is_sqlite(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False
