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
# The times a query accepts. Ingest refuses spans before 2000, so nothing older is stored;
# 1970 still lets ``from=0`` mean "from the beginning". The upper bound keeps every time a
# query derives (the previous period, bucket edges, search windows) far from the end of
# Python's datetime (year 9999) and inside what ClickHouse's DateTime64 holds (2299).
MIN_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_TIME = datetime(2200, 1, 1, tzinfo=timezone.utc)
TIME_BOUNDS = f"{MIN_TIME:%Y-%m-%dT%H:%M:%SZ} and {MAX_TIME:%Y-%m-%dT%H:%M:%SZ}"


def _out_of_range(field: str, value: str) -> BadRequest:
    return BadRequest(f"{field}: {value!r} is out of range: times must be between {TIME_BOUNDS}")


def parse_time(value: str | None, field: str) -> datetime | None:
    """RFC 3339 (``Z`` or offset; a date alone means midnight UTC) or epoch seconds, between
    MIN_TIME and MAX_TIME."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        parsed = _parse_epoch(text) or _parse_rfc3339(text)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 has no UTC datetime
        raise _out_of_range(field, value) from None
    except ValueError:
        raise BadRequest(
            f"{field}: expected an RFC 3339 time (2026-01-31T12:00:00Z) or epoch seconds,"
            f" got {value!r}"
        ) from None
    if not MIN_TIME <= parsed <= MAX_TIME:
        raise _out_of_range(field, value)
    return parsed


def _parse_epoch(text: str) -> datetime | None:
    """Epoch seconds; None for text that is not a number. Raises OverflowError for a number
    no datetime holds, ValueError for nan."""
    try:
        number = float(text)
    except ValueError:
        return None
    if number != number:  # nan: no time at all
        raise ValueError(text)
    if not MIN_TIME.timestamp() - 1 <= number <= MAX_TIME.timestamp() + 1:
        raise OverflowError(text)  # checked first: the platform's limits vary (OSError)
    return datetime.fromtimestamp(number, timezone.utc)


def _parse_rfc3339(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
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


def check_limit(
    limit: int | None, default: int = 50, maximum: int = MAX_LIMIT, name: str = "limit"
) -> int:
    if limit is None:
        return default
    if limit < 1 or limit > maximum:
        raise BadRequest(f"{name} must be between 1 and {maximum}, got {limit}")
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
