"""Wire models: the reference page's example parses into typed events and writes back exactly."""

from __future__ import annotations

import datetime as dt
import json

import msgspec
import pytest

from explorium_events import AnniversaryData, CompanyChangeData, EventType, RoleChangeData
from explorium_events._models import EventsRequest, decode_response, encode_request

# The example response of the endpoint's public reference page, verbatim.
REFERENCE_RESPONSE = b"""{
  "response_context": {
    "correlation_id": "2826dd3eca6b4625aeddc30a3b96e11d",
    "request_status": "success",
    "time_took_in_seconds": 0.931
  },
  "output_events": [
    {
      "event_name": "prospect_changed_company",
      "event_time": "2024-07-01T00:00:00+00:00",
      "event_id": "3f7e8cf51cfd522ff0cef2249772ec0c",
      "data": {
        "event_name": "prospect_changed_company",
        "current_company_name": "Headovations",
        "current_company_id": "23d794056048ff2bc8c6b3a4ecd223d1",
        "current_job_title": "Vice President Of Business Development",
        "previous_company_name": "Gods Gang",
        "previous_company_id": "23d794056048ff2bc8c6b3a4ecd223d1",
        "previous_job_title": "Vice President Of Business Development"
      },
      "prospect_id": "4c485f009d59e319dc039cdf3e935b85014e6a33"
    },
    {
      "event_name": "prospect_changed_company",
      "event_time": "2024-06-01T00:00:00+00:00",
      "event_id": "10f4a011c10112a6a986ff856107104c",
      "data": {
        "event_name": "prospect_changed_company",
        "current_company_name": "Actalent",
        "current_company_id": "97a52bce42dfc8f332fd534c4de8139f",
        "current_job_title": "Aec Career Consultant / Recruiter",
        "previous_company_name": "Koln/Kgin Tv 10/11 News",
        "previous_company_id": "d8c9b663c31e377b0fdc80d156e66a06",
        "previous_job_title": "Aec Career Consultant / Recruiter"
      },
      "prospect_id": "20ae6cbf564ee683e66685e429844a5ff8ffc30f"
    }
  ]
}"""


def test_reference_example_parses_into_typed_events_with_every_field() -> None:
    """Every field of the reference page's example lands on a typed attribute."""
    response = decode_response(REFERENCE_RESPONSE)
    assert response.response_context.correlation_id == "2826dd3eca6b4625aeddc30a3b96e11d"
    assert response.response_context.request_status == "success"
    assert response.response_context.time_took_in_seconds == 0.931
    first, second = response.output_events
    assert first.event_id == "3f7e8cf51cfd522ff0cef2249772ec0c"
    assert first.event_type is EventType.PROSPECT_CHANGED_COMPANY
    assert first.event_time == dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
    assert first.prospect_id == "4c485f009d59e319dc039cdf3e935b85014e6a33"
    assert isinstance(first.data, CompanyChangeData)
    assert first.data == CompanyChangeData(
        current_company_name="Headovations",
        current_company_id="23d794056048ff2bc8c6b3a4ecd223d1",
        current_job_title="Vice President Of Business Development",
        previous_company_name="Gods Gang",
        previous_company_id="23d794056048ff2bc8c6b3a4ecd223d1",
        previous_job_title="Vice President Of Business Development",
    )
    assert isinstance(second.data, CompanyChangeData)
    assert second.data.previous_company_name == "Koln/Kgin Tv 10/11 News"


def test_event_writes_back_exactly_what_the_api_sent() -> None:
    """to_json() decodes to the very object the API sent, keys and values."""
    original = json.loads(REFERENCE_RESPONSE)["output_events"]
    events = decode_response(REFERENCE_RESPONSE).output_events
    assert [json.loads(event.to_json()) for event in events] == original
    assert [event.to_dict() for event in events] == original


def test_unknown_fields_are_ignored_but_kept_for_output() -> None:
    """A field the client does not know neither breaks decoding nor vanishes from to_json()."""
    body = json.loads(REFERENCE_RESPONSE)
    body["output_events"][0]["confidence"] = 0.9
    body["output_events"][0]["data"]["seniority"] = "vp"
    body["brand_new_top_level"] = {"x": 1}
    event = decode_response(json.dumps(body).encode()).output_events[0]
    assert isinstance(event.data, CompanyChangeData)
    assert event.to_dict()["confidence"] == 0.9
    assert event.to_dict()["data"]["seniority"] == "vp"


def test_unknown_event_type_is_kept_with_its_data_as_a_mapping() -> None:
    """An event type the client does not know survives, its data a plain dict."""
    body = {
        "response_context": {"correlation_id": "a" * 32, "request_status": "success"},
        "output_events": [
            {
                "event_name": "prospect_won_award",
                "event_time": "2026-10-01T00:00:00Z",
                "event_id": "b" * 32,
                "prospect_id": "c" * 40,
                "data": {"event_name": "prospect_won_award", "award": "Best CTO", "year": 2026},
            }
        ],
    }
    [event] = decode_response(json.dumps(body).encode()).output_events
    assert event.event_type is None
    assert event.data == {"event_name": "prospect_won_award", "award": "Best CTO", "year": 2026}


