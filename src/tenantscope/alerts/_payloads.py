"""The bodies the HTTP notifiers send: a Slack Block Kit message, and the generic
webhook's JSON document (its schema is documented in ``notifiers``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tenantscope.alerts._common import (
    event_label,
    one_line,
    rfc3339,
    safe_link,
    tenant_label,
    value_label,
    window_range,
)
from tenantscope.alerts.notifications import Notification

# Block Kit limits (characters): a longer text makes Slack refuse the whole message
_HEADER_MAX = 150
_FIELD_MAX = 2000
_SECTION_MAX = 3000
_URL_MAX = 3000
_SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def slack_escape(text: str, limit: int = 40_000) -> str:
    """``text`` with Slack's control characters escaped, so user-supplied text never turns
    into a link or a mention (``<https://evil|click>``, ``<!channel>``); cut to ``limit``
    characters after escaping, never inside an entity."""
    out: list[str] = []
    size = 0
    for char in text:
        piece = _SLACK_ESCAPES.get(char, char)
        if size + len(piece) > limit - 1:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: a tenant id that looks like a URL or #channel stays plain text
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def slack_payload(n: Notification) -> dict[str, Any]:
    emoji, label = event_label(n.event)
    rule = one_line(n.rule_name)
    tenant = tenant_label(n)
    facts = [
        ("Tenant", tenant),
        ("Metric", n.metric_label or n.metric),
        ("Value", f"{value_label(n)} (threshold {n.threshold})"),
        ("Window", f"{n.window}, {window_range(n)}"),
        ("Severity", n.severity),
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": slack_escape(f"{emoji} {label}: {rule}", _HEADER_MAX),
                "emoji": True,
            },
        }
    ]
    if n.summary:
        blocks.append(
            {"type": "section", "text": _mrkdwn(slack_escape(one_line(n.summary), _SECTION_MAX))}
        )
    blocks.append(
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*{name}*\n" + slack_escape(one_line(value), _FIELD_MAX - 20))
                for name, value in facts
            ],
        }
    )
    link = safe_link(n.link)
    if link and len(link) <= _URL_MAX:
        button = {"type": "button", "text": {"type": "plain_text", "text": "View traces"}}
        blocks.append({"type": "actions", "elements": [{**button, "url": link}]})
    blocks.append(
        {
            "type": "context",
            "elements": [_mrkdwn(f"tenantscope · rule #{n.rule_id} · {slack_escape(n.id, 200)}")],
        }
    )
    # the text is what notifications and screen readers show instead of the blocks
    text = f"{emoji} {label}: {rule} — {tenant}"
    if n.summary:
        text += f": {one_line(n.summary)}"
    return {
        "text": slack_escape(text, 3000),
        "blocks": blocks,
        # no previews of whatever URL a hostile name might carry
        "unfurl_links": False,
        "unfurl_media": False,
    }


def webhook_document(n: Notification, sent_at: datetime) -> dict[str, Any]:
    return {
        "id": n.id,
        "event": n.event,
        "rule": {"id": n.rule_id, "name": n.rule_name, "severity": n.severity},
        "tenant_id": n.tenant_id,
        "metric": {"name": n.metric, "label": n.metric_label},
        "value": n.value,
        "threshold": n.threshold,
        "window": {
            "label": n.window,
            "start": rfc3339(n.window_start),
            "end": rfc3339(n.window_end),
        },
        "link": n.link,
        "summary": n.summary,
        "sent_at": rfc3339(sent_at),
    }


def json_bytes(document: dict[str, Any]) -> bytes:
    # compact UTF-8: the exact bytes sent are the bytes signed
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
