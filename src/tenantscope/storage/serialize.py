"""UsageRecord <-> Arrow / row conversion shared by the analytic backends.

Stores keep times as UTC and money as exact decimals with ``MONEY_SCALE`` places; this module
is the one place that converts between the Python record and those column representations.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import orjson
import pyarrow as pa

from tenantscope.records import MONEY_QUANTUM, MONEY_SCALE, RECORD_FIELDS, UsageRecord

# Column families of UsageRecord. Every field belongs to exactly one (checked below), so a
# field added to records.py without a storage decision fails at import, not at write time.
INT_FIELDS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
FLOAT_FIELDS: tuple[str, ...] = ("duration_ms", "ttft_ms")
TIME_FIELDS: tuple[str, ...] = ("start_time", "end_time", "received_at")
JSON_FIELDS: tuple[str, ...] = ("attributes", "events")
DECIMAL_FIELDS: tuple[str, ...] = ("cost_usd",)
BOOL_FIELDS: tuple[str, ...] = ("shadowed",)
LIST_FIELDS: tuple[str, ...] = ("inherited",)
_NON_STRING = frozenset(
    INT_FIELDS
    + FLOAT_FIELDS
    + TIME_FIELDS
    + JSON_FIELDS
    + DECIMAL_FIELDS
    + BOOL_FIELDS
    + LIST_FIELDS
)
STRING_FIELDS: tuple[str, ...] = tuple(f for f in RECORD_FIELDS if f not in _NON_STRING)

if not _NON_STRING <= set(RECORD_FIELDS):  # pragma: no cover - guards records.py edits
    raise RuntimeError(
        f"serialize knows fields UsageRecord lacks: {_NON_STRING - set(RECORD_FIELDS)}"
    )

MONEY_PRECISION = 38
MONEY_TYPE = pa.decimal128(MONEY_PRECISION, MONEY_SCALE)


def _arrow_type(name: str) -> pa.DataType:
    if name in INT_FIELDS:
        return pa.int64()
    if name in FLOAT_FIELDS:
        return pa.float64()
    if name in TIME_FIELDS:
        return pa.timestamp("us")
    if name in DECIMAL_FIELDS:
        return MONEY_TYPE
    if name in BOOL_FIELDS:
        return pa.bool_()
    if name in LIST_FIELDS:
        return pa.list_(pa.string())
    return pa.string()  # plain strings and JSON text


# Timestamps are naive UTC in the Arrow schema: DuckDB TIMESTAMP has no zone and comparing it
# with a zoned value would go through the session time zone.
ARROW_SCHEMA: pa.Schema = pa.schema([pa.field(n, _arrow_type(n)) for n in RECORD_FIELDS])


def to_utc_naive(value: datetime) -> datetime:
    """A UTC wall-clock datetime without tzinfo; naive input is taken as UTC already."""
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def to_utc_aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def quantize_money(value: Decimal | None) -> Decimal | None:
    """``value`` rounded (half-even) to the stored scale; raises ValueError if not finite."""
    if value is None:
        return None
    if not isinstance(value, Decimal):
        raise TypeError(f"cost must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"cost must be finite, got {value}")
    try:
        q = value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)
    except InvalidOperation as exc:
        raise ValueError(f"cost {value} does not fit the money column") from exc
    if len(q.as_tuple().digits) > MONEY_PRECISION:
        raise ValueError(f"cost {value} does not fit the money column")
    return q


# The stdlib encoder, built once (json.dumps with options builds one per call), for what
# orjson refuses (integers beyond 64 bits).
_STD_ENCODE = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    # attribute values are already JSON-like after decoding; anything odd that slips through
    # (bytes, datetimes) is kept readable rather than failing a whole batch.
    default=str,
).encode


def _encode(value: Any) -> str:
    # orjson is several times faster; every stored record has its attributes encoded
    try:
        return orjson.dumps(value, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        return _STD_ENCODE(value)


_STD_DECODE = json.JSONDecoder().decode


def _decode(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _STD_DECODE(text)  # e.g. integers beyond 64 bits


_UTC_TS = pa.timestamp("us", tz="UTC")
_NAIVE_TS = pa.timestamp("us")


def _time_array(values: list[Any]) -> pa.Array:
    # Arrow converts aware values of any offset to UTC (naive ones are taken as UTC); the
    # cast then only drops the zone label.
    return pa.array(values, type=_UTC_TS).cast(_NAIVE_TS)


def _money_array(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values, type=MONEY_TYPE)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # more places than stored (or not a finite decimal): round, or say what is wrong
        return pa.array([quantize_money(v) for v in values], type=MONEY_TYPE)


_ALL_FIELDS = operator.attrgetter(*RECORD_FIELDS)


def records_to_arrow(records: Sequence[UsageRecord]) -> pa.Table:
    """Column-wise Arrow table in ``ARROW_SCHEMA`` order."""
    columns: list[pa.Array] = []
    # one C-level attrgetter call per record, then transpose: far cheaper than a getattr
    # per field per record
    rows = map(_ALL_FIELDS, records)
    by_field = list(zip(*rows, strict=True)) if records else [() for _ in RECORD_FIELDS]
    for name, column in zip(RECORD_FIELDS, by_field, strict=True):
        values = list(column)
        if name in TIME_FIELDS:
            columns.append(_time_array(values))
            continue
        if name in DECIMAL_FIELDS:
            columns.append(_money_array(values))
            continue
        if name in JSON_FIELDS:
            values = [_encode(v) if v else ("{}" if name == "attributes" else "[]") for v in values]
        elif name in LIST_FIELDS:
            values = [list(v) for v in values]
        columns.append(pa.array(values, type=ARROW_SCHEMA.field(name).type))
    return pa.Table.from_arrays(columns, schema=ARROW_SCHEMA)


def _utc_list(values: list[Any]) -> list[Any]:
    utc = timezone.utc
    return [None if v is None else v.replace(tzinfo=utc) for v in values]


def row_to_record(row: Mapping[str, Any]) -> UsageRecord:
    """A stored row (column name -> value, as DuckDB or Arrow return it) as a UsageRecord."""
    values: dict[str, Any] = {}
    for name in RECORD_FIELDS:
        value = row[name]
        if name in TIME_FIELDS:
            value = to_utc_aware(value)
        elif name in JSON_FIELDS:
            value = _decode(value) if value else ({} if name == "attributes" else [])
        elif name in LIST_FIELDS:
            value = tuple(value or ())
        elif name in DECIMAL_FIELDS:
            value = None if value is None else Decimal(value)
        elif name in INT_FIELDS:
            value = int(value)
        elif name in BOOL_FIELDS:
            value = bool(value)
        elif name in STRING_FIELDS and value is None:
            value = ""
        values[name] = value
    return UsageRecord(**values)


def arrow_to_records(table: pa.Table | pa.RecordBatch) -> list[UsageRecord]:
    """Records from an Arrow table/batch with ``ARROW_SCHEMA`` columns (any order).

    Column-wise: converting whole columns is several times faster than row dicts."""
    columns: list[list[Any]] = []
    for name in RECORD_FIELDS:
        col = table.column(name)
        if name in TIME_FIELDS and pa.types.is_timestamp(col.type) and col.type.tz is not None:
            col = col.cast(_NAIVE_TS)  # zoned input: its UTC value, without a zone object
        values = col.to_pylist()
        if name in TIME_FIELDS:
            values = _utc_list(values)
        elif name in JSON_FIELDS:
            empty: Any = {} if name == "attributes" else []
            values = [_decode(v) if v else type(empty)() for v in values]
        elif name in LIST_FIELDS:
            values = [tuple(v) if v else () for v in values]
        elif name in STRING_FIELDS:
            values = ["" if v is None else v for v in values]
        columns.append(values)
    return [UsageRecord(*vals) for vals in zip(*columns, strict=True)]
