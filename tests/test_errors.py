"""The error tree: the drawing in _errors.py's docstring is the real class hierarchy."""

from __future__ import annotations

import re

from explorium_events import _errors


def _drawn_parents() -> dict[str, str]:
    """Each class drawn in the docstring, mapped to the class drawn as its parent."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (_errors.__doc__ or "").splitlines():
        # The drawing is the indented block: a name at its start or after a branch.
        match = re.match(r"^    [│ ]*(?:[├└]── )?([A-Z][A-Za-z]+)(?:\s|$)", line)
        if match is None:
            continue
        depth = len(line) - len(line.lstrip(" │├└─"))
        name = match.group(1)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_the_docstring_draws_every_error_under_its_real_parent() -> None:
    """Every exception class of _errors is drawn once, under the class it derives from."""
    classes = {
        name: value
        for name, value in vars(_errors).items()
        if isinstance(value, type) and issubclass(value, _errors.ExploriumError)
    }
    drawn = _drawn_parents()
    assert set(drawn) | {"ExploriumError"} == set(classes)
    for name, parent in drawn.items():
        assert classes[parent] in classes[name].__bases__, (name, parent)
