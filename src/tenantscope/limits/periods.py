"""Budget periods: calendar months in a time zone, starting on an anchor day (1-28, so
every month has it). A period is [start, end) in UTC; the next begins exactly where one
ends, so spend is never counted in two periods or in none."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_ANCHOR_DAY = 28


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The time zone ``name`` (an IANA name such as ``Europe/Berlin``); KeyError when
    there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise KeyError(name) from exc


def check_period(problems: dict[str, str], tz: object, anchor: object) -> tuple[str, int]:
    """A submitted period's time zone and anchor day (``timezone``, ``anchor_day``: empty
    means UTC and 1), each wrong one named in ``problems``: budgets and plans alike."""
    name = str(tz or "UTC")
    try:
        zone(name)
    except KeyError:
        problems["timezone"] = "an IANA time zone name, e.g. UTC or Europe/Berlin"
        name = "UTC"
    day = 1
    try:
        if anchor not in (None, ""):
            if isinstance(anchor, (bool, float)):
                raise ValueError
            day = int(anchor)  # type: ignore[call-overload]
        if not 1 <= day <= MAX_ANCHOR_DAY:
            raise ValueError
    except (TypeError, ValueError):
        problems["anchor_day"] = f"the day a period starts: 1 to {MAX_ANCHOR_DAY}"
        day = 1
    return name, day


def _start_of(year: int, month: int, anchor_day: int, tz: ZoneInfo) -> datetime:
    # local midnight of the anchor day; fold=0 takes the first of an ambiguous hour
    return datetime(year, month, anchor_day, tzinfo=tz).astimezone(timezone.utc)


def _shift(year: int, month: int, by: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + by
    return index // 12, index % 12 + 1


def period(at: datetime, tz_name: str = "UTC", anchor_day: int = 1) -> tuple[datetime, datetime]:
    """The period holding ``at`` (aware): (start, end) in UTC."""
    tz = zone(tz_name)
    local = at.astimezone(tz)
    year, month = local.year, local.month
    start = _start_of(year, month, anchor_day, tz)
    if at < start:
        year, month = _shift(year, month, -1)
        start = _start_of(year, month, anchor_day, tz)
    ny, nm = _shift(year, month, 1)
    return start, _start_of(ny, nm, anchor_day, tz)


def projected(spent: Decimal, start: datetime, end: datetime, now: datetime) -> Decimal:
    """The period's spend at its end if it goes on at the pace so far: ``spent`` (settled,
    not what calls in flight hold) over the elapsed share of the period. A straight line:
    it knows nothing of weekdays or a launch tomorrow. ``now`` is taken to the minute, so
    the figure does not change with every reload."""
    now = now.replace(second=0, microsecond=0)
    total = Decimal((end - start).total_seconds())
    elapsed = Decimal(max(0.0, (now - start).total_seconds()))
    spent = max(Decimal(0), spent)
    if total <= 0 or elapsed <= 0:
        return spent
    share = min(Decimal(1), elapsed / total)
    return (spent / share).quantize(Decimal("0.000000001"))
