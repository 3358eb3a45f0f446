"""The client's settings: the one reader of the environment, the defaults, and their checks.

Everything that decides whether a setting can work lives here, so that ``EventsClient``
and the command line refuse the same values with the same words. Each check raises
ConfigurationError naming the setting, the value and the rule; an API key is never
shown, only where the problem is. Pure: reads the environment, does no I/O otherwise.
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request

from ._checks import check_count, check_rate_window, check_seconds
from ._errors import ConfigurationError
from ._ids import check_batch_size

API_KEY_VARIABLE = "EXPLORIUM_API_KEY"
BASE_URL_VARIABLE = "EXPLORIUM_BASE_URL"
RATE_LIMIT_STORE_VARIABLE = "EXPLORIUM_RATE_LIMIT_STORE"

DEFAULT_BASE_URL = "https://api.explorium.ai"
DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_RATE_LIMIT = 200
DEFAULT_RATE_WINDOW = 60.0
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_GIVE_UP_AFTER = 300.0
DEFAULT_BATCH_WINDOW = 0.005
DEFAULT_CACHE_SIZE = 10_000
_STORE_SCHEMES = ("redis", "rediss", "unix")


def settings_from_environment() -> dict[str, str]:
    """The settings read from the environment; the one place that reads it."""
    found = {}
    if key := os.environ.get(API_KEY_VARIABLE, "").strip():
        found["api_key"] = key
    if url := os.environ.get(BASE_URL_VARIABLE, "").strip():
        found["base_url"] = url
    if store := os.environ.get(RATE_LIMIT_STORE_VARIABLE, "").strip():
        found["rate_limit_store"] = store
    return found


def proxy_from_environment(scheme: str, host: str) -> str | None:
    """The proxy the environment names for ``scheme://host`` (``*_PROXY``), unless
    ``NO_PROXY`` exempts the host; the same reading as aiohttp's ``trust_env``."""
    proxy = urllib.request.getproxies().get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


def mask_key(api_key: str) -> str:
    """A form of the key safe to show: its last four characters at most."""
    return "****" + api_key[-4:] if len(api_key) >= 16 else "****"


def resolve_api_key(api_key: str | None, environment: dict[str, str]) -> str:
    """The key to send: ``api_key``, else the environment's; ConfigurationError if unusable."""
    key = (api_key if api_key is not None else environment.get("api_key", "")).strip()
    if not key:
        raise ConfigurationError(
            f"no API key: pass api_key=... or set the {API_KEY_VARIABLE} environment variable"
        )
    check_api_key(key, from_environment=api_key is None)
    return key


_KEY_CHARACTER_NAMES = {"\n": "line break", "\r": "carriage return", "\0": "NUL", "\t": "tab"}


def check_api_key(api_key: str, *, from_environment: bool) -> None:
    """Raise ConfigurationError, without showing the key, when it cannot be sent as a header.

    A key is sent as the ``api_key`` header: aiohttp would refuse a line break deep inside
    a request (with a traceback), and a non-ASCII character has no agreed encoding there.
    """
    for position, character in enumerate(api_key, start=1):
        if " " <= character <= "~":
            continue
        if character in _KEY_CHARACTER_NAMES:
            what = "a " + _KEY_CHARACTER_NAMES[character]
        elif character < " " or character == "\x7f":
            what = "a control character"
        else:
            what = "a non-ASCII character"
        source = f" (from {API_KEY_VARIABLE})" if from_environment else ""
        raise ConfigurationError(
            f"the API key{source} holds {what} (character {position} of {len(api_key)}): "
            "it is sent as an HTTP header, so it must be printable ASCII; "
            "look for a stray character copied with it"
        )


def check_client_settings(
    *,
    max_concurrency: object,
    batch_size: int,
    rate_limit: int | None,
    rate_window: object,
    rate_limit_cost: object,
    request_timeout: object,
    give_up_after: object,
    batch_window: float,
    cache_ttl: float | None,
    cache_size: int,
) -> None:
    """ConfigurationError for a setting of EventsClient that cannot work."""
    check_count("max_concurrency", max_concurrency)
    check_count("batch_size", batch_size)
    if rate_limit is not None:
        check_count("rate_limit", rate_limit, also="or None for no client-side limit")
    check_rate_window(rate_window)
    # An infinite timeout is the hang this setting exists to prevent.
    check_seconds("request_timeout", request_timeout, zero_ok=False)
    if rate_limit_cost not in ("request", "id"):
        raise ConfigurationError(f"rate_limit_cost={rate_limit_cost!r}: must be 'request' or 'id'")
    check_batch_size(batch_size)
    if rate_limit_cost == "id" and rate_limit is not None and rate_limit < batch_size:
        raise ConfigurationError(
            f"rate_limit={rate_limit} per ID is less than batch_size={batch_size}: "
            "a single request would exceed the limit; lower batch_size"
        )
    if give_up_after is not None and not (
        isinstance(give_up_after, int | float) and 0 < give_up_after < float("inf")
    ):
        raise ConfigurationError(
            f"give_up_after={give_up_after!r}: must be a positive number of seconds, "
            "or None never to give up"
        )
    check_batching_settings(batch_window, cache_ttl, cache_size)


def check_batching_settings(batch_window: float, cache_ttl: float | None, cache_size: int) -> None:
    """Raise ConfigurationError for a window, time-to-live or cache size that cannot work."""
    # An infinite window would hold every events_for() call forever; NaN passes `< 0`.
    check_seconds("batch_window", batch_window, zero_ok=True)
    if cache_ttl is not None:
        check_seconds("cache_ttl", cache_ttl, zero_ok=False, also="or None for no cache")
    check_count("cache_size", cache_size)


def safe_url(url: str) -> str:
    """The store's URL with any password replaced by ``****``: safe to log."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:****@{host}{port}"))


def check_store_url(url: object, *, from_environment: bool = False) -> str:
    """``url`` if it is a Redis URL (redis://, rediss://, unix://); else ConfigurationError."""
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in _STORE_SCHEMES:
        shown = safe_url(url) if isinstance(url, str) else repr(url)
        raise ConfigurationError(
            f"{RATE_LIMIT_STORE_VARIABLE if from_environment else 'rate_limit_store'}="
            f"{shown!r}: must be a Redis URL such as redis://localhost:6379/0 "
            "(schemes: redis://, rediss://, unix://)"
        )
    return url


def check_namespace(namespace: object) -> str:
    """``namespace`` if it can name Redis keys here, else ConfigurationError."""
    if (
        not isinstance(namespace, str)
        or not 0 < len(namespace) <= 200
        or not all(" " < character <= "~" for character in namespace)
    ):
        shown = repr(namespace) if not isinstance(namespace, str) else f"{len(namespace)} chars"
        raise ConfigurationError(
            f"rate_limit_namespace ({shown}): must be 1 to 200 printable ASCII characters "
            "without spaces, e.g. 'my-service'"
        )
    return namespace


def resolve_rate_limit_store(store: str | None, environment: dict[str, str]) -> str | None:
    """The shared store's URL: ``store``, else the environment's; None (or "") for none.

    ConfigurationError when it is not a Redis URL.
    """
    if store is not None:
        return check_store_url(store) if store else None
    found = environment.get("rate_limit_store")
    return check_store_url(found, from_environment=True) if found else None
