"""The dashboard's alert pages against a real server (real SQLite and DuckDB files): what
/alerts and a rule's page show of rules evaluated on real records, the admin forms (what
they store and audit, what they refuse: 422 with every wrong field named and nothing
stored, 409 for a contact point still in use), silences, the banners of the overview and
the tenant page, who may see what, and hostile names and tenant ids shown as text."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from html import unescape
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tenantscope.alerts.contacts import check_contact
from tenantscope.alerts.evaluator import Evaluator
from tenantscope.alerts.rules import check_rule
from tenantscope.dashboard.alert_views import FOREVER
from tenantscope.records import UsageRecord
from tenantscope.server.services import Services
from tenantscope.testing.server import free_port
from tests.alerts.receivers import Reply, serve_http
from tests.conftest import RunningServer, make_settings, serve_app

CSRF = "alerts-pages-csrf-token-0123456789"
HOSTILE_TENANT = 'evil"<img src=x onerror=alert(1)>'
HOSTILE_NAME = "<script>alert('rule')</script> p95"
_ids = itertools.count(1)


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    """Stores without the server's own evaluator: each test evaluates when it chooses."""
    s = Services.open(
        make_settings(
            tmp_path / "data", port=free_port(), duckdb_threads=2, ingest_workers=0, alerts=False
        )
    )
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def srv(svc: Services) -> Iterator[RunningServer]:
    with serve_app(svc) as running:
        yield running


@contextmanager
def signed_in(srv: RunningServer, token: str) -> Iterator[httpx.Client]:
    """A browser-like client: signed in through the real form, CSRF cookie set."""
    with httpx.Client(base_url=srv.url, timeout=30, follow_redirects=False) as client:
        client.cookies.set("ts_csrf", CSRF)
        resp = client.post("/login", data={"key": token, "csrf": CSRF, "next": "/"})
        assert resp.status_code == 303, resp.text
        yield client


@pytest.fixture
def admin(srv: RunningServer) -> Iterator[httpx.Client]:
    with signed_in(srv, srv.key("admin", name="ops laptop")) as client:
        yield client


def calls(tenant: str, durations_ms: list[float], at: datetime) -> list[UsageRecord]:
    """One trace per call: a root span and its LLM call, both lasting the duration."""
    out = []
    for d in durations_ms:
        n = next(_ids)
        trace = f"{n:032x}"
        common = {
            "trace_id": trace,
            "tenant_id": tenant,
            "start_time": at - timedelta(milliseconds=d),
            "end_time": at,
            "duration_ms": d,
            "status": "ok",
        }
        out.append(
            UsageRecord(event_id=f"{trace}:r", span_id=f"{2 * n:016x}", name="POST /ask", **common)  # type: ignore[arg-type]
        )
        out.append(
            UsageRecord(
                event_id=f"{trace}:l",
                span_id=f"{2 * n + 1:016x}",
                parent_span_id=f"{2 * n:016x}",
                name="chat",
                kind="llm",
                provider="openai",
                model="gpt-4o",
                input_tokens=100,
                output_tokens=10,
                cost_usd=Decimal("0.01"),
                cost_source="catalog",
                **common,  # type: ignore[arg-type]
            )
        )
    return out


def _contact(svc: Services, name: str = "ops hook", secret: str = "s3cret-signing-key-0042") -> int:
    c = svc.config.alerts.add_contact(
        check_contact(name, "webhook", {"url": "http://127.0.0.1:9/hook", "secret": secret})
    )
    assert c.id is not None
    return c.id


def _rule(svc: Services, **fields: object) -> int:
    data = {
        "name": "p95 over 2 s",
        "metric": "latency_p95",
        "scope": "trace",
        "comparator": ">",
        "threshold": 2000,
        "window": "5m",
        "per_tenant": True,
        **fields,
    }
    rule = svc.config.alerts.add_rule(check_rule(data))
    assert rule.id is not None
    return rule.id


