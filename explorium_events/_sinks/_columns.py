"""The one column table of the CSV, SQLite and Parquet outputs, derived from the event models.

The common columns are the fields of ``Event`` (but ``data``), in its order; the data
columns are the fields of the known event types' data structs (``EventData``), their
union in a fixed order, ``event_name`` left out (it repeats the event's own). A field
added to a model becomes a column of every output; an SQLite table made before gains it
(``ALTER TABLE ... ADD COLUMN``), and a CSV header lists it.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from dataclasses import dataclass
from typing import Literal

import msgspec

from .._models import Event, EventData


@dataclass(frozen=True, slots=True)
class Column:
    """One output column: a field of the event, or of its ``data``."""

    name: str
    sql_type: str  # "TEXT" or "INTEGER": an SQLite column's declared type
    required: bool  # every event has it (NOT NULL in SQLite)
    in_data: bool  # a field of event.data, else of the event itself
    kind: Literal["text", "integer", "timestamp"] = "text"  # a typed output's column type


def _kind(annotation: object) -> Literal["text", "integer", "timestamp"]:
    members = typing.get_args(annotation) or (annotation,)
    if dt.datetime in members:
        return "timestamp"
    return "integer" if _sql_type(annotation) == "INTEGER" else "text"


def _sql_type(annotation: object) -> str:
    members = typing.get_args(annotation) or (annotation,)
    return "INTEGER" if int in members and bool not in members else "TEXT"


def _required(annotation: object) -> bool:
    return types.NoneType not in typing.get_args(annotation)


def _common() -> tuple[Column, ...]:
    return tuple(
        Column(
            field.name,
            _sql_type(field.type),
            _required(field.type),
            in_data=False,
            kind=_kind(field.type),
        )
        for field in msgspec.structs.fields(Event)
        if field.name != "data"
    )


def _data() -> tuple[Column, ...]:
    columns: dict[str, Column] = {}
    for kind in typing.get_args(EventData):
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
