"""The issue's end-to-end case: the seeds' rule "p95 latency > 2000 ms over 5 minutes for
apex-legal" with a Slack-compatible webhook and an SMTP contact point, on a real server
whose evaluator runs as in ``tenantscope serve``. Traffic in breach gives one
notification at each receiver within one evaluation interval; a restart sends nothing
twice; recovered traffic gives one resolve notification at each."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tenantscope.server.services import Services
from tenantscope.testing.server import free_port
from tests.alerts.receivers import Receiver, Reply, serve_http
from tests.conftest import RunningServer, make_settings, serve_app

INTERVAL_S = 2
_ids = itertools.count(1)


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope.original_content or b"")
        return "250 OK"


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Mailbox, int]]:
    slack = serve_http([Reply()])
    box = Mailbox()
    port = free_port()
    smtp = Controller(box, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        yield slack, box, port
    finally:
        smtp.stop()
        slack.server.shutdown()
        slack.server.server_close()


def _open(data_dir: Path) -> Services:
    return Services.open(
        make_settings(data_dir, port=free_port(), duckdb_threads=2, ingest_workers=0)
    )


def _send(srv: RunningServer, tenant: str, durations_ms: list[float]) -> None:
    now = datetime.now(timezone.utc)
    events = [
        {
            "event_id": f"e2e-{next(_ids)}",
            "tenant_id": tenant,
            "model": "gpt-4o",
            "input_tokens": 200,
            "output_tokens": 20,
            "timestamp": (now - timedelta(milliseconds=d + 50)).isoformat(),
            "duration_ms": d,
        }
        for d in durations_ms
    ]
    resp = srv.client.post("/v1/events", json=events)
    assert resp.status_code == 200, resp.text


def _wait(what: str, done: Callable[[], bool], seconds: float) -> float:
    began = time.monotonic()
    while not done():
        if time.monotonic() - began > seconds:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.1)
    return time.monotonic() - began


def _slack_texts(slack: Receiver) -> list[str]:
    return [json.loads(s.body)["text"] for s in slack.seen]


def _subjects(box: Mailbox) -> list[str]:
    return [str(message_from_bytes(m, policy=default_policy)["subject"]) for m in box.messages]


def test_seed_rule_fires_once_survives_a_restart_and_resolves(
    tmp_path: Path, receivers: tuple[Receiver, Mailbox, int]
) -> None:
    slack, box, smtp_port = receivers
    data_dir = tmp_path / "data"
    svc = _open(data_dir)
    try:
        with serve_app(svc) as srv:
            c = srv.client
            hook = c.post(
                "/api/alerts/contacts",
                json={
                    "name": "#alerts",
                    "kind": "slack",
                    "settings": {"url": slack.url + "/services/T/B/x"},
                },
            )
            mail = c.post(
                "/api/alerts/contacts",
                json={
                    "name": "on-call email",
                    "kind": "email",
                    "settings": {
                        "to": ["oncall@example.com"],
                        "from_addr": "alerts@example.com",
                        "host": "127.0.0.1",
                        "port": smtp_port,
                        "security": "none",
                    },
                },
            )
            assert hook.status_code == mail.status_code == 201, (hook.text, mail.text)
            rule = c.post(
                "/api/alerts/rules",
                json={
                    "name": "Enterprise Latency SLA Breach",
                    "scope": "trace",
                    "metric": "latency_p95",
                    "comparator": ">",
                    "threshold": 2000,
                    "window": "5m",
                    "interval": f"{INTERVAL_S}s",
                    "tenant_ids": ["apex-legal"],
                    "contact_ids": [hook.json()["id"], mail.json()["id"]],
                },
            )
            assert rule.status_code == 201, rule.text
            rule_id = rule.json()["id"]
            # healthy traffic first: nothing is sent
            _send(srv, "apex-legal", [400.0] * 30)
            _send(srv, "techstart-inc", [9000.0] * 5)  # another tenant's slowness: not this rule's
            _wait(
                "the rule evaluated",
                lambda: c.get(f"/api/alerts/rules/{rule_id}").json()["instances"] != [],
                10,
            )
            assert slack.hits == 0 and box.messages == []
            # into breach: more than 5% of the window's requests take 3 s
            _send(srv, "apex-legal", [3000.0] * 10)
            # one evaluation interval, plus the tick and the delivery thread's own tick
            _wait("slack got the alert", lambda: slack.hits >= 1, INTERVAL_S + 3)
            _wait("the email arrived", lambda: len(box.messages) >= 1, INTERVAL_S + 3)
            state = c.get(f"/api/alerts/rules/{rule_id}").json()["instances"]
            assert [(i["state"], i["tenant_id"]) for i in state] == [("firing", None)]
            assert "FIRING" in _slack_texts(slack)[0] and "apex-legal" in _slack_texts(slack)[0]
            blocks = json.dumps(json.loads(slack.seen[0].body)["blocks"])
            assert "/traces?tenant_id=apex-legal" in blocks  # the link to the window's traces
            assert "FIRING" in _subjects(box)[0]
    finally:
        svc.close()

    # a restart while firing: the new server's evaluator sends nothing again
    svc = _open(data_dir)
    try:
        with serve_app(svc) as srv:
            c = srv.client
            evaluated = c.get(f"/api/alerts/rules/{rule_id}").json()["instances"][0]["evaluated_at"]
            _wait(
                "the restarted evaluator ran",
                lambda: (
                    c.get(f"/api/alerts/rules/{rule_id}").json()["instances"][0]["evaluated_at"]
                    != evaluated
                ),
                INTERVAL_S + 5,
            )
            time.sleep(INTERVAL_S + 1)  # another round or two
            assert slack.hits == 1 and len(box.messages) == 1
            # recovery: fast calls until the slow ones are under 5% of the window
            _send(srv, "apex-legal", [300.0] * 250)
            _wait("slack got the resolve", lambda: slack.hits >= 2, INTERVAL_S + 3)
            _wait("the resolve email arrived", lambda: len(box.messages) >= 2, INTERVAL_S + 3)
            assert "RESOLVED" in _slack_texts(slack)[1]
            assert "RESOLVED" in _subjects(box)[1]
            history = c.get("/api/alerts/history", params={"rule_id": rule_id}).json()
            assert [(h["from_state"], h["to_state"]) for h in history][:2] == [
                ("firing", "ok"),
                ("ok", "firing"),
            ]
            time.sleep(INTERVAL_S + 1)
            assert slack.hits == 2 and len(box.messages) == 2  # and nothing more
    finally:
        svc.close()