def evaluate_now(svc: Services) -> None:
    """One evaluation of every rule, at the time it is now: the evaluator's lease is
    checked against the store's clock when the round is saved, so a round "at" a time
    long past would be dropped."""
    report = Evaluator(svc.queries, svc.config).run_once(datetime.now(timezone.utc))
    assert report.errors == [] and report.rules >= 1


def _fire(svc: Services, slow: str = "apex-legal", fast: str = "techstart") -> None:
    """``slow`` breaches a p95 of 2 s (2,500 ms), ``fast`` does not; then one evaluation."""
    at = datetime.now(timezone.utc) - timedelta(minutes=1)
    svc.writer.write_sync(calls(slow, [2500] * 10, at))
    svc.writer.write_sync(calls(fast, [300] * 10, at))
    evaluate_now(svc)


def _errors(html: str) -> dict[str, str]:
    return {
        m.group(1): unescape(m.group(2))
        for m in re.finditer(r'data-testid="error-([a-z0-9_.]+)">([^<]*)<', html)
    }


def _value(html: str, name: str) -> str:
    m = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    assert m, name
    return unescape(m.group(1))


def _checked(html: str, name: str, value: str = "1") -> bool:
    m = re.search(rf'<input type="checkbox" name="{name}" value="{value}"([^>]*)>', html)
    assert m, (name, value)
    return "checked" in m.group(1)


def _testid(html: str, testid: str) -> str:
    """The inside of the element with this test id (its tag does not nest in itself)."""
    m = re.search(rf'<([a-z0-9]+)[^>]*data-testid="{testid}"[^>]*>(.*?)</\1>', html, re.S)
    assert m, testid
    return m.group(2)


def _flash(client: httpx.Client, resp: httpx.Response) -> str:
    assert resp.status_code == 303, resp.text
    page = client.get(resp.headers["location"])
    assert page.status_code == 200, page.text
    m = re.search(r'data-testid="flash">([^<]*)<', page.text)
    assert m, "no confirmation on the page the form led to"
    return unescape(m.group(1))


def _rule_form(**fields: str | list[str]) -> dict[str, str | list[str]]:
    base: dict[str, str | list[str]] = {
        "csrf": CSRF,
        "id": "",
        "name": "apex-legal p95 over 2 s",
        "description": "",
        "metric": "latency_p95",
        "scope": "trace",
        "comparator": ">",
        "threshold": "2000",
        "warning": "1500",
        "window": "5m",
        "interval": "1m",
        "min_requests": "5",
        "pending": "2m",
        "keep_firing": "0s",
        "severity": "warning",
        "tenant_ids": "apex-legal, techstart",
        "tier": "",
        "per_tenant": "1",
        "filter_model": "gpt-4o",
        "filter_feature": "",
        "filter_workspace": "",
        "filter_user": "",
        "filter_environment": "",
        "filter_service": "",
        "enabled": "1",
    }
    return {**base, **fields}


# -- reading ---------------------------------------------------------------------------------


