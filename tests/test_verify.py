"""verify_webhook: the documented HMAC-SHA256 scheme exactly, and every way to be refused."""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import inspect
import json
from typing import Any

import pytest

from explorium_events import (
    BusinessEvent,
    ConfigurationError,
    Event,
    FundingRoundData,
    WebhookBusinessEvent,
    WebhookEvent,
    WebhookHeaderError,
    WebhookPayloadError,
    WebhookSecret,
    WebhookSignatureError,
    WebhookTimestampError,
    WebhookVerificationError,
    _verify,
    sign_webhook,
    verify_webhook,
)

# 32 fixed bytes, URL-safe base64 with its "=" padding: what the HMAC key decodes from.
SECRET = base64.urlsafe_b64encode(bytes(range(200, 232))).decode()
NOW = 1_800_000_000
BODY = json.dumps(
    {
        "tenant_id": "con_NJEwX2IUhNNbaRDC",
        "partner_id": "ExpTest",
        "event_id": "event_id_for_company_updates-12345",
        "event_name": "prospect_changed_company",
        "entity_id": "a" * 40,
        "entity_type": "prospect",
        "data": {
            "event_name": "prospect_changed_company",
            "current_company_name": "Acme",
            "previous_company_name": "Initech",
        },
        "enrollment_key": "crm-2026",
    }
).encode()
# Computed once with openssl (dgst -sha256 -mac HMAC, base64, +/ turned to -_) and written
# down: a change to the scheme (another separator, the standard alphabet, hex) fails here.
EXPECTED_SIGNATURE = "rPD9YxZBjWHMUe_BZN2J5oiwxckPZuPD9yv--xg62CE="


def documented_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The steps of webhooks.mdx's Python example, written out independently of the library."""
    key = base64.urlsafe_b64decode(secret)
    message = f"{timestamp}.{body.decode('utf-8')}".encode()
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def headers(timestamp: int | str = NOW, signature: str | None = None) -> dict[str, str]:
    stamp = str(timestamp)
    return {
        "Content-Type": "application/json",
        "X-Timestamp": stamp,
        "X-Signature": signature or documented_signature(SECRET, stamp, BODY),
    }


def test_the_test_vector_matches_the_documented_computation() -> None:
    """The fixed vector's signature is what the documented steps and sign_webhook give."""
    assert documented_signature(SECRET, str(NOW), BODY) == EXPECTED_SIGNATURE
    assert sign_webhook(BODY, NOW, SECRET) == EXPECTED_SIGNATURE


def test_a_genuine_delivery_returns_its_typed_event() -> None:
    """A correctly signed, fresh delivery decodes to a WebhookEvent with the payload's fields."""
    event = verify_webhook(BODY, headers(), SECRET, now=NOW)
    assert isinstance(event, WebhookEvent) and isinstance(event, Event)
    assert event.event_id == "event_id_for_company_updates-12345"
    assert event.event_name == "prospect_changed_company"
    assert (event.tenant_id, event.partner_id) == ("con_NJEwX2IUhNNbaRDC", "ExpTest")
    assert (event.entity_id, event.entity_type) == ("a" * 40, "prospect")
    assert event.prospect_id == "a" * 40
    assert event.enrollment_key == "crm-2026"
    assert event.data is not None and event.data.current_company_name == "Acme"
    assert event.event_time.timestamp() == NOW  # no event_time in the payload: the signed time


def test_a_business_delivery_returns_a_business_event_with_its_business_id() -> None:
    """entity_type "business": a BusinessEvent whose business_id is the entity_id, typed data."""
    body = json.dumps(
        {
            "event_id": "ev-b-1",
            "event_name": "new_funding_round",
            "entity_id": "c" * 32,
            "entity_type": "business",
            "data": {"event_time": "2026-05-01T00:00:00Z", "funding_stage": "Series B"},
            "enrollment_key": "accounts",
        }
    ).encode()
    event = verify_webhook(
        body, headers(signature=sign_webhook(body, NOW, SECRET)), SECRET, now=NOW
    )
    assert isinstance(event, WebhookBusinessEvent) and isinstance(event, BusinessEvent)
    assert not isinstance(event, Event)
    assert (event.business_id, event.enrollment_key) == ("c" * 32, "accounts")
    assert isinstance(event.data, FundingRoundData)
    assert event.data.funding_stage == "Series B"
    assert event.event_time.isoformat() == "2026-05-01T00:00:00+00:00"
    assert event.to_json() == body


