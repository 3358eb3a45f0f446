"""The books of a run: at its end, every input value is in exactly one state, or it was lost.

    values read == succeeded + failed + invalid (skipped) + repeated (fetched once)

``values`` is counted when the input is first read, before any request; the other
terms are what the pull did with it. The command line (``fetch``, with and without
``--checkpoint``, and ``demo``) and ``pull()`` check this at the end of every run and
succeed only when nothing is missing and nothing failed: a bug that drops input (such
as reading a pipe a second time and finding it empty) then fails loudly instead of
ending with "Done" and exit status 0.
"""

from __future__ import annotations


def unaccounted(*, values: int, repeated: int, invalid: int, succeeded: int, failed: int) -> int:
    """Input values in no state at the end of a run: 0 when the books balance.

    Negative when the run accounted for more values than the input held.
    """
    return values - repeated - invalid - succeeded - failed


def unaccounted_message(missing: int, *, unique: int) -> str:
    """One line for a run whose books do not balance; ``unique`` is how many IDs it had to do."""
    if missing < 0:
        return (
            f"the run accounted for {-missing:,} more prospect IDs than the input held "
            f"({unique:,}): the output cannot be trusted. This is a bug: please report it"
        )
    return (
        f"{missing:,} of {unique:,} prospect IDs are unaccounted for: neither fetched nor "
        "recorded as failed, so the output is incomplete. This is a bug: please report it "
        "with the command that was run"
    )
