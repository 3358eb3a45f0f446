"""What the push commands share: their API flags, the client, reading IDs, and errors to exits.

Used by ``enroll``, ``enrollments`` and ``webhook`` (``_enroll``, ``_enrollments``,
``_webhook``). Data goes to standard output as JSON, everything for a person to standard
error; an error is one line and its exit status (2: usage or input, 1: the API refused
or failed, 130: interrupted, through ``main``), never a traceback. The flags are
``_flags``'s, the ``--entity`` and ``--event-types`` rules ``_entity``'s, and ``--ids`` is
read by ``_input``, as for ``fetch``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from .._client import EventsClient
from .._errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ExploriumError,
    InvalidIdError,
    PermissionDeniedError,
    ServerUnavailableError,
    TransportError,
)
from .._retry import RetryPolicy
from .._settings import API_KEY_VARIABLE
from . import _entity, _flags
from ._common import EXIT_FAILED, PROG, UsageError, is_terminal, say
from ._input import IdInput, InputError, read_ids

_encode = msgspec.json.Encoder().encode


def emit(value: Any) -> None:
    """One JSON value on standard output: the command's data."""
    sys.stdout.write(_encode(value).decode() + "\n")
    sys.stdout.flush()


def add_api_flags(parser: argparse.ArgumentParser, *, pacing: bool = False) -> None:
    """--base-url, --api-key, --rate-limit-store, -v; with ``pacing`` also fetch's pacing flags."""
    _flags.add_base_url(parser)
    _flags.add_api_key(parser)
    if pacing:
        _flags.add_concurrency(parser)
        _flags.add_rate_limit(parser)
        _flags.add_rate_limit_cost(parser)
        _flags.add_max_attempts(parser)
        _flags.add_give_up_after(parser)
    _flags.add_rate_limit_store(parser)
    _flags.add_verbose(parser)


def add_event_types(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--event-types``: either entity's names and aliases, checked against ``--entity``."""
    parser.add_argument(
        "--event-types",
        metavar="TYPES",
        type=_entity.parse_event_types,
        required=required,
        help="comma-separated event types of --entity, by full name or short: "
        f"{', '.join(_entity.ALIASES['prospect'])} (prospect); "
        f"{', '.join(_entity.ALIASES['business'])} (business; hiring, increase and decrease "
        "name every department's type)",
    )


def checked_event_types(args: argparse.Namespace) -> list[str]:
    """``--event-types`` once they are known to be ``--entity``'s; else UsageError."""
    types: list[str] = args.event_types
    problem = _entity.event_types_problem(args.entity, types, what="enrollment")
    if problem is not None:
        raise UsageError(problem)
    return types


def read_id_file(path: str, entity: str, *, skip_invalid: bool) -> IdInput:
    """The IDs of ``--ids`` (``-``: standard input), checked whole before any request.

    A list (one ID a line) or a CSV with a ``prospect_id`` / ``business_id`` column, as
    ``fetch`` reads it. Without ``skip_invalid`` an invalid ID is a UsageError naming
    its line; so is a file without any ID.
    """
    if path == "-" and is_terminal(sys.stdin):
        raise UsageError(f"no {entity} IDs: give --ids FILE, or pipe them in with --ids -")
    try:
        ids = read_ids(path, stdin=sys.stdin, entity=entity)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    if ids.invalid_count and not skip_invalid:
        raise UsageError(ids.invalid_message())
    if ids.valid == 0 and not ids.invalid_count:
        raise UsageError(f"--ids {ids.name} holds no {entity} IDs")
    return ids


def _client(args: argparse.Namespace) -> EventsClient:
    rate_limit, rate_window = getattr(args, "rate_limit", _flags.API_RATE_LIMIT)
    settings: dict[str, Any] = {}
    if hasattr(args, "concurrency"):
        settings = {
            "max_concurrency": args.concurrency,
            "rate_limit": rate_limit,
            "rate_window": rate_window,
            "rate_limit_cost": args.rate_limit_cost,
            "retry": RetryPolicy(max_attempts=args.max_attempts),
            "give_up_after": args.give_up_after,
        }
    return EventsClient(
        api_key=args.api_key,
        base_url=args.base_url,
        rate_limit_store=args.rate_limit_store,
        **settings,
    )


def run_with_client(
    args: argparse.Namespace, work: Callable[[EventsClient], Awaitable[int]]
) -> int:
    """Build the client from the flags, run ``work`` with it, and map errors to exit statuses.

    A bad setting or value (ConfigurationError, an invalid ID) is a UsageError, which
    ``main`` reports with exit status 2; Ctrl-C is ``main``'s too (130).
    """
    command = f"{PROG} {args.command}"

    async def main() -> int:
        async with _client(args) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except (ConfigurationError, InvalidIdError) as exc:
        raise UsageError(str(exc)) from None
    except AuthenticationError as exc:
        hint = (
            "The key may not do this: check the account's credits and permissions."
            if isinstance(exc, PermissionDeniedError)
            else f"Check --api-key or {API_KEY_VARIABLE}."
        )
        say(f"{command}: the API refused the key: {exc}", hint)
        return EXIT_FAILED
    except (ApiError, TransportError, ServerUnavailableError) as exc:
        say(f"{command}: failed: {exc}")
        return EXIT_FAILED
    except ExploriumError as exc:
        say(f"{command}: error: {exc}")
        return EXIT_FAILED
