"""The notifiers against real receivers: an HTTP server on a loopback port scripted to
answer as Slack or a webhook receiver might, and a real SMTP server (aiosmtpd) in plain
text, with STARTTLS and AUTH, and with implicit TLS, trusting a test CA (trustme)."""

from __future__ import annotations

import email
import json
import logging
import ssl
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tenantscope import __version__
from tenantscope.alerts import notifiers
from tenantscope.alerts.contacts import ContactPoint
from tenantscope.alerts.notifications import Notification
from tenantscope.alerts.notifiers import DeliveryFailed, deliver, sign, verify
from tenantscope.testing.server import free_port
from tests.alerts.receivers import Receiver, Reply, serve_http

HOSTILE_TENANT = '<https://evil.example|click> & <script>alert("x")</script>'
HOSTILE_RULE = "<!channel> latency & <b>more</b>"
SLACK_TOKEN = "T0000/B0000/XXXXsecretXXXXtoken"
SECRET = "whsec-0123456789abcdef"
PASSWORD = "s3cret-pass-word"
FAST: dict[str, Any] = {"timeout": 2.0, "backoff": 0.01}


def notification(**given: Any) -> Notification:
    values: dict[str, Any] = {
        "id": "12:acme:3",
        "event": "firing",
        "rule_id": 12,
        "rule_name": "High latency",
        "severity": "critical",
        "tenant_id": "acme",
        "metric": "latency_p95",
        "metric_label": "p95 latency (LLM calls)",
        "value": "2,412 ms",
        "threshold": "> 2,000 ms",
        "window": "5m",
        "window_start": datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc),
        "window_end": datetime(2024, 5, 1, 10, 5, tzinfo=timezone.utc),
        "link": "https://ts.example/traces?tenant=acme&from=1714557600",
        "summary": "p95 latency 2,412 ms > 2,000 ms",
    }
    values.update(given)
    return Notification(**values)


@pytest.fixture
def http() -> Iterator[Any]:
    started: list[Receiver] = []

    def start(*replies: Reply, tls: ssl.SSLContext | None = None) -> Receiver:
        receiver = serve_http(list(replies) or [Reply()], tls)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.server.shutdown()
        receiver.server.server_close()


def webhook(url: str, secret: str | None = SECRET) -> ContactPoint:
    settings: dict[str, Any] = {"url": url + "/hook?token=abcd"}
    if secret:
        settings["secret"] = secret
    return ContactPoint(name="hook", kind="webhook", settings=settings)


def slack(url: str) -> ContactPoint:
    return ContactPoint(
        name="team", kind="slack", settings={"url": f"{url}/services/{SLACK_TOKEN}"}
    )


# --- Slack --------------------------------------------------------------------------


