"""Fetch Explorium prospect and business events for any number of IDs, at the rate limit.

from explorium_events import EventsClient

async with EventsClient(api_key="...") as client:
    result = await client.fetch(prospect_ids)
    accounts = await client.businesses.fetch(business_ids)
"""

from ._bulk import pull
from ._business_models import (
    AwardData,
    BusinessEvent,
    BusinessEventData,
    BusinessEventType,
    ClosingOfficeData,
    CostCuttingData,
    DepartmentChangeData,
    EmployeeJoinedData,
    FundingRoundData,
    HiringData,
    InvestmentData,
    IpoAnnouncementData,
    LawsuitData,
    MergerData,
    NewOfficeData,
    OutageData,
    PartnershipData,
    ProductData,
)
from ._client import EventsClient
from ._clock import Clock, SystemClock
from ._enrollments import EnrolledBatch, Enrollments, EnrollResult
from ._entity_client import EntityEvents
from ._errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    CheckpointMismatchError,
    ClientClosedError,
    ConfigurationError,
    ConnectionFailed,
    ExploriumError,
    FetchError,
    InvalidBusinessIdError,
    InvalidIdError,
    InvalidProspectIdError,
    MalformedResponse,
    OutputWriteError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    ServerUnavailableError,
    TransportError,
    UnprocessableEntityError,
    WebhookHeaderError,
    WebhookPayloadError,
    WebhookSignatureError,
    WebhookTimestampError,
    WebhookVerificationError,
)
from ._models import (
    AnniversaryData,
    CompanyChangeData,
    Event,
    EventData,
    EventType,
    RoleChangeData,
)
from ._push_models import (
    Enrollment,
    WebhookBusinessEvent,
    WebhookEvent,
    WebhookSecret,
    WebhookSimulation,
)
from ._ratelimit import RateLimitCost, RateLimitState
from ._results import (
    BatchFailure,
    BatchResult,
    FetchResult,
    FetchStats,
    InvalidProspectId,
    PullSummary,
)
from ._retry import RetryPolicy
from ._sinks import EventSink, SqliteSink
from ._stream import BatchStream
from ._sync import DEFAULT_LOOKBACK, SyncSummary, sync
from ._sync_client import SyncEventsClient
from ._verify import sign_webhook, verify_webhook
from ._version import __version__
from ._webhooks import Webhook, Webhooks

__all__ = [
    "DEFAULT_LOOKBACK",
    "AnniversaryData",
    "ApiError",
    "AuthenticationError",
    "AwardData",
    "BadRequestError",
    "BatchFailure",
    "BatchResult",
    "BatchStream",
    "BusinessEvent",
    "BusinessEventData",
    "BusinessEventType",
    "CheckpointMismatchError",
    "ClientClosedError",
    "Clock",
    "ClosingOfficeData",
    "CompanyChangeData",
    "ConfigurationError",
    "ConnectionFailed",
    "CostCuttingData",
    "DepartmentChangeData",
    "EmployeeJoinedData",
    "EnrollResult",
    "EnrolledBatch",
    "Enrollment",
    "Enrollments",
    "EntityEvents",
    "Event",
    "EventData",
    "EventSink",
    "EventType",
    "EventsClient",
    "ExploriumError",
    "FetchError",
    "FetchResult",
    "FetchStats",
    "FundingRoundData",
    "HiringData",
    "InvalidBusinessIdError",
    "InvalidIdError",
    "InvalidProspectId",
    "InvalidProspectIdError",
    "InvestmentData",
    "IpoAnnouncementData",
    "LawsuitData",
    "MalformedResponse",
    "MergerData",
    "NewOfficeData",
    "OutageData",
    "OutputWriteError",
    "PartnershipData",
    "PermissionDeniedError",
    "ProductData",
    "PullSummary",
    "RateLimitCost",
    "RateLimitError",
    "RateLimitState",
    "RequestTimeout",
    "RetryPolicy",
    "RoleChangeData",
    "ServerError",
    "ServerUnavailableError",
    "SqliteSink",
    "SyncEventsClient",
    "SyncSummary",
    "SystemClock",
    "TransportError",
    "UnprocessableEntityError",
    "Webhook",
    "WebhookBusinessEvent",
    "WebhookEvent",
    "WebhookHeaderError",
    "WebhookPayloadError",
    "WebhookSecret",
    "WebhookSignatureError",
    "WebhookSimulation",
    "WebhookTimestampError",
    "WebhookVerificationError",
    "Webhooks",
    "__version__",
    "pull",
    "sign_webhook",
    "sync",
    "verify_webhook",
]
