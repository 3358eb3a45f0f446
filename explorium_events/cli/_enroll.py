"""``explorium-events enroll``: enroll a file of IDs for pushed events, 20 a call; re-runnable."""

from __future__ import annotations

import argparse

from .._client import EventsClient
from . import _entity, _flags
from ._common import EXIT_FAILED, EXIT_OK, PROG, report, say
from ._push import (
    add_api_flags,
    add_event_types,
    checked_event_types,
    emit,
    read_id_file,
    run_with_client,
)
from ._summary_json import check_target, write_summary

_DESCRIPTION = """\
Enroll prospects (or businesses) so that Explorium pushes their events to your webhook
as they happen. IDs go 20 a call (the API's limit), at the rate limit, with retries.
Running the same command again is safe: IDs already enrolled under the key for these
event types are left out. Standard output gets one JSON summary; the exit status is 0
when every ID is enrolled, 1 when some failed (run the command again to retry them).
"""

_EPILOG = f"""\
examples:
  {PROG} enroll --ids crm.txt --enrollment-key crm-2026 --event-types role,company
  {PROG} enroll --ids accounts.csv --entity business --enrollment-key crm-accounts \\
      --event-types funding,office        # a CSV's business_id column
  {PROG} enroll --base-url http://127.0.0.1:8787 --api-key anything --ids ids.txt \\
      --enrollment-key demo --event-types role
  {PROG} enrollments delete --enrollment-key crm-2026   # switched off: nothing left behind
"""


def add_parser(subparsers: _flags.Subparsers) -> None:
    """Add ``enroll`` to the command line."""
    parser = _flags.add_command(
        subparsers,
        "enroll",
        help="enroll IDs for events pushed to your webhook",
        description=_DESCRIPTION,
        epilog=_EPILOG,
    )
    parser.add_argument(
        "--ids",
        metavar="FILE",
        required=True,
        help="one ID a line, or a CSV with a prospect_id (business_id) column ('-': stdin)",
    )
    parser.add_argument(
        "--enrollment-key",
        metavar="KEY",
        required=True,
        help="your label for this enrollment (4+ characters); every delivery carries it",
    )
    add_event_types(parser, required=True)
    _entity.add_entity_flag(parser)
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="enroll the valid IDs and count the invalid ones (default: refuse the file)",
    )
    _flags.add_summary_json(parser)
    add_api_flags(parser, pacing=True)


def run(args: argparse.Namespace) -> int:
    """Enroll the IDs of ``--ids``; the exit status."""

    types = checked_event_types(args)
    # Standard output carries enroll's JSON result: the summary goes to a file.
    check_target(args.summary_json, data_on_stdout=True, others=[("--ids", args.ids)])
    ids = read_id_file(args.ids, args.entity, skip_invalid=args.skip_invalid)
    invalid = [bad.describe() for bad in ids.invalid]

    async def work(client: EventsClient) -> int:
        result = await client.enrollments.add(
            ids, key=args.enrollment_key, event_types=types, entity=args.entity, skip_invalid=True
        )
        answer = {
            "enrollment_key": result.enrollment_key,
            "event_types": list(result.event_types),
            "enrolled": len(result.enrolled_ids),
            "already_enrolled": len(result.already_enrolled),
            "failed": len(result.failed_ids),
            "invalid": ids.invalid_count,
            "enrollment_ids": result.enrollment_ids,
        }
        emit(answer)
        report(
            args.quiet,
            f"{PROG} enroll: {len(result.enrolled_ids):,} enrolled in "
            f"{len(result.enrolled):,} calls, {len(result.already_enrolled):,} already enrolled, "
            f"{len(result.failed_ids):,} failed, {ids.invalid_count:,} invalid "
            f"({result.stats.requests:,} requests, {result.stats.retries:,} retries)",
        )
        failures = [
            f"{len(failure.prospect_ids)} IDs from {failure.prospect_ids[0]}: "
            f"HTTP {failure.status}: {failure.message}"
            + (f" (correlation_id {failure.correlation_id})" if failure.correlation_id else "")
            for failure in result.failed
        ]
        # Failures are errors: shown with -q too.
        say(*(f"  failed: {failure}" for failure in failures[:5]))
        report(args.quiet, *(f"  skipped {item}" for item in invalid[:5]))
        if result.failed:
            say("  run the same command again to retry the failed IDs")
        status = EXIT_FAILED if result.failed else EXIT_OK
        figures = {
            "outcome": "failed" if result.failed else "done",
            **answer,
            "calls": len(result.enrolled),
            "requests": {"sent": result.stats.requests, "retries": result.stats.retries},
            "failures": failures,
            "invalid_examples": invalid,
        }
        write_summary(args.summary_json, "enroll", status, figures)
        return status

    return run_with_client(args, work)