def test_the_alerts_page_lists_a_rule_and_its_firing_instance(
    srv: RunningServer, svc: Services, admin: httpx.Client
) -> None:
    contact = _contact(svc)
    rule_id = _rule(svc, contact_ids=[contact])
    _fire(svc)
    page = admin.get("/alerts")
    assert page.status_code == 200, page.text
    html = page.text
    # the firing instance, at the top
    firing = _testid(html, "firing-table")
    assert f'href="/alerts/rule?id={rule_id}"' in firing and "p95 over 2 s" in firing
    assert "apex-legal" in firing and "2,500 ms" in firing and "techstart" not in firing
    assert html.index('data-testid="firing"') < html.index('data-testid="rules"')
    # the rule: its condition in words, its tenants, its states (firing highlighted)
    rules = _testid(html, "rules-table")
    assert "p95 latency (traces) &gt; 2,000 ms over 5m" in rules
    assert "all tenants" in rules and "each tenant" in rules
    states = _testid(html, "rule-states")
    assert 'data-state="firing"' in states and 'data-state="ok"' in states
    assert states.index("firing") < states.index('"ok"')
    assert f'<tr data-rule="{rule_id}" class="firing">' in rules
    # the contact point: untested, used by the rule, its secret never shown
    contacts = _testid(html, "contacts-table")
    assert "ops hook" in contacts and "untested" in contacts and "(set)" in contacts
    assert "s3cret-signing-key-0042" not in html
    # the state change
    history = _testid(html, "history-table")
    assert "apex-legal" in history and 'data-state="firing"' in history
    # admins get the links and buttons
    for testid in ("new-rule", "edit-rule", "new-contact", "test-contact", "remove-contact"):
        assert f'data-testid="{testid}"' in html, testid
    # the navigation has the page
    assert re.search(r'<a href="/alerts" class="active" aria-current="page">Alerts</a>', html)

    # the rule's own page: each instance with its value, requests and history
    page = admin.get("/alerts/rule", params={"id": rule_id})
    assert page.status_code == 200, page.text
    instances = _testid(page.text, "instances-table")
    rows = re.findall(r'<tr data-state="([a-z_]+)".*?</tr>', instances, re.S)
    assert rows == ["firing", "ok"]
    assert "2,500 ms" in instances and "300 ms" in instances
    assert 'data-testid="silence-form"' in page.text and 'data-testid="remove-rule"' in page.text
    assert "ops hook" in _testid(page.text, "rule-definition")
    assert "apex-legal" in _testid(page.text, "history-table")
    # an id that does not exist is a 404 page; one that is not a number a 400
    assert admin.get("/alerts/rule", params={"id": 999}).status_code == 404
    assert admin.get("/alerts/rule", params={"id": "x"}).status_code == 400


def test_the_overview_and_the_tenant_page_say_what_fires(
    srv: RunningServer, svc: Services, admin: httpx.Client
) -> None:
    per_tenant = _rule(svc)
    # a rule over one tenant as a whole concerns that tenant's page too
    alone = _rule(svc, name="apex alone", per_tenant=False, tenant_ids=["apex-legal"])
    # one over every tenant together does not (it names no tenant)
    together = _rule(svc, name="all together", per_tenant=False, threshold=1000)
    _fire(svc)
    overview = admin.get("/").text
    banner = _testid(overview, "alerts-banner")
    assert "3 alerts firing" in banner
    for rule_id in (per_tenant, alone, together):
        assert f'href="/alerts/rule?id={rule_id}"' in banner
    apex = admin.get("/tenant", params={"tenant_id": "apex-legal"}).text
    banner = _testid(apex, "alerts-banner")
    assert "2 alerts firing" in banner
    assert f"id={per_tenant}" in banner and f"id={alone}" in banner
    assert f"id={together}" not in banner
    quiet = admin.get("/tenant", params={"tenant_id": "techstart"}).text
    assert 'data-testid="alerts-banner"' not in quiet


