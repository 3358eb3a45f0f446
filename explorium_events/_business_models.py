"""Wire models of business events: the 39 event types, typed data per documented type, the event.

Decoded as prospect events are (``_models``): the envelope and every event's common
fields in one typed pass, then ``data`` by the event's name, the raw JSON of each event
sliced out only when ``to_json()`` asks for it. The types whose data fields the docs define get a
Struct, every field optional (the pages disagree with each other and with their own
examples); the rest, and any type added later, keep ``data`` as a plain mapping. Data
that does not fit its Struct is delivered as the mapping the server sent, with a
warning; the raw JSON is kept for ``to_json()`` either way.

Where the docs spell a field two ways (``founding_*`` on the type page, ``funding_*``
in the data reference, for ``new_funding_round``), both spellings are fields.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import msgspec

from ._models import (
    EventsResponse,
    RawEvents,
    ResponseContext,
    decode_data,
    lenient_data,
    raw_json,
    utc_event_time,
)


class BusinessEventType(StrEnum):
    """The business event types the API serves, in the spec's order."""

    IPO_ANNOUNCEMENT = "ipo_announcement"
    NEW_FUNDING_ROUND = "new_funding_round"
    NEW_INVESTMENT = "new_investment"
    NEW_PRODUCT = "new_product"
    NEW_OFFICE = "new_office"
    CLOSING_OFFICE = "closing_office"
    NEW_PARTNERSHIP = "new_partnership"
    INCREASE_IN_ENGINEERING_DEPARTMENT = "increase_in_engineering_department"
    INCREASE_IN_SALES_DEPARTMENT = "increase_in_sales_department"
    INCREASE_IN_MARKETING_DEPARTMENT = "increase_in_marketing_department"
    INCREASE_IN_OPERATIONS_DEPARTMENT = "increase_in_operations_department"
    INCREASE_IN_CUSTOMER_SERVICE_DEPARTMENT = "increase_in_customer_service_department"
    INCREASE_IN_ALL_DEPARTMENTS = "increase_in_all_departments"
    DECREASE_IN_ENGINEERING_DEPARTMENT = "decrease_in_engineering_department"
    DECREASE_IN_SALES_DEPARTMENT = "decrease_in_sales_department"
    DECREASE_IN_MARKETING_DEPARTMENT = "decrease_in_marketing_department"
    DECREASE_IN_OPERATIONS_DEPARTMENT = "decrease_in_operations_department"
    DECREASE_IN_CUSTOMER_SERVICE_DEPARTMENT = "decrease_in_customer_service_department"
    DECREASE_IN_ALL_DEPARTMENTS = "decrease_in_all_departments"
    EMPLOYEE_JOINED_COMPANY = "employee_joined_company"
    HIRING_IN_CREATIVE_DEPARTMENT = "hiring_in_creative_department"
    HIRING_IN_EDUCATION_DEPARTMENT = "hiring_in_education_department"
    HIRING_IN_ENGINEERING_DEPARTMENT = "hiring_in_engineering_department"
    HIRING_IN_FINANCE_DEPARTMENT = "hiring_in_finance_department"
    HIRING_IN_HEALTH_DEPARTMENT = "hiring_in_health_department"
    HIRING_IN_HUMAN_RESOURCES_DEPARTMENT = "hiring_in_human_resources_department"
    HIRING_IN_LEGAL_DEPARTMENT = "hiring_in_legal_department"
    HIRING_IN_MARKETING_DEPARTMENT = "hiring_in_marketing_department"
    HIRING_IN_OPERATIONS_DEPARTMENT = "hiring_in_operations_department"
    HIRING_IN_PROFESSIONAL_SERVICE_DEPARTMENT = "hiring_in_professional_service_department"
    HIRING_IN_SALES_DEPARTMENT = "hiring_in_sales_department"
    HIRING_IN_SUPPORT_DEPARTMENT = "hiring_in_support_department"
    HIRING_IN_TRADE_DEPARTMENT = "hiring_in_trade_department"
    HIRING_IN_UNKNOWN_DEPARTMENT = "hiring_in_unknown_department"
    COMPANY_AWARD = "company_award"
    OUTAGES_AND_SECURITY_BREACHES = "outages_and_security_breaches"
    COST_CUTTING = "cost_cutting"
    MERGER_AND_ACQUISITIONS = "merger_and_acquisitions"
    LAWSUITS_AND_LEGAL_ISSUES = "lawsuits_and_legal_issues"


