"""The ``json`` output: one JSON array of every event, streamed, closed by its ``]`` at the end.

    sink = open_sink("events.json", "json")    # or open_sink(None, "json") for stdout
    with sink:
        sink.write(batch.events)               # "[\\n{...},\\n{...}" as batches arrive
    # close() writes "\\n]\\n": the file is a JSON array; none written: "[]\\n"

Each element is the JSON object the API sent, on one line (as in JSONL). The array is
whole only once the sink is closed: a run killed before that leaves it without its
``]``. So the format cannot be resumed (its ``resume`` is "none": a checkpoint or a sync
state refuses it) nor appended to; JSONL (``jq -s . events.jsonl`` makes the array) can.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from .._errors import ConfigurationError, OutputWriteError
from .._results import AnyEvent
from ._files import _ByteSink, _one_line

_CLOSE = b"\n]\n"
_EMPTY = b"[]\n"


class JsonArraySink(_ByteSink):
    """One JSON array, one event object per line; the closing ``]`` is written by close()."""

    format = "json"

    def __init__(self, path: str | None, *, append: bool) -> None:
        if append and path is not None and _size(path) > 0:
            raise ConfigurationError(
                f"cannot append to {path}: a JSON array cannot be added to once closed; "
                "write JSONL (.jsonl) to append, or give a new file"
            )
        super().__init__(path, append=False)
        self._ended = False

    def _render(self, events: Iterable[AnyEvent]) -> tuple[bytes, int]:
        lines = [_one_line(event.to_json()) for event in events]
        if not lines:
            return b"", 0
        # ``length`` counts whole batches only: 0 until the first one opened the array.
        start = b"[\n" if self.length == 0 else b",\n"
        return start + b",\n".join(lines), len(lines)

    def close(self) -> None:
        """Write the array's end (``]``, or ``[]`` when no event came), then close.

        A reader that went away (a closed pipe) is not an error here; a file that
        refuses the last bytes is an OutputWriteError naming it.
        """
        if not self._ended and not self._closed:
            self._ended = True
            try:
                self._write_all(_CLOSE if self.length else _EMPTY)
                self.flush_durably()
            except BrokenPipeError:
                pass
            except OutputWriteError:
                super().close()
                raise
            except OSError as exc:
                super().close()
                raise OutputWriteError(self.name, exc) from exc
        super().close()


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


__all__ = ["JsonArraySink"]