def test_a_reader_sees_the_pages_but_no_forms(srv: RunningServer, svc: Services) -> None:
    contact = _contact(svc)
    rule_id = _rule(svc, contact_ids=[contact])
    _fire(svc)
    with signed_in(srv, srv.key("reader")) as reader:
        html = reader.get("/alerts").text
        assert "p95 over 2 s" in _testid(html, "firing-table")
        assert '<a href="/alerts"' in html  # in the navigation
        page = reader.get("/alerts/rule", params={"id": rule_id})
        assert page.status_code == 200 and "2,500 ms" in page.text
        for text in (html, page.text):
            assert "/admin/alerts" not in text and 'method="post" action="/admin' not in text
        for path in ("/admin/alerts/rule", "/admin/alerts/contact"):
            assert reader.get(path).status_code == 403
        for path, form in (
            ("/admin/alerts/rule", _rule_form()),
            ("/admin/alerts/rule/delete", {"csrf": CSRF, "rule_id": str(rule_id)}),
            ("/admin/alerts/silence", {"csrf": CSRF, "rule_id": str(rule_id), "duration": "1h"}),
            ("/admin/alerts/contact", {"csrf": CSRF, "name": "x", "kind": "slack"}),
            ("/admin/alerts/contact/delete", {"csrf": CSRF, "contact_id": str(contact)}),
            ("/admin/alerts/contact/test", {"csrf": CSRF, "contact_id": str(contact)}),
        ):
            assert reader.post(path, data=form).status_code == 403, path
    alerts = svc.config.alerts
    assert [r.id for r in alerts.list_rules()] == [rule_id]
    rule = alerts.get_rule(rule_id)
    assert rule is not None and rule.silenced_until is None
    assert [c.id for c in alerts.list_contacts()] == [contact]


def test_a_tenant_session_gets_no_alerts(srv: RunningServer, svc: Services) -> None:
    rule_id = _rule(svc, name="secret rule name")
    _fire(svc)
    with signed_in(srv, srv.key("tenant", "apex-legal")) as tenant:
        assert tenant.get("/alerts").status_code == 403
        assert tenant.get("/alerts/rule", params={"id": rule_id}).status_code == 403
        page = tenant.get("/tenant", params={"tenant_id": "apex-legal"})
        assert page.status_code == 200
        assert 'data-testid="alerts-banner"' not in page.text
        assert "secret rule name" not in page.text and "alerts firing" not in page.text
        assert 'href="/alerts' not in page.text  # not in its navigation either
        assert tenant.post("/admin/alerts/rule", data=_rule_form()).status_code == 403
    assert [r.id for r in svc.config.alerts.list_rules()] == [rule_id]


def test_hostile_rule_names_and_tenant_ids_are_shown_as_text(
    srv: RunningServer, svc: Services, admin: httpx.Client
) -> None:
    rule_id = _rule(svc, name=HOSTILE_NAME, description="<b>call</b> the on-call")
    _fire(svc, slow=HOSTILE_TENANT)
    pages = {
        "/alerts": admin.get("/alerts").text,
        "/alerts/rule": admin.get("/alerts/rule", params={"id": rule_id}).text,
        "/": admin.get("/").text,
        "/tenant": admin.get("/tenant", params={"tenant_id": HOSTILE_TENANT}).text,
        "/admin/alerts/rule": admin.get("/admin/alerts/rule", params={"id": rule_id}).text,
    }
    for path, html in pages.items():
        assert "<script>alert(" not in html and "<img src=x" not in html, path
        assert "<b>call</b>" not in html, path
        assert "&lt;script&gt;alert(&#39;rule&#39;)&lt;/script&gt; p95" in html, path
    for path in ("/alerts", "/alerts/rule", "/", "/tenant"):
        assert "evil&#34;&lt;img src=x onerror=alert(1)&gt;" in pages[path], path
        # links to the tenant's page carry the id encoded
        assert urlencode({"tenant_id": HOSTILE_TENANT}) in pages[path].replace("&amp;", "&"), path
    assert "&lt;b&gt;call&lt;/b&gt; the on-call" in pages["/alerts/rule"]


# -- the rule forms --------------------------------------------------------------------------


