"""Where events are written: the EventSink protocol, the format registry and the built-in sinks.

Modules: ``_protocol`` (what a sink is), ``_columns`` (the one column table, from the
models), ``_files`` (JSONL and CSV), ``_json`` (one JSON array), ``_sqlite`` (SQLite,
upserted), ``_parquet`` (a Parquet dataset of part files; needs pyarrow), ``_registry``
(the formats, ``open_sink``, and a pull's output). This package imports only lower
modules (``_models``, ``_errors``): the client, the pull and the command line build on it.
"""

from ._columns import COLUMNS, COMMON_COLUMNS, DATA_COLUMNS, TABLES, Column, ColumnTable, table_for
from ._files import CSV_COLUMNS, CsvSink, JsonlSink, csv_row
from ._json import JsonArraySink
from ._parquet import ParquetSink
from ._protocol import BuiltinSink, EventSink
from ._registry import (
    DEFAULT_FORMAT,
    EXTENSIONS,
    FORMATS,
    Format,
    PullOutput,
    Resume,
    format_for,
    open_sink,
)
from ._sqlite import SqliteSink, event_row

__all__ = [
    "COLUMNS",
    "COMMON_COLUMNS",
    "CSV_COLUMNS",
    "DATA_COLUMNS",
    "DEFAULT_FORMAT",
    "EXTENSIONS",
    "FORMATS",
    "TABLES",
    "BuiltinSink",
    "Column",
    "ColumnTable",
    "CsvSink",
    "EventSink",
    "Format",
    "JsonArraySink",
    "JsonlSink",
    "ParquetSink",
    "PullOutput",
    "Resume",
    "SqliteSink",
    "csv_row",
    "event_row",
    "format_for",
    "open_sink",
    "table_for",
]
