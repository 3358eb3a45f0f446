"""The books of a run: at its end, every input value is in exactly one state, or it was lost.

    values read == succeeded + failed + invalid (skipped) + repeated (fetched once)

``values`` is counted when the input is first read, before any request; the other
terms are what the pull did with it. ``PullSummary.complete`` holds only when its books
balance, and the command line's one pull path (``fetch``, with and without
``--checkpoint``, and ``demo``) checks them at the end of every run against what it
counted itself: a bug that drops input (such as reading a pipe a second time and finding
it empty) then fails loudly instead of ending with "Done" and exit status 0.
"""

from __future__ import annotations


def unaccounted(*, values: int, repeated: int, invalid: int, succeeded: int, failed: int) -> int:
    """Input values in no state at the end of a run: 0 when the books balance.

    Negative when the run accounted for more values than the input held.
    """
    return values - repeated - invalid - succeeded - failed


def unaccounted_message(missing: int, *, unique: int, entity: str = "prospect") -> str:
    """One line for a run whose books do not balance; ``unique`` is how many IDs it had to do.

    ``entity`` names whose IDs they are: "prospect" or "business".
    """
    if missing < 0:
        return (
            f"the run accounted for {-missing:,} more {entity} IDs than the input held "
            f"({unique:,}): the output cannot be trusted. This is a bug: please report it"
        )
    return (
        f"{missing:,} of {unique:,} {entity} IDs are unaccounted for: neither fetched nor "
        "recorded as failed, so the output is incomplete. This is a bug: please report it "
        "with the command that was run"
    )