def test_create_a_rule_through_the_form(
    srv: RunningServer, svc: Services, admin: httpx.Client
) -> None:
    contact = _contact(svc)
    other = _contact(svc, "unused")
    form = admin.get("/admin/alerts/rule")
    assert form.status_code == 200 and 'name="csrf"' in form.text
    assert _value(form.text, "window") == "5m" and _checked(form.text, "enabled")
    assert _checked(form.text, "contact_ids", str(contact)) is False
    resp = admin.post("/admin/alerts/rule", data=_rule_form(contact_ids=[str(contact)]))
    assert resp.status_code == 303, resp.text
    (rule,) = svc.config.alerts.list_rules()
    assert resp.headers["location"] == f"/alerts/rule?id={rule.id}"
    assert _flash(admin, resp) == "Alert rule “apex-legal p95 over 2 s” created."
    assert (rule.metric, rule.scope, rule.comparator) == ("latency_p95", "trace", ">")
    assert (rule.threshold, rule.warning) == (Decimal("2000"), Decimal("1500"))
    assert (rule.window_s, rule.interval_s, rule.pending_s, rule.keep_firing_s) == (
        300,
        60,
        120,
        0,
    )
    assert (rule.min_requests, rule.severity, rule.per_tenant, rule.enabled) == (
        5,
        "warning",
        True,
        True,
    )
    assert rule.tenant_ids == ["apex-legal", "techstart"] and rule.tier == ""
    assert rule.filters == {"model": "gpt-4o"} and rule.contact_ids == [contact]
    assert other not in rule.contact_ids
    (entry,) = svc.config.list_audit(action="alert_rule.create")
    assert entry.target == str(rule.id)
    assert entry.actor.kind == "session" and entry.actor.role == "admin"
    assert entry.actor.name == "ops laptop" and entry.actor.key_id


def test_a_wrong_rule_is_422_with_every_field_named_and_nothing_stored(
    srv: RunningServer, svc: Services, admin: httpx.Client
) -> None:
    given = _rule_form(
        name="",
        description="<i>typed</i>",
        metric="p42",
        threshold="two seconds",
        window="5 fortnights",
        min_requests="-1",
        severity="loud",
        filter_model="m" * 1100,
        contact_ids=["abc"],
    )
    resp = admin.post("/admin/alerts/rule", data=given)
    assert resp.status_code == 422, resp.text
    errors = _errors(resp.text)
    assert set(errors) == {
        "name",
        "metric",
        "threshold",
        "window",
        "min_requests",
        "severity",
        "filters.model",
        "contact_ids",
    }
    assert "a number" in errors["threshold"] and "duration" in errors["window"]
    assert "latency_p95" in errors["metric"] and "contact point ids" in errors["contact_ids"]
    assert "8 fields to fix" in resp.text
    # what was typed is kept (escaped), so it can be corrected
    assert _value(resp.text, "window") == "5 fortnights"
    assert _value(resp.text, "threshold") == "two seconds"
    assert _value(resp.text, "tenant_ids") == "apex-legal, techstart"
    assert _value(resp.text, "filter_model") == "m" * 1100
    assert _checked(resp.text, "per_tenant")
    assert "&lt;i&gt;typed&lt;/i&gt;" in resp.text and "<i>typed</i>" not in resp.text
    assert svc.config.alerts.list_rules() == []
    assert svc.config.list_audit(action="alert_rule.create") == []
    # a warning on the wrong side of the threshold, checked by the same check_rule
    resp = admin.post("/admin/alerts/rule", data=_rule_form(warning="2500"))
    assert resp.status_code == 422
    assert _errors(resp.text) == {"warning": "must be below the threshold (2000) for >"}
    # a form without the CSRF token changes nothing
    resp = admin.post("/admin/alerts/rule", data=_rule_form(csrf="forged"))
    assert resp.status_code == 403
    assert svc.config.alerts.list_rules() == []


