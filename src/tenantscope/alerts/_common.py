"""What the notifiers share: the outcome of one failed attempt, and the words and times
every channel shows the same way."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlsplit

from tenantscope.alerts.notifications import Notification

# event -> (emoji, label); the label is also the email subject's tag
EVENTS: dict[str, tuple[str, str]] = {
    "firing": ("🔴", "FIRING"),
    "resolved": ("🟢", "RESOLVED"),
    "warning": ("🟠", "WARNING"),
    "no_data": ("⚪", "NO DATA"),
    "test": ("🧪", "TEST"),
}


class AttemptFailed(Exception):
    """One attempt failed. ``message`` is shown to users, so it names what failed and
    where (a host, never a URL); ``transient``: worth another attempt; ``retry_after``:
    the seconds the receiver asked us to wait, if it did."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.retry_after = retry_after


def one_line(text: str) -> str:
    """``text`` with control characters (newlines too) as spaces: a hostile rule name or
    tenant id cannot forge extra lines (a fake "Severity: info") or email headers."""
    return "".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in text)


def event_label(event: str) -> tuple[str, str]:
    return EVENTS.get(event, ("🔔", event.replace("_", " ").upper()))


def tenant_label(n: Notification) -> str:
    if n.tenant_id is None:
        return "all tenants"
    return one_line(n.tenant_id) or "(no tenant)"  # spans without a tenant are kept under ""


def value_label(n: Notification) -> str:
    return "no data" if n.value is None else n.value


def utc(moment: datetime) -> datetime:
    # a naive time here is UTC (the evaluator works in UTC); never the host's zone
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def rfc3339(moment: datetime) -> str:
    return utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z")


def window_range(n: Notification) -> str:
    """``2024-05-01 10:00–10:05 UTC`` (the end's date only when it differs)."""
    start, end = utc(n.window_start), utc(n.window_end)
    end_text = end.strftime("%H:%M" if end.date() == start.date() else "%Y-%m-%d %H:%M")
    return f"{start:%Y-%m-%d %H:%M}–{end_text} UTC"


def safe_link(link: str) -> str:
    """``link`` when it is an http(s) URL, else "" (a ``javascript:`` link is never
    rendered as something to click)."""
    parts = urlsplit(link)
    return link if parts.scheme in ("http", "https") and parts.hostname else ""


def where(url: str) -> str:
    """The host (and port when given) of ``url``: all a message may say about it, since a
    Slack URL is itself a credential and any URL may carry a token in its path or query."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "?", parts.port
    except ValueError:
        return "?"
    return f"{host}:{port}" if port else host
