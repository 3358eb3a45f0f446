"""``explorium-events enrollments list|update|delete``: see and change what is enrolled."""

from __future__ import annotations

import argparse

from .._client import EventsClient
from .._enrollments import MAX_ENROLL_IDS
from . import _entity, _flags
from ._common import EXIT_OK, PROG, UsageError, report
from ._push import (
    add_api_flags,
    add_event_types,
    checked_event_types,
    emit,
    read_id_file,
    run_with_client,
)

_EPILOG = f"""\
examples:
  {PROG} enrollments list                       # one JSON line per enrollment
  {PROG} enrollments update --id en_7b429a01 --ids twenty.txt --enrollment-key crm \\
      --event-types role,company
  {PROG} enrollments delete --id en_7b429a01
  {PROG} enrollments delete --enrollment-key crm  # every enrollment under the key
"""


def add_parser(subparsers: _flags.Subparsers) -> None:
    """Add ``enrollments`` (list, update, delete) to the command line."""
    parser = _flags.add_command(
        subparsers,
        "enrollments",
        help="list, update or delete enrollments",
        description="List, update or delete the enrollments of your API key.",
        epilog=_EPILOG,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("list", "one JSON line per enrollment on standard output"),
        ("update", f"replace one enrollment's IDs (1 to {MAX_ENROLL_IDS}), key and event types"),
        ("delete", "delete one enrollment by id, or every one under a key"),
    ):
        action = _flags.add_command(actions, name, help=text, description=text, epilog="")
        _entity.add_entity_flag(action)
        if name == "update":
            action.add_argument("--id", metavar="ENROLLMENT_ID", required=True)
            action.add_argument(
                "--ids", metavar="FILE", required=True, help=f"1 to {MAX_ENROLL_IDS} IDs"
            )
            action.add_argument("--enrollment-key", metavar="KEY", required=True)
            add_event_types(action, required=True)
        if name == "delete":
            which = action.add_mutually_exclusive_group(required=True)
            which.add_argument("--id", metavar="ENROLLMENT_ID", action="append")
            which.add_argument("--enrollment-key", metavar="KEY")
        add_api_flags(action)


def run(args: argparse.Namespace) -> int:
    """Run one enrollments action; the exit status."""

    ids: list[str] = []
    types: list[str] = []
    if args.action == "update":
        types = checked_event_types(args)
        ids = list(dict.fromkeys(read_id_file(args.ids, args.entity, skip_invalid=False)))
        if len(ids) > MAX_ENROLL_IDS:
            raise UsageError(
                f"{len(ids)} IDs in {args.ids}: an update takes 1 to {MAX_ENROLL_IDS}; use enroll"
            )

    async def work(client: EventsClient) -> int:
        enrollments = client.enrollments
        if args.action == "list":
            listed = await enrollments.list(entity=args.entity)
            for item in listed:
                emit(
                    {
                        "enrollment_id": item.enrollment_id,
                        "enrollment_key": item.enrollment_key,
                        "event_types": list(item.event_types),
                        "ids": list(item.ids),
                    }
                )
            total = sum(len(item.ids) for item in listed)
            report(args.quiet, f"{PROG} enrollments: {len(listed):,} enrollments, {total:,} IDs")
        elif args.action == "update":
            answer = await enrollments.update(
                args.id, ids, key=args.enrollment_key, event_types=types, entity=args.entity
            )
            emit({"enrollment_id": answer.enrollment_id, "ids": len(ids)})
            report(
                args.quiet, f"{PROG} enrollments: {answer.enrollment_id} now holds {len(ids)} IDs"
            )
        else:
            if args.enrollment_key is not None:
                deleted = await enrollments.delete_key(args.enrollment_key, entity=args.entity)
            else:
                deleted = []
                for enrollment_id in args.id:
                    await enrollments.delete(enrollment_id, entity=args.entity)
                    deleted.append(enrollment_id)
            for enrollment_id in deleted:
                emit({"deleted": enrollment_id})
            report(args.quiet, f"{PROG} enrollments: deleted {len(deleted)} enrollments")
        return EXIT_OK

    return run_with_client(args, work)
