"""The global time-range picker: presets in the URL (``range=24h``) or a custom
``from``/``to`` pair, resolved to a TimeRange, plus the chart bucket that suits it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from tenantscope.errors import BadRequest
from tenantscope.query.params import TimeRange, parse_time

PRESETS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_PRESET = "7d"


@dataclass(frozen=True)
class PickedRange:
    """What the picker shows and what queries get."""

    preset: str  # one of PRESETS, or "custom"
    rng: TimeRange
    raw_from: str = ""
    raw_to: str = ""

    @property
    def interval(self) -> str:
        """Hour buckets up to two days, day buckets beyond (a readable number of bars)."""
        return "hour" if self.rng.end - self.rng.start <= timedelta(days=2) else "day"

    def params(self) -> dict[str, str]:
        """The query parameters that reproduce this range in a link."""
        if self.preset == "custom":
            return {"from": self.raw_from, "to": self.raw_to}
        return {"range": self.preset}

    @property
    def label(self) -> str:
        if self.preset != "custom":
            return f"last {self.preset}"
        return f"{_short(self.rng.start)} – {_short(self.rng.end)}"


def pick(
    range_: str | None, start: str | None, end: str | None, now: datetime | None = None
) -> PickedRange:
    now = now or datetime.now(timezone.utc)
    if (start or end) and not range_:
        end_t = parse_time(end, "to") or now
        start_t = parse_time(start, "from") or (end_t - PRESETS[DEFAULT_PRESET])
        if start_t >= end_t:
            raise BadRequest("from must be earlier than to")
        return PickedRange("custom", TimeRange(start_t, end_t), start or "", end or "")
    preset = range_ or DEFAULT_PRESET
    if preset not in PRESETS:
        raise BadRequest(f"range must be one of {', '.join(PRESETS)}; got {preset!r}")
    return PickedRange(preset, TimeRange.last(PRESETS[preset], now))


def _short(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