def test_slack_message_is_readable_block_kit_with_hostile_text_escaped(http: Any) -> None:
    rx = http()
    deliver(slack(rx.url), notification(tenant_id=HOSTILE_TENANT, rule_name=HOSTILE_RULE))
    assert rx.hits == 1
    assert rx.seen[0].path == f"/services/{SLACK_TOKEN}"
    assert rx.seen[0].headers["content-type"] == "application/json"
    payload = json.loads(rx.seen[0].body)
    blocks = payload["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "actions", "context"]
    header = blocks[0]["text"]["text"]
    assert header.startswith("🔴 FIRING: &lt;!channel&gt; latency &amp; &lt;b&gt;more")
    fields = {f["text"].split("\n")[0]: f["text"].split("\n", 1)[1] for f in blocks[2]["fields"]}
    assert fields["*Tenant*"] == (
        '&lt;https://evil.example|click&gt; &amp; &lt;script&gt;alert("x")&lt;/script&gt;'
    )
    assert fields["*Value*"] == "2,412 ms (threshold &gt; 2,000 ms)"
    assert fields["*Window*"] == "5m, 2024-05-01 10:00–10:05 UTC"
    assert fields["*Severity*"] == "critical"
    assert fields["*Metric*"] == "p95 latency (LLM calls)"
    button = blocks[3]["elements"][0]
    assert button["url"] == "https://ts.example/traces?tenant=acme&from=1714557600"
    assert button["text"]["text"] == "View traces"
    assert payload["text"].startswith("🔴 FIRING: &lt;!channel&gt;")
    # nothing user-supplied can become a link or a mention anywhere in the message
    raw = rx.seen[0].body.decode()
    assert "<https://evil" not in raw and "<!channel>" not in raw and "<script>" not in raw


@pytest.mark.parametrize(
    ("event", "header"),
    [
        ("resolved", "🟢 RESOLVED"),
        ("warning", "🟠 WARNING"),
        ("no_data", "⚪ NO DATA"),
        ("test", "🧪 TEST"),
    ],
)
def test_slack_header_names_the_state(http: Any, event: str, header: str) -> None:
    rx = http()
    deliver(slack(rx.url), notification(event=event, tenant_id=None, value=None, link=""))
    payload = json.loads(rx.seen[0].body)
    assert payload["blocks"][0]["text"]["text"] == f"{header}: High latency"
    assert "actions" not in [b["type"] for b in payload["blocks"]]  # no link, no button
    assert "all tenants" in payload["text"]
    fields = [f["text"] for f in payload["blocks"][2]["fields"]]
    assert "*Value*\nno data (threshold &gt; 2,000 ms)" in fields


def test_a_link_that_is_not_http_is_never_a_button(http: Any) -> None:
    rx = http()
    deliver(slack(rx.url), notification(link="javascript:alert(1)"))
    assert "javascript" not in rx.seen[0].body.decode()


def test_slack_failure_names_only_the_host(http: Any, caplog: pytest.LogCaptureFixture) -> None:
    rx = http(Reply(404, b"no_service\n"))
    with caplog.at_level(logging.DEBUG, logger="tenantscope.alerts"):
        with pytest.raises(DeliveryFailed) as failed:
            deliver(slack(rx.url), notification(), **FAST)
    host = rx.url.removeprefix("http://")
    assert str(failed.value) == f"HTTP 404 from {host}: no_service"
    assert failed.value.attempts == 1 and rx.hits == 1  # a 404 is not retried
    assert SLACK_TOKEN not in caplog.text and "services" not in caplog.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1


# --- generic webhook ----------------------------------------------------------------


def test_webhook_body_headers_and_signature(http: Any) -> None:
    rx = http(Reply(204, b""))
    before = int(time.time())
    deliver(webhook(rx.url), notification(tenant_id=None))
    seen = rx.seen[0]
    assert seen.path == "/hook?token=abcd"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"] == f"tenantscope/{__version__}"
    assert seen.headers["x-tenantscope-delivery"] == "12:acme:3"
    stamp = seen.headers["x-tenantscope-timestamp"]
    assert before <= int(stamp) <= time.time()
    signature = seen.headers["x-tenantscope-signature"]
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify(SECRET, stamp, seen.body, signature)
    # tampered, re-timed, replayed late, or checked with another secret: refused
    assert not verify(SECRET, stamp, seen.body.replace(b"critical", b"info"), signature)
    assert not verify(SECRET, str(int(stamp) + 1), seen.body, signature)
    assert not verify(SECRET, stamp, seen.body, signature, now=int(stamp) + 301)
    assert verify(SECRET, stamp, seen.body, signature, now=int(stamp) + 299)
    assert not verify("another-secret-of-16", stamp, seen.body, signature)
    assert not verify(SECRET, "not-a-time", seen.body, signature)
    assert not verify(SECRET, "9" * 5000, seen.body, signature)
    doc = json.loads(seen.body)
    assert doc == {
        "id": "12:acme:3",
        "event": "firing",
        "rule": {"id": 12, "name": "High latency", "severity": "critical"},
        "tenant_id": None,
        "metric": {"name": "latency_p95", "label": "p95 latency (LLM calls)"},
        "value": "2,412 ms",
        "threshold": "> 2,000 ms",
        "window": {"label": "5m", "start": "2024-05-01T10:00:00Z", "end": "2024-05-01T10:05:00Z"},
        "link": "https://ts.example/traces?tenant=acme&from=1714557600",
        "summary": "p95 latency 2,412 ms > 2,000 ms",
        "sent_at": doc["sent_at"],
    }
    assert doc["sent_at"].endswith("Z")


def test_sign_is_hmac_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k" * 16, b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign("k" * 16, "1700000000", b"{}") == f"sha256={expected}"
    assert verify("k" * 16, "1700000000", b"{}", f"sha256={expected}", now=1700000000)


def test_webhook_without_secret_is_not_signed(http: Any) -> None:
    rx = http()
    deliver(webhook(rx.url, secret=None), notification())
    assert "x-tenantscope-signature" not in rx.seen[0].headers
    assert rx.seen[0].headers["x-tenantscope-delivery"] == "12:acme:3"


def test_a_hostile_delivery_id_cannot_forge_headers(http: Any) -> None:
    rx = http()
    deliver(webhook(rx.url), notification(id="12:é\r\nX-Evil: 1:3"))
    assert "x-evil" not in rx.seen[0].headers
    assert rx.seen[0].headers["x-tenantscope-delivery"] == "12:%C3%A9%0D%0AX-Evil:%201:3"
    assert json.loads(rx.seen[0].body)["id"] == "12:é\r\nX-Evil: 1:3"


# --- retries ------------------------------------------------------------------------


def test_a_500_is_retried_with_the_same_delivery_id(http: Any) -> None:
    rx = http(Reply(500, b"oops"), Reply(200))
    deliver(webhook(rx.url), notification(), **FAST)
    assert rx.hits == 2
    ids = {s.headers["x-tenantscope-delivery"] for s in rx.seen}
    assert ids == {"12:acme:3"}
    for seen in rx.seen:  # each attempt is signed for its own time
        stamp = seen.headers["x-tenantscope-timestamp"]
        assert verify(SECRET, stamp, seen.body, seen.headers["x-tenantscope-signature"])


def test_a_lasting_503_fails_after_every_attempt(http: Any) -> None:
    rx = http(Reply(503, b"Service Unavailable\nmore"))
    with pytest.raises(DeliveryFailed) as failed:
        deliver(webhook(rx.url), notification(), attempts=3, **FAST)
    assert rx.hits == 3 and failed.value.attempts == 3
    host = rx.url.removeprefix("http://")
    assert str(failed.value) == f"HTTP 503 from {host}: Service Unavailable (after 3 attempts)"


def test_a_400_is_not_retried(http: Any) -> None:
    rx = http(Reply(400, b"invalid_payload"), Reply(200))
    with pytest.raises(DeliveryFailed, match="HTTP 400 from .*: invalid_payload$"):
        deliver(webhook(rx.url), notification(), **FAST)
    assert rx.hits == 1


def test_429_waits_what_retry_after_asks(http: Any) -> None:
    rx = http(Reply(429, b"slow down", {"Retry-After": "1"}), Reply(200))
    started = time.monotonic()
    deliver(webhook(rx.url), notification(), **FAST)
    assert rx.hits == 2
    assert time.monotonic() - started >= 0.9  # not the 0.01 s backoff


def test_retry_after_is_capped(http: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notifiers, "RETRY_AFTER_CAP", 0.05)
    rx = http(Reply(503, b"", {"Retry-After": "3600"}), Reply(408, b""), Reply(200))
    deliver(webhook(rx.url), notification(), **FAST)
    assert rx.hits == 3


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("1.5", 1.5), ("-1", None), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_values(header: str | None, seconds: float | None) -> None:
    assert notifiers._retry_after(header) == seconds


def test_retry_after_as_a_date() -> None:
    from email.utils import format_datetime

    later = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=20)
    waited = notifiers._retry_after(format_datetime(later, usegmt=True))
    assert waited is not None and 15 < waited <= 20
    assert notifiers._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_a_slow_receiver_times_out(http: Any) -> None:
    rx = http(Reply(200, delay=1.5))
    with pytest.raises(DeliveryFailed, match=r"^timed out after 0.3 s .*\(after 2 attempts\)$"):
        deliver(webhook(rx.url), notification(), timeout=0.3, attempts=2, backoff=0.01)
    assert rx.hits == 2


