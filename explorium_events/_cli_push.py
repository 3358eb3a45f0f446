"""What the push commands share: the API flags, the client, reading IDs, and errors to exits.

Used by ``enroll``, ``enrollments`` and ``webhook`` (``_cli_enroll``, ``_cli_enrollments``,
``_cli_webhook``). Data goes to standard output, everything for a person to standard
error; an error is one line and its exit status (2: usage or input, 1: the API refused
or failed, 130: interrupted), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

import msgspec

from explorium_events import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    EventsClient,
    EventType,
    ExploriumError,
    PermissionDeniedError,
    ServerUnavailableError,
    TransportError,
)

from ._enrollments import BUSINESS_EVENT_TYPES, check_ids

PROG = "explorium-events"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EVENT_TYPE_ALIASES = {
    "role": EventType.PROSPECT_CHANGED_ROLE.value,
    "company": EventType.PROSPECT_CHANGED_COMPANY.value,
    "anniversary": EventType.PROSPECT_JOB_START_ANNIVERSARY.value,
}
_SHOWN = 5
_encode = msgspec.json.Encoder().encode


class Usage(Exception):
    """A usage or input error: exit status 2, with this message."""


def say(*lines: str, stream: TextIO | None = None) -> None:
    """Lines for a person, on standard error."""
    target = stream or sys.stderr
    for line in lines:
        print(line, file=target)
    target.flush()


def emit(value: Any) -> None:
    """One JSON value on standard output: the command's data."""
    sys.stdout.write(_encode(value).decode() + "\n")
    sys.stdout.flush()


def add_api_flags(parser: argparse.ArgumentParser) -> None:
    """--base-url, --api-key and -v, as fetch has them."""
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="the API's address (default: $EXPLORIUM_BASE_URL, else https://api.explorium.ai)",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="the API key (default: $EXPLORIUM_API_KEY); prefer the variable",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on standard error")


def event_types(text: str, entity: str = "prospect") -> list[str]:
    """``role,company``: event types by name (or short name, for prospects), once each."""
    known = (
        [kind.value for kind in EventType] if entity == "prospect" else list(BUSINESS_EVENT_TYPES)
    )
    chosen: list[str] = []
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        name = EVENT_TYPE_ALIASES.get(name, name) if entity == "prospect" else name
        if name not in known:
            short = f" (or short: {', '.join(EVENT_TYPE_ALIASES)})" if entity == "prospect" else ""
            raise Usage(
                f"unknown {entity} event type {part.strip()!r}; known: {', '.join(known)}{short}"
            )
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise Usage("--event-types: name at least one event type")
    return chosen


def read_id_file(path: str, entity: str, *, skip_invalid: bool) -> tuple[list[str], list[str]]:
    """The IDs of a file (``-``: standard input), one a line; a header line is skipped.

    Returns the valid IDs and a description of each invalid one. Without
    ``skip_invalid`` an invalid ID is a Usage error naming its line, before any request.
    """
    try:
        if path == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(path, encoding="utf-8-sig") as handle:
                lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise Usage(f"cannot read --ids {path}: {reason}") from None
    numbered = [(number, line.strip()) for number, line in enumerate(lines, start=1)]
    numbered = [(number, line) for number, line in numbered if line]
    if numbered and numbered[0][1].lower() in ("prospect_id", "business_id", "id"):
        numbered = numbered[1:]
    valid, invalid = check_ids([line for _, line in numbered], entity)
    described = [
        f"line {numbered[item.position][0]}: {item.value[:60]!r} ({item.reason})"
        for item in invalid
    ]
    if described and not skip_invalid:
        more = len(described) - _SHOWN
        raise Usage(
            f"{len(described)} invalid {entity} ID{'s' if len(described) != 1 else ''} in "
            f"{path}: {'; '.join(described[:_SHOWN])}{f' and {more} more' if more > 0 else ''}. "
            "Nothing was sent. Fix them, or pass --skip-invalid"
        )
    if not valid and not described:
        raise Usage(f"--ids {path} holds no IDs")
    return valid, described


def run_with_client(
    args: argparse.Namespace, work: Callable[[EventsClient], Awaitable[int]]
) -> int:
    """Build the client from the flags, run ``work`` with it, and map errors to exit statuses."""
    command = f"{PROG} {args.command}"

    async def main() -> int:
        async with EventsClient(api_key=args.api_key, base_url=args.base_url) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except Usage as exc:
        say(f"{command}: error: {exc}")
        return EXIT_USAGE
    except ConfigurationError as exc:
        say(f"{command}: error: {exc}")
        return EXIT_USAGE
    except AuthenticationError as exc:
        hint = (
            "The key may not do this: check the account's credits and permissions."
            if isinstance(exc, PermissionDeniedError)
            else "Check --api-key or EXPLORIUM_API_KEY."
        )
        say(f"{command}: the API refused the key: {exc}", hint)
        return EXIT_FAILED
    except (ApiError, TransportError, ServerUnavailableError) as exc:
        say(f"{command}: failed: {exc}")
        return EXIT_FAILED
    except ExploriumError as exc:
        say(f"{command}: error: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        say(f"{command}: interrupted")
        return EXIT_INTERRUPTED
