"""What a CSV cell holds, and following a list's cursors over real stores."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tenantscope.dashboard.csv_export import MAX_CSV_ROWS, cell, paged, text_cell, wants_csv
from tenantscope.errors import BadRequest
from tenantscope.query.params import TimeRange
from tenantscope.query.scope import Scope
from tenantscope.records import UsageRecord
from tenantscope.server.services import Services


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("apex-legal", "apex-legal"),
        ("a=b", "a=b"),  # only the first character matters
        ("", ""),
    ],
)
def test_text_that_a_spreadsheet_would_run_is_made_text(value: str, shown: str) -> None:
    assert text_cell(value) == shown
    assert cell(value) == shown


def test_numbers_stay_numbers_and_money_stays_exact() -> None:
    assert cell(Decimal("-1.5")) == "-1.500000000"  # a negative number is not guarded
    assert cell(Decimal("0.000000000001")) == "0.000000000001"
    assert cell(Decimal("1E-7")) == "0.000000100"  # never exponent notation
    assert cell(-3) == "-3"
    assert cell(1e-05) == "0.00001"
    assert cell(0.25) == "0.25"
    assert cell(None) == ""
    assert cell(True) == "true"
    assert cell(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "2026-01-02T03:04:05Z"
    assert cell(["gpt-4o", "=x"]) == "gpt-4o =x"
    assert cell(["=x", "gpt-4o"]) == "'=x gpt-4o"


def test_format_values() -> None:
    assert wants_csv(None) is False and wants_csv("csv") is True
    with pytest.raises(BadRequest, match="format must be csv"):
        wants_csv("xlsx")
    with pytest.raises(BadRequest, match="add format=csv"):
        wants_csv(None, "model")
    assert MAX_CSV_ROWS == 100_000


def test_paged_follows_the_cursors_of_a_real_list(services: Services) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    records = [
        UsageRecord(
            event_id=f"u{i}",
            trace_id=f"{i + 1:032x}",
            span_id=f"{i + 1:016x}",
            name="chat",
            kind="llm",
            tenant_id="acme",
            user_id=f"user-{i:03d}",
            model="gpt-4o",
            input_tokens=10,
            output_tokens=1,
            cost_usd=Decimal("0.001"),
            cost_source="reported",
            start_time=now - timedelta(minutes=i),
            end_time=now - timedelta(minutes=i) + timedelta(seconds=1),
            duration_ms=1000,
        )
        for i in range(23)
    ]
    assert services.writer.write_sync(records).accepted == 23
    rng = TimeRange(now - timedelta(days=1), now + timedelta(hours=1))
    q = services.queries
    calls: list[str | None] = []

    def fetch(cursor: str | None):  # type: ignore[no-untyped-def]
        calls.append(cursor)
        return q.users(Scope.all(), rng, sort="cost", limit=5, cursor=cursor)

    rows = paged(fetch)
    assert calls == [None]  # the first page is read at once (errors are the page's)
    ids = [r.id for r in rows]
    assert sorted(ids) == [f"user-{i:03d}" for i in range(23)]
    assert len(calls) == 5  # 5 + 5 + 5 + 5 + 3