def test_a_redirect_is_not_followed(http: Any) -> None:
    target = http()
    rx = http(Reply(302, b"", {"Location": target.url + "/elsewhere"}))
    with pytest.raises(DeliveryFailed, match="HTTP 302 redirect from .*not followed"):
        deliver(webhook(rx.url), notification(), **FAST)
    assert rx.hits == 1 and target.hits == 0


def test_connection_refused_is_retried_then_fails() -> None:
    port = free_port()
    with pytest.raises(DeliveryFailed) as failed:
        deliver(webhook(f"http://127.0.0.1:{port}"), notification(), attempts=3, **FAST)
    assert failed.value.attempts == 3
    assert str(failed.value) == f"connection refused to 127.0.0.1:{port} (after 3 attempts)"


# --- TLS ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_https_receiver_trusted_only_through_the_given_context(
    http: Any, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    rx = http(tls=server_tls)
    deliver(webhook(rx.url), notification(), ssl_context=client_tls)
    assert rx.hits == 1
    with pytest.raises(DeliveryFailed, match="TLS certificate of 127.0.0.1:.* not trusted") as e:
        deliver(webhook(rx.url), notification(), **FAST)
    assert e.value.attempts == 1  # an untrusted certificate does not get better by waiting


# --- email --------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.logins: list[tuple[str, str, str]] = []  # (mechanism, login, password)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((mechanism, login, password))
        # handled=False: aiosmtpd answers 535 itself (True would leave the client waiting)
        ok = (login, password) == ("alerts", PASSWORD)
        return AuthResult(success=ok, handled=False, auth_data=data)

    def message(self, index: int = 0) -> EmailMessage:
        content = self.envelopes[index].original_content or b""
        parsed = email.message_from_bytes(content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    started: list[Controller] = []

    def start(**params: Any) -> tuple[Mailbox, int]:
        box = Mailbox()
        if params.pop("auth", False):
            params["authenticator"] = box.authenticate
        port = free_port()
        controller = Controller(box, hostname="127.0.0.1", port=port, **params)
        controller.start()
        started.append(controller)
        return box, port

    yield start
    for controller in started:
        controller.stop()


def mail_contact(port: int, security: str, **more: Any) -> ContactPoint:
    settings = {
        "to": ["ops@example.com", "oncall@example.com"],
        "from_addr": "alerts@tenantscope.example",
        "host": "127.0.0.1",
        "port": port,
        "security": security,
        **more,
    }
    return ContactPoint(name="ops mail", kind="email", settings=settings)


def test_email_plain_text_and_escaped_html(smtp_server: Any) -> None:
    box, port = smtp_server()
    deliver(mail_contact(port, "none"), notification(tenant_id=HOSTILE_TENANT))
    envelope = box.envelopes[0]
    assert envelope.mail_from == "alerts@tenantscope.example"
    assert envelope.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    msg = box.message()
    assert msg["Subject"] == f"[FIRING] High latency — {HOSTILE_TENANT}"
    assert msg["X-Tenantscope-Delivery"] == "12:acme:3"
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    text, markup = plain.get_content(), html.get_content()
    assert HOSTILE_TENANT in text and "2,412 ms" in text and "> 2,000 ms" in text
    assert "View traces: https://ts.example/traces?tenant=acme&from=1714557600" in text
    assert "<script>" not in markup and "<https://evil" not in markup
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in markup
    assert '<a href="https://ts.example/traces?tenant=acme&amp;from=1714557600">' in markup
    assert box.logins == []


def test_email_starttls_with_auth(
    smtp_server: Any, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    box, port = smtp_server(
        tls_context=server_tls, require_starttls=True, auth=True, auth_require_tls=True
    )
    contact = mail_contact(port, "starttls", username="alerts", password=PASSWORD)
    deliver(contact, notification(event="resolved"), ssl_context=client_tls)
    assert len(box.envelopes) == 1
    assert box.message()["Subject"] == "[RESOLVED] High latency — acme"
    assert [login[1:] for login in box.logins] == [("alerts", PASSWORD)]
    assert box.logins[0][0] in ("PLAIN", "LOGIN")


def test_email_starttls_refuses_an_untrusted_certificate(
    smtp_server: Any, server_tls: ssl.SSLContext
) -> None:
    box, port = smtp_server(tls_context=server_tls, require_starttls=True, auth=True)
    contact = mail_contact(port, "starttls", username="alerts", password=PASSWORD)
    with pytest.raises(DeliveryFailed, match="TLS certificate of 127.0.0.1:.* not trusted"):
        deliver(contact, notification(), **FAST)  # the system's CAs do not know the test CA
    assert box.envelopes == [] and box.logins == []


def test_email_implicit_tls(smtp_server: Any, server_tls: ssl.SSLContext, client_tls: Any) -> None:
    # aiosmtpd offers AUTH over implicit TLS only when told TLS is not required (it
    # counts STARTTLS alone as TLS); the channel is TLS all the same
    box, port = smtp_server(ssl_context=server_tls, auth=True, auth_require_tls=False)
    contact = mail_contact(port, "tls", username="alerts", password=PASSWORD)
    deliver(contact, notification(), ssl_context=client_tls)
    assert len(box.envelopes) == 1 and len(box.logins) == 1


def test_email_wrong_password(
    smtp_server: Any, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    box, port = smtp_server(tls_context=server_tls, require_starttls=True, auth=True)
    contact = mail_contact(port, "starttls", username="alerts", password="wrong-password")
    with pytest.raises(DeliveryFailed) as failed:
        deliver(contact, notification(), ssl_context=client_tls, **FAST)
    assert str(failed.value).startswith(f"SMTP auth refused by 127.0.0.1:{port} (535")
    assert "wrong-password" not in str(failed.value)
    assert failed.value.attempts == 1
    assert box.envelopes == []


def test_email_starttls_missing_sends_nothing(smtp_server: Any) -> None:
    # the server would take AUTH in plain text: the client must not offer it
    box, port = smtp_server(auth=True, auth_require_tls=False)
    contact = mail_contact(port, "starttls", username="alerts", password=PASSWORD)
    with pytest.raises(DeliveryFailed, match="does not offer STARTTLS; nothing sent"):
        deliver(contact, notification(), **FAST)
    assert box.logins == [] and box.envelopes == []


def test_email_security_none_logs_in_when_configured(smtp_server: Any) -> None:
    box, port = smtp_server(auth=True, auth_require_tls=False)
    deliver(mail_contact(port, "none", username="alerts", password=PASSWORD), notification())
    assert len(box.envelopes) == 1 and len(box.logins) == 1


def test_email_connection_refused(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    contact = mail_contact(port, "starttls", username="alerts", password=PASSWORD)
    with pytest.raises(DeliveryFailed) as failed:
        deliver(contact, notification(), attempts=2, **FAST)
    assert str(failed.value) == f"connection refused to 127.0.0.1:{port} (after 2 attempts)"
    assert failed.value.attempts == 2
    assert PASSWORD not in caplog.text


def test_only_delivery_failed_leaves_deliver() -> None:
    broken = ContactPoint(name="broken", kind="email", settings={"to": ["a@b.example"]})
    with pytest.raises(DeliveryFailed, match=r"unexpected error \(KeyError\)") as failed:
        deliver(broken, notification())
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    with pytest.raises(DeliveryFailed, match="unknown contact point kind 'pager'"):
        deliver(ContactPoint(name="x", kind="pager", settings={}), notification())
