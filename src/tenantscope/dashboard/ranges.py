"""The global time-range picker: presets in the URL (``range=24h``) or a custom
``from``/``to`` pair, resolved to a TimeRange, plus the chart bucket that suits it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from tenantscope.errors import BadRequest
from tenantscope.query.params import TimeRange

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
        # the query layer parses and bounds the times, exactly as for the API
        rng = TimeRange.parse(start, end, default=PRESETS[DEFAULT_PRESET], now=now)
        return PickedRange("custom", rng, start or "", end or "")
    preset = range_ or DEFAULT_PRESET
    if preset not in PRESETS:
        raise BadRequest(f"range must be one of {', '.join(PRESETS)}; got {preset!r}")
    return PickedRange(preset, TimeRange.last(PRESETS[preset], now))


def _short(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
