"""Budget periods: calendar months in a time zone from an anchor day, back to back."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tenantscope.limits.periods import period, projected

UTC = timezone.utc


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_utc_months_end_exactly_at_midnight() -> None:
    assert period(at(2026, 12, 31, 23, 59, 59, 999999)) == (at(2026, 12, 1), at(2027, 1, 1))
    assert period(at(2027, 1, 1)) == (at(2027, 1, 1), at(2027, 2, 1))
    assert period(at(2028, 2, 29, 12)) == (at(2028, 2, 1), at(2028, 3, 1))


def test_a_time_zone_moves_the_boundary_and_follows_daylight_saving() -> None:
    # Berlin: midnight is 23:00 UTC in winter, 22:00 in summer
    assert period(at(2026, 12, 31, 22, 59), "Europe/Berlin") == (
        at(2026, 11, 30, 23),
        at(2026, 12, 31, 23),
    )
    assert period(at(2026, 12, 31, 23, 0), "Europe/Berlin")[0] == at(2026, 12, 31, 23)
    start, end = period(at(2026, 4, 15), "Europe/Berlin")
    assert (start, end) == (at(2026, 3, 31, 22), at(2026, 4, 30, 22))
    # New York, anchor day 15: a period across the March change is an hour short
    start, end = period(at(2026, 3, 5), "America/New_York", 15)
    assert (start, end) == (at(2026, 2, 15, 5), at(2026, 3, 15, 4))


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata", "Pacific/Chatham", "America/Sao_Paulo"])
@pytest.mark.parametrize("anchor", [1, 15, 28])
def test_periods_are_back_to_back_for_two_years(tz: str, anchor: int) -> None:
    start, end = period(at(2026, 1, 1), tz, anchor)
    for _ in range(24):
        assert start < end
        assert period(end - timedelta(microseconds=1), tz, anchor) == (start, end)
        nxt = period(end, tz, anchor)
        assert nxt[0] == end  # the next begins exactly where this one ends
        start, end = nxt


def test_the_projection_is_a_straight_line_from_the_spend_so_far() -> None:
    now = at(2025, 3, 11)
    start, end = period(now)
    # $10 settled in 10 of 31 days: $31 at the end
    assert projected(Decimal("10"), start, end, now) == Decimal("31")
    assert projected(Decimal("5"), start, end, start) == Decimal("5")  # nothing passed yet
    # taken to the minute: a reload a few seconds later shows the same figure
    later = now + timedelta(seconds=42)
    assert projected(Decimal("10"), start, end, later) == projected(Decimal("10"), start, end, now)