def test_editing_a_rule_keeps_its_values(
    srv: RunningServer, svc: Services, admin: httpx.Client
) -> None:
    contact = _contact(svc)
    rule_id = _rule(
        svc,
        name="gold tier cost",
        metric="cost",
        scope="span",
        comparator=">=",
        threshold="12.5",
        warning="10",
        window="1h",
        interval="5m",
        min_requests=0,
        tenant_ids=["apex-legal", "techstart"],
        tier="gold",
        per_tenant=False,
        filters={"feature": "summarise"},
        contact_ids=[contact],
        enabled=False,
        severity="info",
    )
    until = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=3)
    svc.config.alerts.silence(rule_id, None, until)
    html = admin.get("/admin/alerts/rule", params={"id": rule_id}).text
    expected = {
        "id": str(rule_id),
        "name": "gold tier cost",
        "threshold": "12.5",
        "warning": "10",
        "window": "1h",
        "interval": "5m",
        "min_requests": "0",
        "pending": "0s",
        "tenant_ids": "apex-legal, techstart",
        "tier": "gold",
        "filter_feature": "summarise",
        "filter_model": "",
    }
    assert {name: _value(html, name) for name in expected} == expected
    assert re.search(r'<option value="cost" selected>', html)
    assert re.search(r'<option value="&gt;=" selected>', html)
    assert re.search(r'<option value="info" selected>', html)
    assert _checked(html, "contact_ids", str(contact))
    assert not _checked(html, "per_tenant") and not _checked(html, "enabled")
    before = svc.config.alerts.get_rule(rule_id)
    # the form posted back as it was shown, with a new name
    posted = {name: _value(html, name) for name in expected}
    posted |= {"csrf": CSRF, "name": "gold tier cost (renamed)", "description": ""}
    posted |= {"metric": "cost", "scope": "span", "comparator": ">=", "severity": "info"}
    posted |= {"keep_firing": "0s", "contact_ids": str(contact)}
    posted |= {f"filter_{f}": "" for f in ("workspace", "user", "environment", "service")}
    resp = admin.post("/admin/alerts/rule", data=posted)
    assert resp.headers["location"] == f"/alerts/rule?id={rule_id}"
    assert _flash(admin, resp) == "Alert rule “gold tier cost (renamed)” saved."
    after = svc.config.alerts.get_rule(rule_id)
    assert before is not None and after is not None
    assert after.name == "gold tier cost (renamed)"
    keep = ("name", "updated_at")
    assert {k: getattr(after, k) for k in after.__slots__ if k not in keep} == {
        k: getattr(before, k) for k in before.__slots__ if k not in keep
    }
    assert after.silenced_until == until
    (entry,) = svc.config.list_audit(action="alert_rule.update")
    assert entry.actor.kind == "session"
    # a rule that does not exist has no form
    assert admin.get("/admin/alerts/rule", params={"id": 999}).status_code == 404


def test_delete_a_rule(srv: RunningServer, svc: Services, admin: httpx.Client) -> None:
    rule_id = _rule(svc)
    _fire(svc)
    resp = admin.post("/admin/alerts/rule/delete", data={"csrf": CSRF, "rule_id": str(rule_id)})
    assert resp.headers["location"] == "/alerts"
    assert _flash(admin, resp) == "Alert rule “p95 over 2 s” removed; its history stays."
    assert svc.config.alerts.list_rules() == [] and svc.config.alerts.instances() == []
    (entry,) = svc.config.list_audit(action="alert_rule.delete")
    assert entry.actor.kind == "session" and entry.target == str(rule_id)
    # its history stays, marked as the history of a removed rule
    assert f"rule {rule_id} (removed)" in admin.get("/alerts").text
    # again: nothing to remove, and the page says so
    resp = admin.post("/admin/alerts/rule/delete", data={"csrf": CSRF, "rule_id": str(rule_id)})
    assert resp.status_code == 404
    assert f"There is no alert rule &#39;{rule_id}&#39;" in resp.text


