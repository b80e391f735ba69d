"""Delivering a notification to a contact point: Slack, a signed generic webhook, email.

``deliver`` is synchronous and meant for a background delivery thread: it retries what may
pass (network errors, timeouts, HTTP 408/429/5xx, SMTP 4xx) with exponential backoff and
raises ``DeliveryFailed`` with a short message a user can act on. No message or log line
carries a secret: a Slack URL is a credential, so only its host is ever named.

Generic webhook
---------------
``POST`` of one JSON object (UTF-8), times RFC 3339 UTC with ``Z``::

    {"id": "12:acme:3",              # the delivery id: the same on every retry
     "event": "firing",              # firing | warning | resolved | no_data | test
     "rule": {"id": 12, "name": "High latency", "severity": "critical"},
     "tenant_id": "acme",            # null: the rule's figure over all its tenants
     "metric": {"name": "latency_p95", "label": "p95 latency (LLM calls)"},
     "value": "2,412 ms",            # formatted with its unit; null: no data
     "threshold": "> 2,000 ms",
     "window": {"label": "5m", "start": "2024-05-01T10:00:00Z", "end": "2024-05-01T10:05:00Z"},
     "link": "https://…",            # the traces on the dashboard, "" when unknown
     "summary": "p95 latency 2,412 ms > 2,000 ms for acme",
     "sent_at": "2024-05-01T10:05:07Z"}

Headers: ``Content-Type: application/json``, ``User-Agent: tenantscope/<version>``,
``X-Tenantscope-Delivery: <id>`` (drop a second copy of one id: a retry after a lost
answer; percent-encoded when the id is not printable ASCII),
``X-Tenantscope-Timestamp: <unix seconds>``, and when the contact point has a secret
``X-Tenantscope-Signature: sha256=<hex>``, the HMAC-SHA256 with the secret of
``f"{timestamp}.{body}"``. A receiver checks it with ``verify`` (or the same three lines in
its own language) and refuses old timestamps, so a captured request cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import ssl
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import httpx

from tenantscope import __version__
from tenantscope.alerts._common import AttemptFailed, where
from tenantscope.alerts._email import send_email
from tenantscope.alerts._payloads import json_bytes, slack_payload, webhook_document
from tenantscope.alerts.contacts import ContactPoint
from tenantscope.alerts.notifications import Notification

log = logging.getLogger(__name__)

RETRY_AFTER_CAP = 30.0  # seconds: a longer Retry-After is waited this long, then retried
_BODY_CAP = 1024  # bytes of an error answer read, for its first line in the message
USER_AGENT = f"tenantscope/{__version__}"


class DeliveryFailed(Exception):
    """A notification was not delivered. ``str(exc)`` says what failed, for the contact
    point's ``last_error``; ``attempts``: how many were made."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Tenantscope-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of
    ``timestamp + "." + body`` keyed with ``secret``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance_s: float = 300,
) -> bool:
    """Whether ``signature`` (the header's value) signs ``body`` at ``timestamp`` (the
    ``X-Tenantscope-Timestamp`` header) and that timestamp is within ``tolerance_s`` of
    ``now`` (default: the clock). Compared in constant time."""
    # a bounded length: int() of thousands of digits raises rather than saying no
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).encode("ascii")
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))