# gc=False: decoded data holds strings, numbers, times and lists of strings, never a
# cycle; untracked, a million events kept by fetch() cost the garbage collector nothing.
class _Data(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What every business event's data may carry."""

    event_name: str | None = None
    event_time: dt.datetime | None = None


class _Article(_Data, frozen=True, kw_only=True):
    """The news article most types cite."""

    title: str | None = None
    snippet: str | None = None
    link: str | None = None


class IpoAnnouncementData(_Data, frozen=True, kw_only=True):
    """``data`` of an ``ipo_announcement`` event."""

    ipo_date: str | None = None
    company_name: str | None = None
    offer_amount: float | None = None
    number_of_shares: int | None = None
    stock_exchange: str | None = None
    price_per_share: float | None = None
    ticker: str | None = None
    status: str | None = None


class FundingRoundData(_Article, frozen=True, kw_only=True):
    """``data`` of a ``new_funding_round`` event; both spellings the docs use are fields.

    ``investors`` is a string on the type page and a list of strings in the data reference.
    """

    amount_raised: float | None = None
    founding_date: str | None = None
    founding_stage: str | None = None
    funding_date: str | None = None
    funding_stage: str | None = None
    investors: str | list[str] | None = None
    lead_investor: str | None = None
    company_name: str | None = None
    report_source: str | None = None
    investment_amount: float | None = None
    investment_amount_currency: str | None = None
    investment_amount_string: str | None = None


class InvestmentData(_Article, frozen=True, kw_only=True):
    """``data`` of a ``new_investment`` event."""

    investment_type: str | None = None
    investment_target: str | None = None
    investment_amount: float | None = None
    investment_amount_currency: str | None = None
    investment_date: str | None = None


class ProductData(_Article, frozen=True, kw_only=True):
    """``data`` of a ``new_product`` event."""

    product_name: str | None = None
    product_description: str | None = None


class NewOfficeData(_Article, frozen=True, kw_only=True):
    """``data`` of a ``new_office`` event."""

    purpose_of_new_office: str | None = None
    office_location: str | None = None
    number_of_employees: int | None = None


class ClosingOfficeData(_Article, frozen=True, kw_only=True):
    """``data`` of a ``closing_office`` event."""

    reason_for_closure: str | None = None
    office_location: str | None = None
    number_of_employees_affected: int | None = None


class AwardData(_Article, frozen=True, kw_only=True):
    """``data`` of a ``company_award`` event."""

    award_name: str | None = None
    award_reason: str | None = None
    awarding_body: str | None = None


class PartnershipData(_Article, frozen=True, kw_only=True):
    """``data`` of a ``new_partnership`` event."""

    partner_company: str | None = None
    purpose_of_partnership: str | None = None


class MergerData(_Article, frozen=True, kw_only=True):
    """``data`` of a ``merger_and_acquisitions`` event."""

    merger_or_acquisition: str | None = None
    description: str | None = None
    companies_involved: list[str] | None = None
    acquisition_price_amount: float | None = None
    acquisition_price_currency: str | None = None
    strategic_objective: str | None = None


class LawsuitData(_Article, frozen=True, kw_only=True):
    """``data`` of a ``lawsuits_and_legal_issues`` event."""

    case_type: str | None = None
    court: str | None = None


class OutageData(_Article, frozen=True, kw_only=True):
    """``data`` of an ``outages_and_security_breaches`` event."""

    incident_type: str | None = None
    impacted_systems: list[str] | None = None
    number_of_affected_customers: int | None = None


class CostCuttingData(_Article, frozen=True, kw_only=True):
    """``data`` of a ``cost_cutting`` event."""

    action_taken: str | None = None
    expected_savings_amount: float | None = None
    expected_savings_currency: str | None = None
    departments_affected: list[str] | None = None


class EmployeeJoinedData(_Data, frozen=True, kw_only=True):
    """``data`` of an ``employee_joined_company`` event."""

    full_name: str | None = None
    job_company_name: str | None = None
    job_department: str | None = None
    job_role_title: str | None = None
    change_type: str | None = None
    linkedin_url: str | None = None


class HiringData(_Data, frozen=True, kw_only=True):
    """``data`` of the 14 ``hiring_in_*_department`` events."""

    department: str | None = None
    location: str | None = None
    job_count: int | None = None
    job_titles: list[str] | None = None


class DepartmentChangeData(_Data, frozen=True, kw_only=True):
    """``data`` of the 12 ``increase_in_*`` / ``decrease_in_*`` events.

    ``department_change`` is the current over the previous quarter's headcount, x 100;
    ``department`` is named by the page's advice, not its table.
    """

    department_change: int | None = None
    change_type: str | None = None
    department: str | None = None


BusinessEventData = (
    IpoAnnouncementData
    | FundingRoundData
    | InvestmentData
    | ProductData
    | NewOfficeData
    | ClosingOfficeData
    | AwardData
    | PartnershipData
    | MergerData
    | LawsuitData
    | OutageData
    | CostCuttingData
    | EmployeeJoinedData
    | HiringData
    | DepartmentChangeData
    | dict[str, Any]
)

_T = BusinessEventType
_DATA_TYPES: dict[str, type[msgspec.Struct]] = {
    _T.IPO_ANNOUNCEMENT: IpoAnnouncementData,
    _T.NEW_FUNDING_ROUND: FundingRoundData,
    _T.NEW_INVESTMENT: InvestmentData,
    _T.NEW_PRODUCT: ProductData,
    _T.NEW_OFFICE: NewOfficeData,
    _T.CLOSING_OFFICE: ClosingOfficeData,
    _T.COMPANY_AWARD: AwardData,
    _T.NEW_PARTNERSHIP: PartnershipData,
    _T.MERGER_AND_ACQUISITIONS: MergerData,
    _T.LAWSUITS_AND_LEGAL_ISSUES: LawsuitData,
    _T.OUTAGES_AND_SECURITY_BREACHES: OutageData,
    _T.COST_CUTTING: CostCuttingData,
    _T.EMPLOYEE_JOINED_COMPANY: EmployeeJoinedData,
    **{kind: HiringData for kind in _T if kind.startswith("hiring_in_")},
    **{kind: DepartmentChangeData for kind in _T if kind.startswith(("increase_", "decrease_"))},
}


class BusinessEvent(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """One business event, with the API's own field names.

    ``data`` is a typed Struct for the types whose fields the docs define, a plain
    mapping for any other type (or data that does not fit its model), None when the
    server's ``data`` was not an object. ``to_json()`` returns exactly the JSON object
    the API sent.
    """

    event_id: str
    event_name: str
    event_time: dt.datetime
    business_id: str
    data: BusinessEventData | None

    @property
    def event_type(self) -> BusinessEventType | None:
        """The event's type, or None for a type this client does not know."""
        try:
            return BusinessEventType(self.event_name)
        except ValueError:
            return None

    def to_json(self) -> bytes:
        """The event as the JSON object the API sent, byte for byte when decoded from it."""
        return raw_json(self)

    def to_dict(self) -> dict[str, Any]:
        """The event as the mapping the API sent (keys and values)."""
        decoded: dict[str, Any] = msgspec.json.decode(self.to_json())
        return decoded


class _BusinessEnvelope(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    event_id: str
    event_name: str
    event_time: dt.datetime
    business_id: str
    data: msgspec.Raw = msgspec.Raw(b"{}")


class BusinessEventsRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The request body of ``POST /v1/businesses/events``; unset options are left out."""

    business_ids: list[str]
    event_types: list[str]
    timestamp_from: str | None = None
    timestamp_to: str | None = None


class _BusinessResponse(msgspec.Struct, frozen=True, kw_only=True):
    response_context: ResponseContext = ResponseContext()
    output_events: list[_BusinessEnvelope] | None = None


_decode_envelope = msgspec.json.Decoder(_BusinessEnvelope)
_decode_response = msgspec.json.Decoder(_BusinessResponse)
_decode_mapping = msgspec.json.Decoder(dict[str, Any])
_DATA_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    name: msgspec.json.Decoder(kind) for name, kind in _DATA_TYPES.items()
}
_encoder = msgspec.json.Encoder()


def encode_business_request(request: BusinessEventsRequest) -> bytes:
    """The JSON body of one business request."""
    return _encoder.encode(request)


def decode_business_event(raw: bytes) -> BusinessEvent:
    """Decode one business event; msgspec.DecodeError if its common fields are missing."""
    envelope = _decode_envelope.decode(raw)
    event = BusinessEvent(
        event_id=envelope.event_id,
        event_name=envelope.event_name,
        event_time=utc_event_time(envelope.event_time),
        business_id=envelope.business_id,
        data=decode_data(envelope.event_id, envelope.event_name, envelope.data, _DATA_DECODERS),
    )
    event.__dict__["_raw"] = bytes(raw)
    return event


def business_event_data(event_id: str, event_name: str, raw_data: msgspec.Raw | bytes) -> Any:
    """A business event's ``data`` (``decode_data`` with the business types' Structs)."""
    return decode_data(event_id, event_name, raw_data, _DATA_DECODERS)


def decode_business_response(body: bytes) -> EventsResponse[BusinessEvent]:
    """Decode a 200 body of business events; msgspec.DecodeError when it is not the shape.

    As ``_models.decode_response``: one typed pass, then each event's ``data`` by type.
    """
    envelope = _decode_response.decode(body)
    if envelope.output_events is None:
        raise msgspec.ValidationError("response has no output_events")
    source = RawEvents(body)
    decoders = _DATA_DECODERS
    events = []
    for index, wire in enumerate(envelope.output_events):
        name = wire.event_name
        data: Any
        try:
            data = decoders.get(name, _decode_mapping).decode(wire.data)
        except msgspec.ValidationError as exc:
            data = lenient_data(wire.event_id, name, wire.data, exc)
        time = wire.event_time
        event = BusinessEvent(
            event_id=wire.event_id,
            event_name=name,
            event_time=time if time.tzinfo is not None else time.replace(tzinfo=dt.UTC),
            business_id=wire.business_id,
            data=data,
        )
        held = event.__dict__
        held["_raw"] = source
        held["_at"] = index
        events.append(event)
    return EventsResponse(response_context=envelope.response_context, output_events=events)