def test_silence_a_rule_and_one_tenant(
    srv: RunningServer, svc: Services, admin: httpx.Client
) -> None:
    rule_id = _rule(svc)
    _fire(svc)
    store = svc.config.alerts

    def silence(**fields: str) -> httpx.Response:
        return admin.post(
            "/admin/alerts/silence", data={"csrf": CSRF, "rule_id": str(rule_id), **fields}
        )

    resp = silence(duration="4h")
    assert resp.headers["location"] == f"/alerts/rule?id={rule_id}"
    assert "silenced until" in _flash(admin, resp)
    rule = store.get_rule(rule_id)
    assert rule is not None and rule.silenced_until is not None
    now = datetime.now(timezone.utc)
    assert timedelta(hours=3, minutes=59) < rule.silenced_until - now <= timedelta(hours=4)
    page = admin.get("/alerts/rule", params={"id": rule_id}).text
    assert 'data-testid="rule-silenced"' in page and 'data-testid="lift"' in page
    # one tenant, until lifted
    resp = silence(instance="1", tenant_id="apex-legal", duration="lifted")
    assert _flash(admin, resp) == (
        "Notifications of alert rule “p95 over 2 s” for tenant apex-legal silenced until lifted."
    )
    by_key = {i.key: i for i in store.instances(rule_id)}
    assert by_key["apex-legal"].silenced_until == FOREVER
    assert by_key["techstart"].silenced_until is None
    assert "until lifted" in _testid(admin.get("/alerts").text, "firing-table")
    # lifted: the rule's silence, then the tenant's
    resp = silence(lift="1")
    assert "lifted" in _flash(admin, resp)
    rule = store.get_rule(rule_id)
    assert rule is not None and rule.silenced_until is None
    silence(instance="1", tenant_id="apex-legal", lift="1")
    assert {i.key: i.silenced_until for i in store.instances(rule_id)}["apex-legal"] is None
    entries = svc.config.list_audit(action="alert_rule.silence")
    assert len(entries) == 4 and {e.actor.kind for e in entries} == {"session"}
    assert entries[0].target == f"{rule_id}/apex-legal"
    # refused: no duration; one tenant of a rule over its tenants together
    assert silence(duration="forever").status_code == 422
    together = _rule(svc, name="together", per_tenant=False)
    resp = admin.post(
        "/admin/alerts/silence",
        data={"csrf": CSRF, "rule_id": str(together), "instance": "1", "tenant_id": "x"},
    )
    assert resp.status_code == 422 and "for one tenant" in resp.text
    assert len(svc.config.list_audit(action="alert_rule.silence")) == 4


# -- contact points --------------------------------------------------------------------------


def _contact_form(**fields: str) -> dict[str, str]:
    base = {
        "csrf": CSRF,
        "id": "",
        "name": "ops webhook",
        "kind": "webhook",
        "webhook.url": "https://hooks.example.com/tenantscope",
        "webhook.secret": "a-signing-secret-of-32-characters",
        "slack.url": "",
        "email.to": "",
        "email.host": "",
    }
    return {**base, **fields}


