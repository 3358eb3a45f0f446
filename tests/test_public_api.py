"""The public surface: what `explorium_events` exports, and nothing private leaks."""

from __future__ import annotations

import types

import explorium_events

# Private by their spelling, public by convention.
PUBLIC_DUNDERS = {"__version__"}


def _isort_style(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: constants, then classes, then functions and the rest."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_equals_the_public_names() -> None:
    """__all__ is exactly the package's public names (submodules aside), sorted."""
    submodules = {
        name
        for name, value in vars(explorium_events).items()
        if isinstance(value, types.ModuleType)
    }
    public = {name for name in dir(explorium_events) if not name.startswith("_")} - submodules
    public |= PUBLIC_DUNDERS
    assert explorium_events.__all__ == sorted(public, key=_isort_style)


def test_every_exception_derives_from_the_base() -> None:
    """Every exported exception is an ExploriumError, so one except clause catches them all."""
    for name in explorium_events.__all__:
        value = getattr(explorium_events, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, explorium_events.ExploriumError), name