def test_to_json_returns_the_delivery_byte_for_byte() -> None:
    """The stored event is the body exactly as it came, unknown fields and all."""
    body = BODY[:-1] + b', "company_domain": "acme.com"}'
    event = verify_webhook(
        body, headers(signature=sign_webhook(body, NOW, SECRET)), SECRET, now=NOW
    )
    assert event.to_json() == body


def test_the_old_event_type_field_name_is_read_as_event_name() -> None:
    """A delivery from before the rename (``event_type``) still has its event_name."""
    payload: dict[str, Any] = json.loads(BODY)
    payload["event_type"] = payload.pop("event_name")
    body = json.dumps(payload).encode()
    event = verify_webhook(
        body, headers(signature=sign_webhook(body, NOW, SECRET)), SECRET, now=NOW
    )
    assert event.event_name == "prospect_changed_company"


@pytest.mark.parametrize("spelling", ["padded", "unpadded", "with a line break"])
def test_the_secret_is_accepted_with_or_without_padding(spelling: str) -> None:
    """Python's decoder needs the padding the API may leave out; a stray newline is trimmed."""
    secret = {
        "padded": SECRET,
        "unpadded": SECRET.rstrip("="),
        "with a line break": SECRET + "\n",
    }[spelling]
    assert verify_webhook(BODY, headers(), secret, now=NOW).event_id
    assert verify_webhook(BODY, headers(), WebhookSecret(secret), now=NOW).event_id


def test_a_signature_sent_without_its_padding_is_accepted() -> None:
    """The other reading of URL-safe base64 (no "=") is tolerated."""
    verify_webhook(BODY, headers(signature=EXPECTED_SIGNATURE.rstrip("=")), SECRET, now=NOW)


def test_header_names_are_matched_in_any_case() -> None:
    """A plain dict with lower-case names (as WSGI frameworks may hand over) works."""
    lowered = {name.lower(): value for name, value in headers().items()}
    assert verify_webhook(BODY, lowered, SECRET, now=NOW).event_id


@pytest.mark.parametrize("missing", ["X-Signature", "X-Timestamp", "both"])
def test_a_missing_header_is_refused(missing: str) -> None:
    """No X-Signature or no X-Timestamp: WebhookHeaderError naming it, status 401."""
    given = headers()
    for name in ("X-Signature", "X-Timestamp") if missing == "both" else (missing,):
        del given[name]
    with pytest.raises(WebhookHeaderError, match="no X-") as caught:
        verify_webhook(BODY, given, SECRET, now=NOW)
    assert caught.value.status == 401


@pytest.mark.parametrize("stamp", ["abc", "1.8e9", "1800000000.5", "", " ", "-5", "٣٣٣", "9" * 40])
def test_a_timestamp_that_is_not_integer_seconds_is_refused(stamp: str) -> None:
    """X-Timestamp must be an integer of Unix seconds (ASCII digits, of sane length)."""
    given = headers(signature=EXPECTED_SIGNATURE)
    given["X-Timestamp"] = stamp
    with pytest.raises(WebhookHeaderError):
        verify_webhook(BODY, given, SECRET, now=NOW)


@pytest.mark.parametrize(("offset", "word"), [(-301, "old"), (301, "future")])
def test_a_stale_or_future_timestamp_is_refused(offset: int, word: str) -> None:
    """Outside 300 s either way: WebhookTimestampError, even with a valid signature."""
    stamp = NOW + offset
    with pytest.raises(WebhookTimestampError, match=word) as caught:
        verify_webhook(BODY, headers(stamp), SECRET, now=NOW)
    assert caught.value.skew == offset


@pytest.mark.parametrize("offset", [-300, 300])
def test_the_window_edges_are_inside(offset: int) -> None:
    """Exactly 300 s off is still fresh, as in the docs (``> 300`` is refused)."""
    assert verify_webhook(BODY, headers(NOW + offset), SECRET, now=NOW).event_id