def test_role_change_without_previous_company_and_anniversary_types() -> None:
    """Role change may lack the previous company; the anniversary has an integer year count."""
    role = {
        "event_name": "prospect_changed_role",
        "event_time": "2026-10-02T00:00:00+00:00",
        "event_id": "d" * 32,
        "prospect_id": "e" * 40,
        "data": {
            "event_name": "prospect_changed_role",
            "current_job_title": "CTO",
            "previous_job_title": "VP",
            "current_company_name": "Acme",
            "current_company_id": "f" * 32,
        },
    }
    anniversary = {
        "event_name": "prospect_job_start_anniversary",
        "event_time": "2026-10-03T00:00:00+00:00",
        "event_id": "1" * 32,
        "prospect_id": "2" * 40,
        "data": {
            "event_name": "prospect_job_start_anniversary",
            "full_name": "Ada L",
            "company_name": "Acme",
            "job_title": "CTO",
            "years_at_company": 5,
            "job_anniversary_date": "2026-10-03T00:00:00+00:00",
            "linkedin_url": "https://linkedin.com/in/ada",
        },
    }
    body = {"response_context": {}, "output_events": [role, anniversary]}
    first, second = decode_response(json.dumps(body).encode()).output_events
    assert isinstance(first.data, RoleChangeData)
    assert first.data.previous_company_id is None
    assert isinstance(second.data, AnniversaryData)
    assert second.data.years_at_company == 5
    assert second.data.job_anniversary_date == dt.datetime(2026, 10, 3, tzinfo=dt.UTC)


def test_known_type_with_odd_data_is_kept_as_mapping_not_lost() -> None:
    """A data field of an unexpected type keeps the event, with its data as a mapping."""
    body = {
        "response_context": {},
        "output_events": [
            {
                "event_name": "prospect_job_start_anniversary",
                "event_time": "2026-10-03T00:00:00Z",
                "event_id": "1" * 32,
                "prospect_id": "2" * 40,
                "data": {
                    "event_name": "prospect_job_start_anniversary",
                    "years_at_company": "five",
                },
            }
        ],
    }
    [event] = decode_response(json.dumps(body).encode()).output_events
    assert event.data == {
        "event_name": "prospect_job_start_anniversary",
        "years_at_company": "five",
    }


def test_naive_event_time_is_read_as_utc() -> None:
    """An event_time without an offset becomes an aware UTC datetime."""
    body = {
        "response_context": {},
        "output_events": [
            {
                "event_name": "prospect_changed_role",
                "event_time": "2026-10-03T04:05:06",
                "event_id": "1" * 32,
                "prospect_id": "2" * 40,
                "data": {},
            }
        ],
    }
    [event] = decode_response(json.dumps(body).encode()).output_events
    assert event.event_time.tzinfo is not None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'{"output_events": 3}',
        b'{"output_events": [{"event_id": "x"}]}',
        b'{"detail": "x"}',
    ],
)
def test_malformed_bodies_raise_decode_errors(body: bytes) -> None:
    """Bodies that are not the documented shape raise msgspec errors (the client retries them)."""
    with pytest.raises(msgspec.DecodeError):
        decode_response(body)


def test_request_body_leaves_out_unset_window() -> None:
    """The request body has only the fields that are set."""
    body = encode_request(EventsRequest(prospect_ids=["a" * 40], event_types=["x"]))
    assert json.loads(body) == {"prospect_ids": ["a" * 40], "event_types": ["x"]}


def test_to_json_of_each_event_is_its_exact_slice_of_the_answer_for_both_entities() -> None:
    """to_json() returns each event's bytes as the answer held them: spacing, escapes, order."""
    from explorium_events._business_models import decode_business_response

    prospect = (
        b'{"event_id" : "' + b"a" * 32 + b'","prospect_id":"' + b"c" * 40 + b'",'
        b'"event_name":"prospect_changed_role","event_time":"2026-10-01T00:00:00Z",'
        b'"extra":[1, 2.50, "\\u00e9"],"data":{"current_job_title":"CTO","zzz":null}}'
    )
    business = (
        b'{"business_id":"' + b"d" * 32 + b'", "event_id":"' + b"b" * 32 + b'",'
        b'"event_name":"new_office","event_time":"2026-10-01T00:00:00+02:00","data":null}'
    )
    other = prospect.replace(b"a" * 32, b"f" * 32)
    for body, decode, raw in (
        (b'{"output_events": [ ' + prospect + b" , " + other + b"]}", decode_response, prospect),
        (b'{"response_context":{},"output_events":[' + business + b"]}",
         decode_business_response, business),
    ):  # fmt: skip
        first, *_ = decode(body).output_events
        assert first.to_json() == raw
        assert first.to_json() == raw  # asked twice, the same bytes
