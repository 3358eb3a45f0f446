"""The one column table of the CSV, SQLite and Parquet outputs, derived from the event models.

The common columns are the fields of ``Event`` (but ``data``), in its order; the data
columns are the fields of the known event types' data structs (``EventData``), their
union in a fixed order, ``event_name`` left out (it repeats the event's own). A field
added to a model becomes a column of every output; an SQLite table made before gains it
(``ALTER TABLE ... ADD COLUMN``), and a CSV header lists it.

Business events have a table of their own (``TABLES["business"]``): the fields of
``BusinessEvent`` (``business_id`` where a prospect event has ``prospect_id``), then the
data fields most business events carry (``BUSINESS_DATA_FIELDS``; their types from the
data structs). The 39 types have some 70 data fields between them: the rest stay in
``data_json`` (CSV) and ``raw_json`` (SQLite), so nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from dataclasses import dataclass
from typing import Literal

import msgspec

from .._business_models import BusinessEvent, BusinessEventData, BusinessEventType
from .._models import Event, EventData, EventType

Kind = Literal["text", "integer", "real", "timestamp"]
"""A typed output's column type: Parquet's string, int64, float64, timestamp[us, UTC]."""


@dataclass(frozen=True, slots=True)
class Column:
    """One output column: a field of the event, or of its ``data``."""

    name: str
    sql_type: str  # "TEXT", "INTEGER" or "REAL": an SQLite column's declared type
    required: bool  # every event has it (NOT NULL in SQLite)
    in_data: bool  # a field of event.data, else of the event itself
    kind: Kind = "text"  # a typed output's column type (Parquet)


def _kind(annotation: object) -> Kind:
    members = typing.get_args(annotation) or (annotation,)
    if dt.datetime in members:
        return "timestamp"
    sql_type = _sql_type(annotation)
    if sql_type == "INTEGER":
        return "integer"
    return "real" if sql_type == "REAL" else "text"


def _sql_type(annotation: object) -> str:
    members = typing.get_args(annotation) or (annotation,)
    if int in members and bool not in members:
        return "INTEGER"
    return "REAL" if float in members else "TEXT"


def _required(annotation: object) -> bool:
    return types.NoneType not in typing.get_args(annotation)


def _common(event: type[msgspec.Struct] = Event) -> tuple[Column, ...]:
    return tuple(
        Column(
            field.name,
            _sql_type(field.type),
            _required(field.type),
            in_data=False,
            kind=_kind(field.type),
        )
        for field in msgspec.structs.fields(event)
        if field.name != "data"
    )


def _data(union: object = EventData) -> tuple[Column, ...]:
    columns: dict[str, Column] = {}
    for kind in typing.get_args(union):
        if not (isinstance(kind, type) and issubclass(kind, msgspec.Struct)):
            continue  # the plain mapping of an unknown type has no fields to list
        for field in msgspec.structs.fields(kind):
            if field.name != "event_name" and field.name not in columns:
                columns[field.name] = Column(
                    field.name,
                    _sql_type(field.type),
                    required=False,
                    in_data=True,
                    kind=_kind(field.type),
                )
    return tuple(columns.values())


COMMON_COLUMNS = _common()
DATA_COLUMNS = _data()
COLUMNS = (*COMMON_COLUMNS, *DATA_COLUMNS)
# Keys of ``data`` that the columns already carry (event_name repeats the event's own).
CARRIED_DATA_KEYS = frozenset((*(column.name for column in DATA_COLUMNS), "event_name"))

# The business data columns: the article every news-based type cites, then what the
# hiring, department-trend, funding, office, product, partnership, award and
# joined-employee types carry most.
BUSINESS_DATA_FIELDS = (
    "title",
    "link",
    "snippet",
    "department",
    "change_type",
    "department_change",
    "job_count",
    "job_titles",
    "location",
    "company_name",
    "amount_raised",
    "lead_investor",
    "investors",
    "office_location",
    "product_name",
    "partner_company",
    "award_name",
    "full_name",
    "job_role_title",
)


@dataclass(frozen=True, slots=True)
class ColumnTable:
    """The columns of one entity's events, in CSV and SQLite alike."""

    entity: str  # "prospect" or "business"
    sql_table: str  # the SQLite table
    id_column: str  # the event's ID field: prospect_id, business_id
    common: tuple[Column, ...]
    data: tuple[Column, ...]
    known_types: frozenset[str]

    @property
    def columns(self) -> tuple[Column, ...]:
        """Every column but the JSON one: the common ones, then the data ones."""
        return (*self.common, *self.data)

    @property
    def carried_data_keys(self) -> frozenset[str]:
        """Keys of ``data`` that the columns carry (event_name repeats the event's own)."""
        return frozenset((*(column.name for column in self.data), "event_name"))

    @property
    def csv_columns(self) -> tuple[str, ...]:
        """The CSV header: every column, then ``data_json``."""
        return (*(column.name for column in self.columns), "data_json")


def _business_data() -> tuple[Column, ...]:
    every = {column.name: column for column in _data(BusinessEventData)}
    return tuple(every[name] for name in BUSINESS_DATA_FIELDS)


TABLES: dict[str, ColumnTable] = {
    "prospect": ColumnTable(
        "prospect",
        "events",
        "prospect_id",
        COMMON_COLUMNS,
        DATA_COLUMNS,
        frozenset(kind.value for kind in EventType),
    ),
    "business": ColumnTable(
        "business",
        "business_events",
        "business_id",
        _common(BusinessEvent),
        _business_data(),
        frozenset(kind.value for kind in BusinessEventType),
    ),
}


def table_for(entity: str) -> ColumnTable:
    """The column table of ``entity``'s events ("prospect" or "business")."""
    return TABLES[entity]
