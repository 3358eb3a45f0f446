"""``explorium-events enrollments list|update|delete``: see and change what is enrolled."""

from __future__ import annotations

import argparse

from explorium_events import EventsClient

from ._cli_push import (
    EXIT_OK,
    PROG,
    Usage,
    add_api_flags,
    emit,
    event_types,
    read_id_file,
    run_with_client,
    say,
)

_EPILOG = f"""\
examples:
  {PROG} enrollments list                       # one JSON line per enrollment
  {PROG} enrollments update --id en_7b429a01 --ids twenty.txt --enrollment-key crm \\
      --event-types role,company
  {PROG} enrollments delete --id en_7b429a01
  {PROG} enrollments delete --enrollment-key crm  # every enrollment under the key
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``enrollments`` (list, update, delete) to the command line."""
    parser = subparsers.add_parser(
        "enrollments",
        help="list, update or delete enrollments",
        description="List, update or delete the enrollments of your API key.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("list", "one JSON line per enrollment on standard output"),
        ("update", "replace one enrollment's IDs (1 to 20), key and event types"),
        ("delete", "delete one enrollment by id, or every one under a key"),
    ):
        action = actions.add_parser(name, help=text, description=text, allow_abbrev=False)
        action.add_argument("--entity", choices=("prospect", "business"), default="prospect")
        add_api_flags(action)
        if name == "update":
            action.add_argument("--id", metavar="ENROLLMENT_ID", required=True)
            action.add_argument("--ids", metavar="FILE", required=True, help="1 to 20 IDs")
            action.add_argument("--enrollment-key", metavar="KEY", required=True)
            action.add_argument("--event-types", metavar="TYPES", required=True)
        if name == "delete":
            which = action.add_mutually_exclusive_group(required=True)
            which.add_argument("--id", metavar="ENROLLMENT_ID", action="append")
            which.add_argument("--enrollment-key", metavar="KEY")


def run(args: argparse.Namespace) -> int:
    """Run one enrollments action; the exit status."""

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
            say(f"{PROG} enrollments: {len(listed):,} enrollments, {total:,} IDs")
        elif args.action == "update":
            ids, _ = read_id_file(args.ids, args.entity, skip_invalid=False)
            if len(ids) > 20:
                raise Usage(f"{len(ids)} IDs in {args.ids}: an update takes 1 to 20; use enroll")
            answer = await enrollments.update(
                args.id,
                ids,
                key=args.enrollment_key,
                event_types=event_types(args.event_types, args.entity),
                entity=args.entity,
            )
            emit({"enrollment_id": answer.enrollment_id, "ids": len(ids)})
            say(f"{PROG} enrollments: {answer.enrollment_id} now holds {len(ids)} IDs")
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
            say(f"{PROG} enrollments: deleted {len(deleted)} enrollments")
        return EXIT_OK

    return run_with_client(args, work)
