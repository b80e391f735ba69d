"""Contact points: where notifications go (a Slack incoming webhook, a signed generic
webhook, email over SMTP), and the one check of their settings.

A contact point's settings hold its secrets too (the Slack URL is itself a credential, the
webhook's signing secret, the SMTP password): the ConfigStore keeps them, the API and the
dashboard never return them (``public_settings``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from tenantscope.errors import InvalidFields

ContactKind = Literal["slack", "webhook", "email"]
CONTACT_KINDS: tuple[str, ...] = get_args(ContactKind)
ContactStatus = Literal["untested", "ok", "failing"]

MAX_NAME = 200
MAX_URL = 2000
MAX_RECIPIENTS = 50
SMTP_SECURITY = ("starttls", "tls", "none")
# what each kind accepts: field -> required
FIELDS: dict[str, dict[str, bool]] = {
    "slack": {"url": True},
    "webhook": {"url": True, "secret": False},
    "email": {
        "to": True,
        "from_addr": True,
        "host": True,
        "port": False,
        "security": False,
        "username": False,
        "password": False,
    },
}
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "slack": ("url",),
    "webhook": ("secret",),
    "email": ("password",),
}
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+$")


@dataclass(slots=True)
class ContactPoint:
    name: str
    kind: str
    settings: dict[str, Any]
    id: int | None = None
    # what the last delivery (or "send test") found: untested, ok or failing
    status: str = "untested"
    last_error: str = ""
    last_attempt_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def public_settings(contact: ContactPoint) -> dict[str, Any]:
    """The settings as the API shows them: secrets replaced by whether they are set (a
    Slack URL keeps only its host, so a user can tell two apart without reading it)."""
    out: dict[str, Any] = {}
    secret = SECRET_FIELDS.get(contact.kind, ())
    for key, value in contact.settings.items():
        if key not in secret:
            out[key] = value
        elif key == "url" and value:
            out[key] = f"https://{urlsplit(str(value)).hostname}/…"
        else:
            out[key] = "(set)" if value else ""
    return out


def _url(value: Any) -> str | None:
    """The problem with ``value`` as a webhook URL, or None."""
    if not isinstance(value, str) or not value:
        return "required: an http(s) URL"
    if len(value) > MAX_URL:
        return f"at most {MAX_URL} characters"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    return None


def check_contact(
    name: Any, kind: Any, settings: Any, *, keep: ContactPoint | None = None
) -> ContactPoint:
    """The contact point as it is stored, or ``InvalidFields`` naming every wrong field
    (``settings.<field>`` for a setting). ``keep``: the stored contact point being
    edited; a secret left empty keeps its stored value (forms never show secrets)."""
    problems: dict[str, str] = {}
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        problems["name"] = f"required, at most {MAX_NAME} characters"
    if kind not in CONTACT_KINDS:
        problems["kind"] = f"must be one of {', '.join(CONTACT_KINDS)}"
        raise InvalidFields(problems)
    if not isinstance(settings, dict):
        problems["settings"] = "must be an object of the kind's fields"
        raise InvalidFields(problems)
    allowed = FIELDS[kind]
    values = {k: v for k, v in settings.items() if v not in (None, "")}
    for unknown in sorted(set(values) - set(allowed)):
        problems[f"settings.{unknown}"] = (
            f"not a field of a {kind} contact point (fields: {', '.join(allowed)})"
        )
    if keep is not None and keep.kind == kind:
        for secret in SECRET_FIELDS[kind]:
            if secret not in values and keep.settings.get(secret):
                values[secret] = keep.settings[secret]
    for name_, required in allowed.items():
        if required and name_ not in values:
            problems[f"settings.{name_}"] = "required"
    out: dict[str, Any] = {}
    if kind in ("slack", "webhook") and "url" in values:
        problem = _url(values["url"])
        if problem:
            problems["settings.url"] = problem
        out["url"] = values["url"]
    if kind == "webhook" and "secret" in values:
        if not isinstance(values["secret"], str) or not 16 <= len(values["secret"]) <= 512:
            problems["settings.secret"] = "a string of 16 to 512 characters"
        out["secret"] = values["secret"]
    if kind == "email":
        _check_email(values, problems, out)
    if problems:
        raise InvalidFields(problems)
    return ContactPoint(name=str(name).strip(), kind=kind, settings=out)


def _check_email(values: dict[str, Any], problems: dict[str, str], out: dict[str, Any]) -> None:
    to = values.get("to")
    if isinstance(to, str):
        to = [t.strip() for t in to.split(",") if t.strip()]
    if "to" in values:
        if (
            not isinstance(to, list)
            or not 1 <= len(to) <= MAX_RECIPIENTS
            or not all(isinstance(t, str) and _EMAIL.match(t) for t in to)
        ):
            problems["settings.to"] = (
                f"1 to {MAX_RECIPIENTS} email addresses (a list, or comma-separated)"
            )
        out["to"] = to
    if "from_addr" in values:
        if not isinstance(values["from_addr"], str) or not _EMAIL.match(values["from_addr"]):
            problems["settings.from_addr"] = "an email address"
        out["from_addr"] = values["from_addr"]
    if "host" in values:
        host = values["host"]
        if not isinstance(host, str) or not 1 <= len(host) <= 255 or any(c in host for c in "/ "):
            problems["settings.host"] = "a host name or address"
        out["host"] = host
    security = values.get("security", "starttls")
    if security not in SMTP_SECURITY:
        problems["settings.security"] = f"one of {', '.join(SMTP_SECURITY)}"
    out["security"] = security
    port = values.get("port", 465 if security == "tls" else 587)
    try:
        port = int(port)
        if not 1 <= port <= 65535:
            raise ValueError
    except (TypeError, ValueError):
        problems["settings.port"] = "a port number from 1 to 65535"
    out["port"] = port
    for key in ("username", "password"):
        if key in values:
            if not isinstance(values[key], str) or len(values[key]) > 512:
                problems[f"settings.{key}"] = "a string of at most 512 characters"
            out[key] = values[key]
    if ("username" in out) != ("password" in out):
        problems["settings.password" if "username" in out else "settings.username"] = (
            "username and password go together (or leave both out)"
        )
