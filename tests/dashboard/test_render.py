"""The display filters and the time-range picker."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tenantscope.dashboard.ranges import pick
from tenantscope.dashboard.render import ago, compact, delta, money, ms, num, pct, tenant_label
from tenantscope.errors import BadRequest

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        ("0", "$0.00"),
        ("1234.5", "$1,234.50"),
        ("1", "$1.00"),
        ("0.0123", "$0.0123"),
        ("0.01", "$0.0100"),
        ("0.001", "$0.0010"),
        ("0.000812", "$0.000812"),
        ("0.0000004", "<$0.000001"),
        ("-2.5", "−$2.50"),
        ("0.999999999999", "$1.0000"),
    ],
)
def test_money(value: str | None, shown: str) -> None:
    assert money(None if value is None else Decimal(value)) == shown


def test_numbers_and_durations() -> None:
    assert num(1234567) == "1,234,567" and num(None) == "—" and num(2.5) == "2.5"
    assert compact(37_000_000) == "37.0M" and compact(1500) == "1.5k" and compact(12) == "12"
    assert ms(850.4) == "850 ms" and ms(2310) == "2.31 s" and ms(90_000) == "1.5 min"
    assert pct(0.0123) == "1.2%" and pct(None) == "—"
    assert tenant_label("") == "(no tenant)" and tenant_label("acme") == "acme"


def test_delta_is_new_when_the_previous_period_is_near_zero() -> None:
    """Under 1% of the current figure the previous one is nothing: "new", never a
    percentage like +14154037%."""
    assert delta(Decimal("141.54037"), Decimal("0.000001")) == "new"
    assert delta(1415, 0.01) == "new" and delta(101, 1) == "new"
    assert delta(100, 1) == "+9900%"  # the largest change shown as a percentage
    assert delta(0, 5) == "−100%" and delta(0, 0) == ""


def test_delta_and_ago() -> None:
    assert delta(Decimal("12"), Decimal("10")) == "+20%"
    assert delta(5, 10) == "−50%"
    assert delta(3, 0) == "new" and delta(0, 0) == "" and delta(None, 3) == ""
    assert ago(NOW - timedelta(minutes=5), now=NOW) == "5 min ago"
    assert ago(NOW - timedelta(days=2, hours=3), now=NOW) == "2 d ago"
    assert ago(NOW + timedelta(seconds=5), now=NOW) == "just now"


def test_range_presets_and_custom() -> None:
    r = pick("24h", None, None, now=NOW)
    assert r.preset == "24h" and r.rng.end - r.rng.start == timedelta(hours=24)
    assert r.interval == "hour" and r.params() == {"range": "24h"}
    assert pick(None, None, None, now=NOW).preset == "7d"
    assert pick("30d", None, None, now=NOW).interval == "day"
    c = pick(None, "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", now=NOW)
    assert c.preset == "custom" and c.rng.start == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert c.params() == {"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}
    assert c.label == "2026-11-01 00:00 – 2026-11-02 00:00"
    with pytest.raises(BadRequest, match="range must be one of"):
        pick("5y", None, None)
    with pytest.raises(BadRequest, match="earlier"):
        pick(None, "2026-11-02", "2026-11-01")
