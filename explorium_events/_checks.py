"""Checks of numeric settings, shared by every constructor that takes one. Pure: no I/O.

Each raises ConfigurationError naming the setting, the value and the rule. Comparisons
alone are not enough: ``nan < 0`` and ``nan <= 0`` are both False, so a NaN passes any
"must be positive" test written that way and then switches off whatever it was meant to
bound.
"""

from __future__ import annotations

import math
import numbers

from ._errors import ConfigurationError


def check_count(name: str, value: object, *, minimum: int = 1, also: str = "") -> int:
    """``value`` if it is a whole number of at least ``minimum``, else ConfigurationError.

    ``also`` names an alternative the caller accepts, for the message (e.g. "or None").
    """
    rule = f"a whole number of at least {minimum}" + (f", {also}" if also else "")
    # bool is an int to Python, but max_concurrency=True is a mistake, not "1".
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigurationError(f"{name}={value!r}: must be {rule}")
    return int(value)


def check_seconds(
    name: str, value: object, *, zero_ok: bool, also: str = "", at_least: float | None = None
) -> float:
    """``value`` if it is a finite number of seconds, positive (or zero if allowed).

    ``at_least`` (in practice ``MILLISECOND``) sets a floor above 0 instead: below it a
    deadline or window means nothing but a slip (1e-300 passes "more than 0").
    """
    if at_least is not None:
        floor = f"at least {at_least:g}" + (" (a millisecond)" if at_least == MILLISECOND else "")
        rule = f"a finite number of seconds, {floor}"
    else:
        rule = "a finite number of seconds, " + ("0 or more" if zero_ok else "more than 0")
    rule += f", {also}" if also else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigurationError(f"{name}={value!r}: must be {rule}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
        raise ConfigurationError(f"{name}={value!r}: must be {rule}")
    if at_least is not None and number < at_least:
        raise ConfigurationError(f"{name}={value!r}: must be {rule}")
    return number


MILLISECOND = 0.001
# The shortest rate window accepted. A shorter one paces nothing (it is gone before the
# next request is even stamped), the shared store counts windows in whole milliseconds (so
# a shorter one would mean one thing here and another there), and a value such as 1e-300
# is a slip, not a wish: rate_limit=None is how to ask for no limit.
MIN_RATE_WINDOW = MILLISECOND
RATE_WINDOW_RULE = f"a finite number of seconds, at least {MIN_RATE_WINDOW:g} (a millisecond)"


def check_rate_window(value: object) -> float:
    """``value`` if it is a finite number of seconds, at least a millisecond."""
    return check_seconds("rate_window", value, zero_ok=False, at_least=MIN_RATE_WINDOW)
