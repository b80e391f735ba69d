"""CSV downloads of the dashboard's tables: what a cell holds, and the streamed answer.

A page's table downloads with ``format=csv`` added to the page's own URL, so the rows are
those of the page's filters and time range (the cursor is ignored: every row, from the
first), read from the same query layer under the caller's Scope. Lists are read a chunk at
a time and streamed; at most MAX_CSV_ROWS rows.

Cells: money and other decimals as exact plain decimals (``0.000450000``, never a float or
an exponent), counts as integers, times RFC 3339 UTC, empty for unknown. Text cells that a
spreadsheet would run as a formula (starting with ``= + - @``, tab or carriage return) get a
leading ``'``; numbers are never text, so a negative number stays a number.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.responses import StreamingResponse

from tenantscope.dashboard.ranges import PickedRange
from tenantscope.errors import BadRequest
from tenantscope.query.models import Page, rfc3339
from tenantscope.query.params import MAX_LIMIT
from tenantscope.records import format_money

MAX_CSV_ROWS = 100_000
CHUNK = MAX_LIMIT  # rows per query while following a list's cursors
_FLUSH = 500  # rows per streamed piece
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def wants_csv(fmt: str | None, table: str | None = None) -> bool:
    """Whether a page is asked for its CSV (``format=csv``); any other format is a 400,
    and so is naming a ``table`` without it."""
    if fmt is None:
        if table is not None:
            raise BadRequest("table names the table of a CSV download: add format=csv")
        return False
    if fmt != "csv":
        raise BadRequest(f"format must be csv (leave it out for the page); got {fmt!r}")
    return True


def text_cell(value: str) -> str:
    """Text a spreadsheet shows as text, never runs: formula starts get a leading '."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format_money(value) or ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")  # 1e-05 as 0.00001
    if isinstance(value, datetime):
        return rfc3339(value) or ""
    if isinstance(value, (list, tuple)):
        return text_cell(" ".join(str(v) for v in value))
    return text_cell(str(value))


@dataclass(frozen=True)
class Table:
    """A downloadable table: its file name part and its columns. A column is read from a
    row by attribute (query results) or key (dicts)."""

    name: str
    columns: tuple[str, ...]

    def row(self, item: Any) -> list[str]:
        if isinstance(item, dict):
            return [cell(item.get(c)) for c in self.columns]
        return [cell(getattr(item, c, None)) for c in self.columns]


def fields(model: Any, first: Sequence[str] = (), drop: Sequence[str] = ()) -> tuple[str, ...]:
    """A query result model's fields as columns: ``first`` ones first, ``drop`` left out."""
    rest = [f for f in model.model_fields if f not in first and f not in drop]
    return (*first, *rest)


def paged(fetch: Callable[[str | None], Page[Any]]) -> Iterator[Any]:
    """Every row of a cursor-paged list, up to MAX_CSV_ROWS. The first page is read now,
    so a bad filter is the page's 400, not a broken download; the rest as it streams."""
    first = fetch(None)

    def rows() -> Iterator[Any]:
        page, n = first, 0
        while True:
            for item in page.items:
                if n >= MAX_CSV_ROWS:
                    return
                yield item
                n += 1
            if not page.next_cursor or n >= MAX_CSV_ROWS:
                return
            page = fetch(page.next_cursor)

    return rows()


def _stream(table: Table, items: Iterable[Any]) -> Iterator[str]:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(table.columns)
    n = 0
    for item in items:
        if n >= MAX_CSV_ROWS:
            break
        out.writerow(table.row(item))
        n += 1
        if n % _FLUSH == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def _stamp(t: datetime) -> str:
    return (rfc3339(t) or "").replace("-", "").replace(":", "").split(".")[0].rstrip("Z") + "Z"


def csv_response(table: Table, items: Iterable[Any], picked: PickedRange) -> StreamingResponse:
    """The table as a streamed CSV attachment named for it and the time range."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", table.name)
    filename = f"tenantscope-{name}-{_stamp(picked.rng.start)}-{_stamp(picked.rng.end)}.csv"
    return StreamingResponse(
        _stream(table, items),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
