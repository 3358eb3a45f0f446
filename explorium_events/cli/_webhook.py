"""``explorium-events webhook register|show|delete|test``: the URL that receives pushed events.

The secret the API returns is shown once: on standard output, or (``--secret-file``)
only in that file, created with mode 0600. It is never logged; ``show`` prints
everything but the secret unless ``--secret-file`` asks for it again.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import tempfile

from .._client import EventsClient
from .._paths import output_problem
from .._push_models import WebhookSimulation
from .._webhooks import MAX_SIMULATED_EVENTS, Webhook
from . import _flags
from ._common import EXIT_OK, PROG, UsageError, report
from ._push import add_api_flags, emit, run_with_client

_EPILOG = f"""\
examples:
  {PROG} webhook register --partner-id ExpTest --url https://hooks.example.com/explorium \\
      --secret-file wh.secret                # the secret goes only into wh.secret (0600)
  {PROG} webhook show --partner-id ExpTest
  {PROG} webhook test --partner-id ExpTest --event-name new_office --events 3
  {PROG} webhook delete --partner-id ExpTest
"""


def add_parser(subparsers: _flags.Subparsers) -> None:
    """Add ``webhook`` (register, show, delete, test) to the command line."""
    parser = _flags.add_command(
        subparsers,
        "webhook",
        help="register, show, delete or test your webhook",
        description="Register, show, delete or test the webhook of a partner ID. One webhook "
        "per partner ID: registering again replaces the URL and issues a new secret.",
        epilog=_EPILOG,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("register", "register URL; the secret is shown once, or written to --secret-file"),
        ("show", "show the webhook (not its secret, unless --secret-file)"),
        ("delete", "delete the webhook: events stop being pushed"),
        ("test", "ask the API to push test events to the webhook"),
    ):
        action = _flags.add_command(actions, name, help=text, description=text, epilog="")
        action.add_argument("--partner-id", metavar="ID", required=True)
        if name == "register":
            action.add_argument(
                "--url", metavar="URL", required=True, help="https URL of your receiver"
            )
        if name in ("register", "show"):
            action.add_argument(
                "--secret-file",
                metavar="PATH",
                help="write the secret to PATH (mode 0600) instead of standard output",
            )
        if name == "test":
            action.add_argument("--event-name", metavar="NAME", help="the simulated event type")
            action.add_argument(
                "--events",
                metavar="N",
                type=_flags.int_between(1, MAX_SIMULATED_EVENTS),
                help=f"how many (1 to {MAX_SIMULATED_EVENTS})",
            )
            action.add_argument(
                "--event-time",
                metavar="WHEN",
                type=_flags.timestamp_type,
                help="the simulated event time (ISO 8601; UTC unless it says otherwise)",
            )
        add_api_flags(action)


def write_secret(path: str, secret: str) -> None:
    """Write the secret to ``path`` with mode 0600, atomically (never readable by others)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=".secret-", dir=folder)  # mode 0600
    except OSError as exc:
        raise UsageError(f"cannot write --secret-file {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secret + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise UsageError(f"cannot write --secret-file {path}: {exc.strerror or exc}") from None


def _shown(webhook: Webhook) -> dict[str, object]:
    return {
        "partner_id": webhook.partner_id,
        "webhook_url": webhook.url,
        "created_at": webhook.created_at.isoformat() if webhook.created_at else None,
        "last_modified_time": (
            webhook.last_modified_time.isoformat() if webhook.last_modified_time else None
        ),
    }


def _simulation(args: argparse.Namespace) -> WebhookSimulation | None:
    if args.event_name is None and args.events is None and args.event_time is None:
        return None
    when = args.event_time
    if isinstance(when, dt.date) and not isinstance(when, dt.datetime):
        when = dt.datetime.combine(when, dt.time(), dt.UTC)
    return WebhookSimulation(
        event_name=args.event_name, number_of_events=args.events, event_time=when
    )


def run(args: argparse.Namespace) -> int:
    """Run one webhook action; the exit status."""

    secret_file = getattr(args, "secret_file", None)
    if secret_file is not None:
        # Before the request: a secret the API issued and no file could take is lost.
        problem = output_problem("--secret-file", secret_file)
        if problem is not None:
            raise UsageError(problem)

    async def work(client: EventsClient) -> int:
        webhooks = client.webhooks
        if args.action in ("register", "show"):
            if args.action == "register":
                webhook = await webhooks.register(args.partner_id, args.url)
            else:
                webhook = await webhooks.get(args.partner_id)
            shown = _shown(webhook)
            if args.secret_file:
                write_secret(args.secret_file, webhook.secret.reveal())
                shown["secret_file"] = args.secret_file
                emit(shown)
                report(
                    args.quiet, f"{PROG} webhook: the secret is in {args.secret_file} (mode 0600)"
                )
            elif args.action == "register":
                emit({**shown, "webhook_secret": webhook.secret.reveal()})
                report(
                    args.quiet,
                    f"{PROG} webhook: registered. The webhook_secret above is shown this once: "
                    "keep it where only the receiver reads it (--secret-file does that)",
                )
            else:
                emit(shown)
        elif args.action == "delete":
            await webhooks.delete(args.partner_id)
            emit({"deleted": args.partner_id})
            report(
                args.quiet,
                f"{PROG} webhook: deleted; events stop being pushed for {args.partner_id}",
            )
        else:
            correlation_id = await webhooks.check_connectivity(
                args.partner_id, simulation=_simulation(args)
            )
            emit({"partner_id": args.partner_id, "ok": True, "correlation_id": correlation_id})
            report(args.quiet, f"{PROG} webhook: the test events reached the webhook")
        return EXIT_OK

    return run_with_client(args, work)