def test_the_tolerance_is_configurable() -> None:
    """tolerance=10 refuses 11 s of skew and accepts 10."""
    verify_webhook(BODY, headers(NOW - 10), SECRET, now=NOW, tolerance=10)
    with pytest.raises(WebhookTimestampError):
        verify_webhook(BODY, headers(NOW - 11), SECRET, now=NOW, tolerance=10)


def test_a_tampered_body_is_refused() -> None:
    """One byte changed after signing: WebhookSignatureError."""
    tampered = BODY.replace(b"Acme", b"Acmf")
    with pytest.raises(WebhookSignatureError):
        verify_webhook(tampered, headers(), SECRET, now=NOW)


def test_a_tampered_timestamp_is_refused() -> None:
    """The signature covers the timestamp: moving it by a second breaks it."""
    with pytest.raises(WebhookSignatureError):
        verify_webhook(BODY, headers(NOW + 1, signature=EXPECTED_SIGNATURE), SECRET, now=NOW)


def test_another_secret_is_refused() -> None:
    """Signed with another webhook's secret (an old one, after re-registering): refused."""
    other = base64.urlsafe_b64encode(bytes(32)).decode()
    with pytest.raises(WebhookSignatureError):
        verify_webhook(BODY, headers(), other, now=NOW)


def test_a_signature_in_another_encoding_is_refused() -> None:
    """Hex, or the standard base64 alphabet, is not the documented signature."""
    digest = hmac.new(
        base64.urlsafe_b64decode(SECRET), f"{NOW}.".encode() + BODY, hashlib.sha256
    ).digest()
    for wrong in (digest.hex(), base64.b64encode(digest).decode().replace("_", "/") + "+"):
        with pytest.raises(WebhookSignatureError):
            verify_webhook(BODY, headers(signature=wrong), SECRET, now=NOW)


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'{"event_name": "x"}', b'{"event_id": "e1"}', b"\xff\xfe"]
)
def test_a_signed_body_that_is_not_a_delivery_is_a_payload_error(body: bytes) -> None:
    """Signed correctly but not JSON, or without event_id or a name: 400, not 401."""
    with pytest.raises(WebhookPayloadError) as caught:
        verify_webhook(body, headers(signature=sign_webhook(body, NOW, SECRET)), SECRET, now=NOW)
    assert caught.value.status == 400
    assert isinstance(caught.value, WebhookVerificationError)


def test_a_decoded_body_is_refused_as_a_usage_error() -> None:
    """A str (JSON re-encoded by a framework) would not match: ConfigurationError says so."""
    with pytest.raises(ConfigurationError, match="raw request bytes"):
        verify_webhook(BODY.decode(), headers(), SECRET, now=NOW)  # type: ignore[arg-type]


def test_an_unusable_secret_is_a_configuration_error_that_does_not_show_it() -> None:
    """A secret that is not URL-safe base64 is named by its length only."""
    bad = "not/base64+secret!!"
    with pytest.raises(ConfigurationError) as caught:
        verify_webhook(BODY, headers(), bad, now=NOW)
    assert bad not in str(caught.value)


def test_no_error_shows_the_secret_or_the_expected_signature() -> None:
    """Each refusal's message holds neither the secret nor the signature it expected."""
    cases = [
        (BODY + b" ", headers()),
        (BODY, headers(NOW - 999)),
        (BODY, {"X-Timestamp": str(NOW)}),
    ]
    for body, given in cases:
        with pytest.raises(WebhookVerificationError) as caught:
            verify_webhook(body, given, SECRET, now=NOW)
        text = f"{caught.value}{caught.value!r}"
        assert SECRET.rstrip("=") not in text
        assert EXPECTED_SIGNATURE.rstrip("=") not in text


def test_the_module_imports_no_web_framework() -> None:
    """verify_webhook is pure: its module imports neither aiohttp nor any other framework."""
    tree = ast.parse(inspect.getsource(_verify))
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {
        name
        for name in imported
        if name.split(".")[0] in {"aiohttp", "flask", "starlette", "fastapi"}
    }
