"""Parsing of query inputs shared by the JSON API, the dashboard and the CLI."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tenantscope.errors import BadRequest

DEFAULT_WINDOW = timedelta(days=7)
MAX_LIMIT = 1000


def parse_time(value: str | None, field: str) -> datetime | None:
    """RFC 3339 (``Z`` or offset; a date alone means midnight UTC) or epoch seconds."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        try:
            return datetime.fromtimestamp(number, timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise BadRequest(f"{field}: epoch seconds out of range: {value!r}") from None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{field}: expected an RFC 3339 time (2026-01-31T12:00:00Z) or epoch seconds,"
            f" got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: datetime
    end: datetime

    @classmethod
    def parse(
        cls,
        start: str | None,
        end: str | None,
        *,
        default: timedelta = DEFAULT_WINDOW,
        now: datetime | None = None,
    ) -> TimeRange:
        end_t = parse_time(end, "to") or (now or datetime.now(timezone.utc))
        start_t = parse_time(start, "from") or (end_t - default)
        if start_t >= end_t:
            raise BadRequest("from must be earlier than to")
        return cls(start_t, end_t)

    @classmethod
    def last(cls, delta: timedelta, now: datetime | None = None) -> TimeRange:
        end = now or datetime.now(timezone.utc)
        return cls(end - delta, end)

    def previous(self) -> TimeRange:
        span = self.end - self.start
        return TimeRange(self.start - span, self.start)

    def naive(self) -> tuple[datetime, datetime]:
        """UTC-naive bounds, as the stores keep timestamps."""
        return (
            self.start.astimezone(timezone.utc).replace(tzinfo=None),
            self.end.astimezone(timezone.utc).replace(tzinfo=None),
        )


def check_limit(limit: int | None, default: int = 50) -> int:
    if limit is None:
        return default
    if limit < 1 or limit > MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def encode_cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, TypeError):
        raise BadRequest("cursor is not valid: pass next_cursor from a previous page") from None
    if not isinstance(data, dict):
        raise BadRequest("cursor is not valid: pass next_cursor from a previous page")
    return data