def deliver(
    contact: ContactPoint,
    n: Notification,
    *,
    timeout: float = 10.0,
    attempts: int = 3,
    backoff: float = 0.5,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Send ``n`` to ``contact``, trying up to ``attempts`` times (waiting ``backoff``,
    then twice that, …, or what a Retry-After asks, up to ``RETRY_AFTER_CAP``).
    ``timeout``: seconds for each network step. ``ssl_context``: the TLS trust to use
    (tests pass one trusting their CA); by default the system's (SMTP) and httpx's
    (HTTP). Raises only ``DeliveryFailed``."""
    made = 0
    try:
        send = _sender(contact, n, timeout, ssl_context)
        for attempt in range(1, max(1, attempts) + 1):
            made = attempt
            try:
                send()
                log.debug("delivered %s to contact %r (%s)", n.id, contact.name, contact.kind)
                return
            except AttemptFailed as exc:
                failure = exc
            if not failure.transient or attempt >= attempts:
                break
            delay = backoff * 2 ** (attempt - 1)
            if failure.retry_after is not None:
                delay = min(failure.retry_after, RETRY_AFTER_CAP)
            log.debug(
                "attempt %d for %s failed (%s); again in %.2f s", attempt, n.id, failure, delay
            )
            time.sleep(delay)
    except Exception as exc:  # a bug, not the receiver: still only DeliveryFailed out
        detail = _redact("".join(traceback.format_exception(exc)), contact)
        log.warning(
            "delivery of %s to contact %r failed unexpectedly:\n%s", n.id, contact.name, detail
        )
        # from None: the original could carry a secret into whoever logs this one
        raise DeliveryFailed(f"unexpected error ({type(exc).__name__})", attempts=made) from None
    message = _redact(failure.message, contact)
    if made > 1:
        message += f" (after {made} attempts)"
    log.warning(
        "delivery of %s to contact %r (%s) failed: %s", n.id, contact.name, contact.kind, message
    )
    raise DeliveryFailed(message, attempts=made)


def _sender(
    contact: ContactPoint, n: Notification, timeout: float, ssl_context: ssl.SSLContext | None
) -> Callable[[], None]:
    """One attempt at sending ``n`` to ``contact``, ready to be called again."""
    settings = contact.settings
    if contact.kind == "email":
        context = ssl_context or ssl.create_default_context()
        return lambda: send_email(settings, n, timeout=timeout, ssl_context=context)
    if contact.kind not in ("slack", "webhook"):

        def unknown() -> None:
            raise AttemptFailed(f"unknown contact point kind {contact.kind!r}", transient=False)

        return unknown
    url = str(settings.get("url") or "")
    secret = settings.get("secret") if contact.kind == "webhook" else None

    def send() -> None:
        if contact.kind == "slack":
            body = json_bytes(slack_payload(n))
            headers: dict[str, str] = {}
        else:
            now = time.time()
            stamp = str(int(now))
            body = json_bytes(webhook_document(n, datetime.fromtimestamp(now, timezone.utc)))
            headers = {
                "X-Tenantscope-Delivery": _header_value(n.id),
                "X-Tenantscope-Timestamp": stamp,
            }
            if secret:
                headers["X-Tenantscope-Signature"] = sign(str(secret), stamp, body)
        _post(url, body, headers, timeout=timeout, ssl_context=ssl_context)

    return send


def _header_value(text: str) -> str:
    # an id holds a tenant id, which is any string an app sent: a newline in a header
    # would be refused (or worse), non-ASCII cannot be sent, so those ids go percent-encoded
    if text.isascii() and text.isprintable():
        return text
    return quote(text, safe="!#$&'()*+,/:;=?@[]~")


def _post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    ssl_context: ssl.SSLContext | None,
) -> None:
    host = where(url)
    sent = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",  # an error body is read raw, a few hundred bytes
        **headers,
    }
    verify_: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, verify=verify_) as client,
            client.stream("POST", url, content=body, headers=sent) as response,
        ):
            status = response.status_code
            if 200 <= status < 300:
                return
            first_line = _first_line(response)
            retry_after = _retry_after(response.headers.get("retry-after"))
    except httpx.TimeoutException:
        raise AttemptFailed(f"timed out after {timeout:g} s ({host})", transient=True) from None
    except httpx.TransportError as exc:
        raise _transport_failure(exc, host) from None
    if 300 <= status < 400:
        raise AttemptFailed(
            f"HTTP {status} redirect from {host}; redirects are not followed, give the final URL",
            transient=False,
        )
    message = f"HTTP {status} from {host}" + (f": {first_line}" if first_line else "")
    transient = status in (408, 429) or status >= 500
    raise AttemptFailed(message, transient=transient, retry_after=retry_after)


def _first_line(response: httpx.Response) -> str:
    """The start of an error answer (Slack says why there: ``invalid_blocks``,
    ``no_service``), never more than ``_BODY_CAP`` bytes read."""
    data = b""
    try:
        for chunk in response.iter_raw():
            data += chunk
            if len(data) >= _BODY_CAP:
                break
    except httpx.HTTPError:
        pass
    text = data[:_BODY_CAP].decode("utf-8", "replace").strip()
    line = text.splitlines()[0] if text else ""
    line = "".join(c for c in line if c.isprintable())
    return line[:120] + ("…" if len(line) > 120 else "")


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)  # the standard says an integer; "1.5" is clear enough
        return seconds if 0 <= seconds < float("inf") else None
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


def _transport_failure(exc: BaseException, host: str) -> AttemptFailed:
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for err in chain:
        if isinstance(err, ssl.SSLCertVerificationError):
            reason = err.verify_message or err.reason or "verification failed"
            return AttemptFailed(
                f"TLS certificate of {host} not trusted ({reason})", transient=False
            )
        if isinstance(err, ConnectionRefusedError):
            return AttemptFailed(f"connection refused to {host}", transient=True)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return AttemptFailed(f"not an http(s) URL ({host})", transient=False)
    if isinstance(exc, httpx.LocalProtocolError):  # ours to fix: sending again won't help
        return AttemptFailed(f"request to {host} not sendable: {str(exc)[:120]}", transient=False)
    kind = "could not connect to" if isinstance(exc, httpx.ConnectError) else "connection failed to"
    # str(exc) of httpx is the OS's words ("Name or service not known"), never the URL
    detail = str(exc).strip()[:120] or type(exc).__name__
    return AttemptFailed(f"{kind} {host}: {detail}", transient=True)


def _redact(text: str, contact: ContactPoint) -> str:
    """``text`` with the contact point's secrets cut out: belt and braces over messages
    built from hosts only, for the words of a library or a receiver."""
    secrets: list[str] = []
    for key in ("url", "secret", "password"):
        value = contact.settings.get(key)
        if isinstance(value, str) and len(value) >= 4:
            secrets.append(value)
            if key == "url":
                path = value.split("://", 1)[-1].partition("/")[2]
                if len(path) >= 4:
                    secrets.append(path)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "…")
    return text
