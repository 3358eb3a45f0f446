"""Output formats and the file extensions that choose them: one table for the CLI and pull()."""

from __future__ import annotations

import os

from ._errors import ConfigurationError

FORMATS = ("jsonl", "csv", "sqlite")
DEFAULT_FORMAT = "jsonl"
EXTENSIONS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".db": "sqlite",
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
}


def format_for(path: str | os.PathLike[str] | None, explicit: str | None = None) -> str:
    """The format to write: the one asked for, else the file's extension's, else jsonl."""
    if explicit:
        if explicit not in FORMATS:
            raise ConfigurationError(
                f"unknown output format {explicit!r}; known: {', '.join(FORMATS)}"
            )
        return explicit
    if path is None:
        return DEFAULT_FORMAT
    return EXTENSIONS.get(os.path.splitext(os.fspath(path))[1].lower(), DEFAULT_FORMAT)
