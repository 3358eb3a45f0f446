"""The public surface: what `explorium_events` exports, and nothing private leaks."""

from __future__ import annotations

import explorium_events


def test_all_matches_the_real_exports_and_is_sorted() -> None:
    """Every name in __all__ exists, and __all__ is sorted."""
    for name in explorium_events.__all__:
        assert hasattr(explorium_events, name), name

    def isort_style(name: str) -> tuple[int, str]:  # ruff's RUF022 order
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert list(explorium_events.__all__) == sorted(explorium_events.__all__, key=isort_style)


def test_every_public_class_is_in_all() -> None:
    """No public class is importable from the package without being listed."""
    public = {
        name
        for name, value in vars(explorium_events).items()
        if isinstance(value, type) and not name.startswith("_")
    }
    assert public <= set(explorium_events.__all__)


def test_every_exception_derives_from_the_base() -> None:
    """Every exported exception is an ExploriumError, so one except clause catches them all."""
    for name in explorium_events.__all__:
        value = getattr(explorium_events, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, explorium_events.ExploriumError), name
