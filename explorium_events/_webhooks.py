"""Webhooks: register the URL that receives pushed events, show it, delete it, and test it.

``client.webhooks`` is a ``Webhooks``; its calls share the client's limiter, retries and
key verdict. One webhook per partner ID; registering again replaces the URL and issues a
new secret (FACTS-siblings 3). The secret comes back in a ``WebhookSecret``, whose repr
and str are ``****``: it reaches a log or an error only if code calls ``reveal()``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from urllib.parse import quote

from yarl import URL

from ._engine import BatchRunner
from ._errors import ConfigurationError
from ._push_models import (
    ConnectivityRequest,
    WebhookAnswer,
    WebhookRequest,
    WebhookSecret,
    WebhookSimulation,
    decode_status_answer,
    decode_webhook_answer,
    encode_body,
)
from ._results import FetchStats
from ._transport import Call, is_loopback_host

logger = logging.getLogger("explorium_events")

WEBHOOKS_PATH = "/v1/webhooks"
MAX_SIMULATED_EVENTS = 10


@dataclass(frozen=True, slots=True)
class Webhook:
    """A registered webhook: where events go, since when, and the secret that signs them."""

    partner_id: str
    url: str
    secret: WebhookSecret
    created_at: dt.datetime | None
    last_modified_time: dt.datetime | None
    correlation_id: str | None


def _moment(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _webhook(partner_id: str, answer: WebhookAnswer) -> Webhook:
    return Webhook(
        partner_id=partner_id,
        url=answer.webhook_url,
        secret=WebhookSecret(answer.webhook_secret),
        created_at=_moment(answer.created_at),
        last_modified_time=_moment(answer.last_modified_time),
        correlation_id=answer.response_context.correlation_id,
    )


def check_partner_id(partner_id: object) -> str:
    """The partner ID, or ConfigurationError when it is not a non-empty string."""
    if not isinstance(partner_id, str) or not partner_id.strip():
        raise ConfigurationError(f"partner_id {partner_id!r}: give your partner ID")
    return partner_id.strip()


def check_webhook_url(url: object) -> str:
    """The URL to register, or ConfigurationError when it is not an absolute http(s) URL."""
    try:
        parsed = URL(url) if isinstance(url, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(f"webhook URL {url!r}: give an absolute http:// or https:// URL")
    assert isinstance(url, str)
    if parsed.scheme == "http" and not is_loopback_host(parsed.host):
        logger.warning(
            "the webhook URL is plain http: events would travel unencrypted; put the "
            "receiver behind a TLS reverse proxy and register its https:// URL"
        )
    return url


class Webhooks:
    """Register, show, delete and test the webhook of a partner ID."""

    def __init__(self, runner: BatchRunner) -> None:
        self._runner = runner

    def __repr__(self) -> str:
        return f"<Webhooks closed={self._runner.closed}>"

    def _path(self, partner_id: str) -> str:
        return f"{WEBHOOKS_PATH}/{quote(check_partner_id(partner_id), safe='')}"

    async def register(self, partner_id: str, url: str) -> Webhook:
        """Register ``url`` for ``partner_id`` (replacing any earlier one); returns its secret.

        Keep ``webhook.secret.reveal()`` where only the receiver reads it (a file of mode
        0600): it is what ``verify_webhook`` checks every delivery with.
        """
        self._runner.check_open()
        body = WebhookRequest(
            partner_id=check_partner_id(partner_id), webhook_url=check_webhook_url(url)
        )
        call = Call("POST", WEBHOOKS_PATH, encode_body(body), decode_webhook_answer, sensitive=True)
        return _webhook(body.partner_id, await self._runner.call(call, FetchStats()))

    async def get(self, partner_id: str) -> Webhook:
        """The webhook registered for ``partner_id`` (with its secret, hidden in its repr)."""
        self._runner.check_open()
        call = Call("GET", self._path(partner_id), None, decode_webhook_answer, sensitive=True)
        return _webhook(partner_id.strip(), await self._runner.call(call, FetchStats()))

    async def delete(self, partner_id: str) -> None:
        """Delete the webhook of ``partner_id``: events stop being pushed."""
        self._runner.check_open()
        call = Call("DELETE", self._path(partner_id), None, decode_status_answer)
        await self._runner.call(call, FetchStats())

    async def check_connectivity(
        self, partner_id: str, *, simulation: WebhookSimulation | None = None
    ) -> str | None:
        """Ask the API to push test events to the webhook; returns the correlation id.

        Without ``simulation`` the API sends one test event; with it, ``number_of_events``
        (1 to 10) events of ``event_name`` (which may be a name a receiver does not know,
        such as ``funding_round``). A receiver that failed shows as BadRequestError (400,
        "Client webhook failed on: ...").
        """
        self._runner.check_open()
        if simulation is not None:
            count = simulation.number_of_events
            if count is not None and not 1 <= count <= MAX_SIMULATED_EVENTS:
                raise ConfigurationError(
                    f"number_of_events={count}: the API simulates 1 to {MAX_SIMULATED_EVENTS}"
                )
        body = ConnectivityRequest(partner_id=check_partner_id(partner_id), simulation=simulation)
        call = Call(
            "POST", f"{WEBHOOKS_PATH}/check_connectivity", encode_body(body), decode_status_answer
        )
        answer = await self._runner.call(call, FetchStats())
        return answer.response_context.correlation_id
