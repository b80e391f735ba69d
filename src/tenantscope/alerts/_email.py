"""The email notifier: one multipart/alternative message (plain text + HTML) sent over
SMTP with the stdlib, STARTTLS or implicit TLS or (when the user says so) plain."""

from __future__ import annotations

import html
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from tenantscope.alerts._common import (
    AttemptFailed,
    event_label,
    one_line,
    safe_link,
    tenant_label,
    value_label,
    window_range,
)
from tenantscope.alerts.notifications import Notification

_SUBJECT_MAX = 200


def _facts(n: Notification) -> list[tuple[str, str]]:
    return [
        ("Tenant", tenant_label(n)),
        ("Metric", n.metric_label or n.metric),
        ("Value", value_label(n)),
        ("Threshold", n.threshold),
        ("Window", f"{n.window}, {window_range(n)}"),
        ("Severity", n.severity),
        ("Rule", f"{n.rule_name} (#{n.rule_id})"),
    ]


def subject(n: Notification) -> str:
    text = f"[{event_label(n.event)[1]}] {one_line(n.rule_name)} — {tenant_label(n)}"
    return text if len(text) <= _SUBJECT_MAX else text[: _SUBJECT_MAX - 1] + "…"


def plain_text(n: Notification) -> str:
    label = event_label(n.event)[1]
    lines = [f"{label}: {one_line(n.rule_name)} — {tenant_label(n)}", ""]
    if n.summary:
        lines += [one_line(n.summary), ""]
    lines += [f"{name + ':':<11}{one_line(value)}" for name, value in _facts(n)]
    link = safe_link(n.link)
    if link:
        lines += ["", f"View traces: {link}"]
    lines += ["", "-- ", f"Sent by tenantscope. Delivery id: {one_line(n.id)}"]
    return "\n".join(lines) + "\n"


def html_text(n: Notification) -> str:
    # every value a user or an app supplied goes through escape(): a tenant id is any
    # string an app sends, so it may well be markup
    def esc(text: str) -> str:
        return html.escape(one_line(text), quote=True)

    emoji, label = event_label(n.event)
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{esc(name)}</th>'
        f"<td>{esc(value)}</td></tr>"
        for name, value in _facts(n)
    )
    parts = [
        '<!doctype html><html><body style="font-family:sans-serif;font-size:14px">',
        f"<h2>{emoji} {esc(label)}: {esc(n.rule_name)} — {esc(tenant_label(n))}</h2>",
    ]
    if n.summary:
        parts.append(f"<p>{esc(n.summary)}</p>")
    parts.append(f'<table style="border-collapse:collapse">{rows}</table>')
    link = safe_link(n.link)
    if link:
        parts.append(f'<p><a href="{html.escape(link, quote=True)}">View traces</a></p>')
    parts.append(
        f'<p style="color:#888;font-size:12px">Sent by tenantscope · delivery {esc(n.id)}</p>'
        "</body></html>"
    )
    return "\n".join(parts) + "\n"


def build_message(settings: dict[str, Any], n: Notification) -> EmailMessage:
    to = settings["to"]
    recipients = [t.strip() for t in to.split(",")] if isinstance(to, str) else list(to)
    sender = str(settings["from_addr"])
    msg = EmailMessage()
    msg["Subject"] = subject(n)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(usegmt=True)
    # an explicit domain: make_msgid() would otherwise look up this host's FQDN
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "tenantscope")
    msg["X-Tenantscope-Delivery"] = one_line(n.id)
    msg.set_content(plain_text(n))
    msg.add_alternative(html_text(n), subtype="html")
    return msg


def _reply(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error
    text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
    text = one_line(text).strip()
    return f"{exc.smtp_code} {text[:120]}".strip()


def send_email(
    settings: dict[str, Any], n: Notification, *, timeout: float, ssl_context: ssl.SSLContext
) -> None:
    """One attempt; ``AttemptFailed`` saying what went wrong."""
    host = str(settings["host"])
    security = settings.get("security", "starttls")
    port = int(settings.get("port") or (465 if security == "tls" else 587))
    username, password = settings.get("username"), settings.get("password")
    where = f"{host}:{port}"
    if security not in ("starttls", "tls", "none"):
        # never read an unknown word as "plain text"
        raise AttemptFailed(f"unknown SMTP security {security!r}", transient=False)
    msg = build_message(settings, n)
    smtp: smtplib.SMTP | None = None
    try:
        if security == "tls":
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl_context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        if security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                # never carry on in plain text: the password and the mail would be readable
                raise AttemptFailed(
                    f"{where} does not offer STARTTLS; nothing sent (set security to"
                    " tls for an implicit-TLS port, or none to send unencrypted)",
                    transient=False,
                )
            smtp.starttls(context=ssl_context)
            smtp.ehlo()
        if username and password:
            smtp.login(str(username), str(password))
        refused = smtp.send_message(msg)
    except AttemptFailed:
        _close(smtp)
        raise
    except Exception as exc:
        _close(smtp)
        raise _failure(exc, where, timeout) from None
    try:
        smtp.quit()  # the message is accepted: a failing goodbye changes nothing
    except (smtplib.SMTPException, OSError):
        _close(smtp)
    if refused:
        some = ", ".join(f"{addr} ({code})" for addr, (code, _) in sorted(refused.items())[:3])
        raise AttemptFailed(
            f"{where} refused {len(refused)} recipient(s): {some}; the others got the message",
            transient=False,
        )


def _close(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        smtp.close()


def _failure(exc: Exception, where: str, timeout: float) -> AttemptFailed:
    """What ``exc`` means for the user, and whether another attempt may help (a 4xx
    reply or a network failure may; a refused login or an untrusted certificate won't)."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return AttemptFailed(
            f"SMTP auth refused by {where} ({_reply(exc)})", transient=exc.smtp_code < 500
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        listed = ", ".join(f"{a} ({c})" for a, (c, _) in sorted(exc.recipients.items())[:3])
        return AttemptFailed(
            f"{where} refused every recipient: {listed}",
            transient=all(400 <= code < 500 for code in codes),
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return AttemptFailed(
            f"SMTP {_reply(exc)} from {where}", transient=400 <= exc.smtp_code < 500
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return AttemptFailed(f"{where}: {one_line(str(exc))[:200]}", transient=False)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return AttemptFailed(f"connection closed by {where}", transient=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or "verification failed"
        return AttemptFailed(f"TLS certificate of {where} not trusted ({reason})", transient=False)
    if isinstance(exc, ssl.SSLError):
        return AttemptFailed(
            f"TLS handshake with {where} failed ({exc.reason or exc}); is security right for"
            " this port? (587: starttls, 465: tls)",
            transient=False,
        )
    if isinstance(exc, TimeoutError):  # socket.timeout too
        return AttemptFailed(f"timed out after {timeout:g} s talking to {where}", transient=True)
    if isinstance(exc, ConnectionRefusedError):
        return AttemptFailed(f"connection refused to {where}", transient=True)
    if isinstance(exc, socket.gaierror):
        return AttemptFailed(f"host not found: {where.rpartition(':')[0]}", transient=True)
    if isinstance(exc, UnicodeEncodeError):
        # smtplib sends the login in ASCII; the error itself holds the text, so say no more
        return AttemptFailed("SMTP username and password must be ASCII", transient=False)
    if isinstance(exc, OSError):
        return AttemptFailed(
            f"could not talk to {where}: {exc.strerror or type(exc).__name__}", transient=True
        )
    raise exc