def test_create_and_edit_a_contact_point_without_showing_its_secret(
    srv: RunningServer, svc: Services, admin: httpx.Client
) -> None:
    store = svc.config.alerts
    secret = "a-signing-secret-of-32-characters"
    assert admin.get("/admin/alerts/contact").status_code == 200
    resp = admin.post("/admin/alerts/contact", data=_contact_form())
    assert resp.headers["location"] == "/alerts"
    assert "Contact point “ops webhook” created." in _flash(admin, resp)
    (contact,) = store.list_contacts()
    assert contact.settings == {"url": "https://hooks.example.com/tenantscope", "secret": secret}
    (entry,) = svc.config.list_audit(action="contact_point.create")
    assert entry.actor.kind == "session" and entry.actor.role == "admin"
    # the edit form: the URL, never the secret (an empty box that keeps it)
    html = admin.get("/admin/alerts/contact", params={"id": contact.id}).text
    assert secret not in html
    assert _value(html, "webhook.url") == "https://hooks.example.com/tenantscope"
    assert _value(html, "webhook.secret") == ""
    assert "leave empty to keep it" in html
    resp = admin.post(
        "/admin/alerts/contact",
        data=_contact_form(id=str(contact.id), name="ops webhook 2", **{"webhook.secret": ""}),
    )
    assert _flash(admin, resp).startswith("Contact point “ops webhook 2” saved.")
    edited = store.get_contact(contact.id or 0)
    assert edited is not None and edited.name == "ops webhook 2"
    assert edited.settings["secret"] == secret
    # wrong settings: each named by its box, the typed secret not sent back, nothing stored
    typed = "short"
    resp = admin.post(
        "/admin/alerts/contact",
        data=_contact_form(name="", **{"webhook.url": "ftp://x", "webhook.secret": typed}),
    )
    assert resp.status_code == 422
    assert set(_errors(resp.text)) == {"name", "webhook.url", "webhook.secret"}
    assert _value(resp.text, "webhook.url") == "ftp://x"
    assert _value(resp.text, "webhook.secret") == ""
    assert len(store.list_contacts()) == 1
    # a Slack URL is a secret: the page shows its host only
    resp = admin.post(
        "/admin/alerts/contact",
        data=_contact_form(
            name="slack",
            kind="slack",
            **{"slack.url": "https://hooks.slack.com/services/T0/B0/XyZ"},
        ),
    )
    assert resp.status_code == 303
    slack = next(c for c in store.list_contacts() if c.kind == "slack")
    for html in (
        admin.get("/alerts").text,
        admin.get("/admin/alerts/contact", params={"id": slack.id}).text,
    ):
        assert "T0/B0/XyZ" not in html and "hooks.slack.com" in html


def test_a_contact_point_in_use_is_not_removed(
    srv: RunningServer, svc: Services, admin: httpx.Client
) -> None:
    contact = _contact(svc)
    rule_id = _rule(svc, name="uses the hook", contact_ids=[contact])
    resp = admin.post(
        "/admin/alerts/contact/delete", data={"csrf": CSRF, "contact_id": str(contact)}
    )
    assert resp.status_code == 409
    error = unescape(_testid(resp.text, "alerts-error"))
    assert "was not removed" in error and f"alert rule {rule_id} (uses the hook)" in error
    assert [c.id for c in svc.config.alerts.list_contacts()] == [contact]
    assert svc.config.list_audit(action="contact_point.delete") == []
    svc.config.alerts.delete_rule(rule_id)
    resp = admin.post(
        "/admin/alerts/contact/delete", data={"csrf": CSRF, "contact_id": str(contact)}
    )
    assert _flash(admin, resp) == "Contact point “ops hook” removed."
    assert svc.config.alerts.list_contacts() == []
    (entry,) = svc.config.list_audit(action="contact_point.delete")
    assert entry.actor.kind == "session"


def test_send_a_test_notification(srv: RunningServer, svc: Services, admin: httpx.Client) -> None:
    good, bad = serve_http([Reply()]), serve_http([Reply(status=400, body=b"no")])
    try:
        store = svc.config.alerts
        ids = {}
        for name, receiver in (("good", good), ("bad", bad)):
            c = store.add_contact(check_contact(name, "slack", {"url": receiver.url + "/hook"}))
            ids[name] = c.id
        resp = admin.post(
            "/admin/alerts/contact/test", data={"csrf": CSRF, "contact_id": str(ids["good"])}
        )
        assert _flash(admin, resp) == "Test notification delivered to “good”."
        assert good.hits == 1
        resp = admin.post(
            "/admin/alerts/contact/test", data={"csrf": CSRF, "contact_id": str(ids["bad"])}
        )
        message = _flash(admin, resp)
        assert message.startswith("Test notification to “bad” failed: ") and "400" in message
        statuses = _testid(admin.get("/alerts").text, "contacts-table")
        assert "badge pass" in statuses and "badge fail" in statuses
        resp = admin.post("/admin/alerts/contact/test", data={"csrf": CSRF, "contact_id": "99"})
        assert resp.status_code == 404
    finally:
        for r in (good, bad):
            r.server.shutdown()
            r.server.server_close()
