"""The dashboard's admin forms against a real server (real SQLite and DuckDB files): what
they store and audit, what they refuse (bad input: 422 with every wrong field named and
nothing stored; a missing or wrong CSRF token; callers that are not admins), and the key
secret shown once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from html import unescape
from pathlib import Path

import httpx
import pytest

from tenantscope.server.keys import issue_key
from tenantscope.server.services import Services
from tenantscope.storage.base import PriceOverride
from tenantscope.testing.server import free_port
from tests.conftest import RunningServer, make_settings, serve_app

CSRF = "admin-forms-csrf-token-0123456789"
POSTS = (
    "/admin/tenant",
    "/admin/prices",
    "/admin/prices/delete",
    "/admin/keys",
    "/admin/keys/revoke",
)
PAGES = ("/admin/tenants", "/admin/tenant", "/admin/prices", "/admin/keys", "/audit")


@contextmanager
def signed_in(srv: RunningServer, token: str) -> Iterator[httpx.Client]:
    """A browser-like client: signed in through the real form, CSRF cookie set."""
    with httpx.Client(base_url=srv.url, timeout=30, follow_redirects=False) as client:
        client.cookies.set("ts_csrf", CSRF)
        resp = client.post("/login", data={"key": token, "csrf": CSRF, "next": "/"})
        assert resp.status_code == 303, resp.text
        yield client


@pytest.fixture
def admin(server: RunningServer) -> Iterator[httpx.Client]:
    with signed_in(server, server.key("admin", name="ops laptop")) as client:
        yield client


def _errors(html: str) -> dict[str, str]:
    return {
        m.group(1): unescape(m.group(2))
        for m in re.finditer(r'data-testid="error-([a-z0-9_]+)">([^<]*)<', html)
    }


def _value(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, name
    return unescape(m.group(1))


def _flash(client: httpx.Client, resp: httpx.Response) -> str:
    assert resp.status_code == 303, resp.text
    page = client.get(resp.headers["location"])
    assert page.status_code == 200, page.text
    m = re.search(r'data-testid="flash">([^<]*)<', page.text)
    assert m, "no confirmation on the page the form led to"
    # shown once: the next page has none
    assert 'data-testid="flash"' not in client.get(resp.headers["location"]).text
    return unescape(m.group(1))


def _tenant_form(**fields: str) -> dict[str, str]:
    base = {
        "csrf": CSRF,
        "tenant_id": "acme",
        "is_new": "1",
        "display_name": "",
        "tier": "",
        "sla_p95_ms": "",
        "rate_limit_rpm": "",
        "monthly_budget_usd": "",
    }
    return {**base, **fields}


def test_create_then_edit_a_tenant(server: RunningServer, admin: httpx.Client) -> None:
    config = server.services.config
    form = admin.get("/admin/tenant")
    assert form.status_code == 200 and 'name="csrf"' in form.text
    resp = admin.post(
        "/admin/tenant",
        data=_tenant_form(display_name="Acme Corp", tier="gold", sla_p95_ms="2000"),
    )
    assert resp.headers["location"] == "/tenant?tenant_id=acme"
    assert _flash(admin, resp) == "Configuration of tenant acme created."
    made = config.get_tenant("acme")
    assert made is not None and (made.display_name, made.tier, made.sla_p95_ms) == (
        "Acme Corp",
        "gold",
        2000,
    )
    # the edit form holds the stored values; an empty box clears its value
    edit = admin.get("/admin/tenant", params={"tenant_id": "acme"})
    assert _value(edit.text, "display_name") == "Acme Corp"
    assert _value(edit.text, "sla_p95_ms") == "2000"
    resp = admin.post(
        "/admin/tenant",
        data=_tenant_form(
            is_new="0",
            display_name="Acme Corporation",
            tier="gold",
            rate_limit_rpm="600",
            monthly_budget_usd="2500.75",
            next="/tenant?tenant_id=acme",
        ),
    )
    assert _flash(admin, resp) == "Configuration of tenant acme saved."
    edited = config.get_tenant("acme")
    assert edited is not None
    assert (edited.display_name, edited.sla_p95_ms, edited.rate_limit_rpm) == (
        "Acme Corporation",
        None,
        600,
    )
    assert edited.monthly_budget_usd == Decimal("2500.75")
    update, create = config.list_audit(target="acme")
    assert (create.action, update.action) == ("tenant.create", "tenant.update")
    for entry in (create, update):
        assert entry.actor.kind == "session" and entry.actor.role == "admin"
        assert entry.actor.name == "ops laptop" and entry.actor.key_id
    assert update.before == create.after
    assert update.after is not None and update.after["monthly_budget_usd"] == "2500.75"


def test_the_tenant_pages_link_to_the_form(server: RunningServer, admin: httpx.Client) -> None:
    server.services.config.set_tenant("acme", tier="gold")
    page = admin.get("/tenant", params={"tenant_id": "acme"}).text
    assert 'data-testid="edit-tenant"' in page
    assert "/admin/tenant?tenant_id=acme&amp;next=%2Ftenant%3Ftenant_id%3Dacme" in page
    assert 'data-testid="new-tenant"' in admin.get("/tenants").text
    assert 'href="/admin/tenant?tenant_id=acme"' in admin.get("/admin/tenants").text


def test_bad_tenant_input_is_422_with_every_field_named_and_nothing_stored(
    server: RunningServer, admin: httpx.Client
) -> None:
    config = server.services.config
    given = _tenant_form(
        tenant_id="acme",
        display_name="<b>Acme</b>",
        tier="t" * 201,
        sla_p95_ms="fast",
        rate_limit_rpm="0",
        monthly_budget_usd="ten dollars",
    )
    resp = admin.post("/admin/tenant", data=given)
    assert resp.status_code == 422, resp.text
    errors = _errors(resp.text)
    assert set(errors) == {"tier", "sla_p95_ms", "rate_limit_rpm", "monthly_budget_usd"}
    assert "200 characters" in errors["tier"]
    assert "whole number" in errors["sla_p95_ms"]
    assert "between 1 and" in errors["rate_limit_rpm"]
    assert "not a decimal number" in errors["monthly_budget_usd"]
    # what was typed is kept (escaped), so it can be corrected
    assert _value(resp.text, "display_name") == "<b>Acme</b>"
    assert _value(resp.text, "sla_p95_ms") == "fast"
    assert "&lt;b&gt;Acme&lt;/b&gt;" in resp.text and "<b>Acme</b>" not in resp.text
    assert config.get_tenant("acme") is None
    assert config.list_audit(action="tenant.create") == []
    # an empty id is named too
    resp = admin.post("/admin/tenant", data=_tenant_form(tenant_id=""))
    assert resp.status_code == 422 and "tenant_id" in _errors(resp.text)


def test_a_new_tenant_with_a_configured_id_is_refused(
    server: RunningServer, admin: httpx.Client
) -> None:
    server.services.config.set_tenant("acme", tier="gold")
    resp = admin.post("/admin/tenant", data=_tenant_form(tier="bronze"))
    assert resp.status_code == 422
    assert "configured already" in _errors(resp.text)["tenant_id"]
    kept = server.services.config.get_tenant("acme")
    assert kept is not None and kept.tier == "gold"


def _override_form(**fields: str) -> dict[str, str]:
    base = {
        "csrf": CSRF,
        "override_id": "",
        "model": "gpt-4o",
        "provider": "",
        "effective_from": "2026-01-01",
        "input_mtok": "",
        "output_mtok": "",
        "cache_read_mtok": "",
        "cache_write_mtok": "",
        "note": "",
    }
    return {**base, **fields}


def test_add_replace_and_remove_a_price_override(
    server: RunningServer, admin: httpx.Client
) -> None:
    config = server.services.config
    resp = admin.post("/admin/prices", data=_override_form(input_mtok="2", note="MSA-7"))
    assert "for gpt-4o added" in _flash(admin, resp)
    (added,) = config.list_price_overrides()
    assert added.input_mtok == Decimal("2") and added.note == "MSA-7"
    assert added.effective_from == datetime(2026, 1, 1, tzinfo=timezone.utc)
    page = admin.get("/admin/prices").text
    assert "the catalog's openai/gpt-4o names" in page  # what it covers, as prices show says
    form = admin.get("/admin/prices", params={"override_id": str(added.id)})
    assert _value(form.text, "input_mtok") == "2" and _value(form.text, "note") == "MSA-7"
    resp = admin.post(
        "/admin/prices",
        data=_override_form(override_id=str(added.id), input_mtok="1.5", output_mtok="6"),
    )
    assert f"Override {added.id} for gpt-4o replaced" in _flash(admin, resp)
    (replaced,) = config.list_price_overrides()
    assert replaced.id == added.id and replaced.output_mtok == Decimal("6")
    resp = admin.post("/admin/prices/delete", data={"csrf": CSRF, "override_id": str(added.id)})
    assert f"Override {added.id} removed" in _flash(admin, resp)
    assert config.list_price_overrides() == []
    actions = [e.action for e in config.list_audit(target="gpt-4o")]
    assert actions == ["price_override.delete", "price_override.replace", "price_override.add"]


def test_bad_override_input_is_422_and_nothing_stored(
    server: RunningServer, admin: httpx.Client
) -> None:
    resp = admin.post(
        "/admin/prices",
        data=_override_form(
            model="", effective_from="next tuesday", input_mtok="-1", output_mtok="NaN"
        ),
    )
    assert resp.status_code == 422, resp.text
    assert set(_errors(resp.text)) == {"model", "effective_from", "input_mtok", "output_mtok"}
    assert _value(resp.text, "effective_from") == "next tuesday"
    no_price = admin.post("/admin/prices", data=_override_form())
    assert no_price.status_code == 422
    assert "at least one price" in _errors(no_price.text)["input_mtok"]
    assert server.services.config.list_price_overrides() == []
    assert server.services.config.list_audit(action="price_override.add") == []


def test_a_key_is_shown_once_and_can_be_revoked(server: RunningServer, admin: httpx.Client) -> None:
    config = server.services.config
    resp = admin.post(
        "/admin/keys", data={"csrf": CSRF, "role": "tenant", "tenant_id": "acme", "name": "portal"}
    )
    assert resp.status_code == 200, resp.text
    token = unescape(re.search(r'data-testid="new-secret">([^<]*)<', resp.text).group(1))  # type: ignore[union-attr]
    assert token.startswith("tst_") and resp.text.count(token) == 1
    assert resp.headers["cache-control"] == "no-store"
    key_id, secret = token.split("_")[1], token.split("_", 2)[2]
    # it works, and no page shows it again
    ok = httpx.get(
        server.url + "/api/tenants/acme/usage",
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert ok.status_code == 200
    for path in ("/admin/keys", "/audit"):
        page = admin.get(path).text
        assert key_id in page and secret not in page
    # revoke it through the form
    resp = admin.post("/admin/keys/revoke", data={"csrf": CSRF, "key_id": key_id})
    assert _flash(admin, resp) == f"Key {key_id} revoked: it no longer works."
    key = config.get_api_key(key_id)
    assert key is not None and not key.active
    revoked = httpx.get(
        server.url + "/api/tenants/acme/usage",
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert revoked.status_code == 401
    actions = [(e.action, e.actor.kind) for e in config.list_audit(target=key_id)]
    assert actions == [("key.revoke", "session"), ("key.create", "session")]


def test_bad_key_input_is_422(server: RunningServer, admin: httpx.Client) -> None:
    before = len(server.services.config.list_api_keys())
    for data, field in (
        ({"role": "tenant", "tenant_id": "", "name": "x"}, "tenant_id"),
        ({"role": "reader", "tenant_id": "acme", "name": "x"}, "tenant_id"),
        ({"role": "root", "tenant_id": "", "name": "x"}, "role"),
        ({"role": "reader", "tenant_id": "", "name": "n" * 201}, "name"),
    ):
        resp = admin.post("/admin/keys", data={"csrf": CSRF, **data})
        assert resp.status_code == 422, data
        assert field in _errors(resp.text), (data, resp.text[-2000:])
        assert _value(resp.text, "name") == data["name"]
    assert len(server.services.config.list_api_keys()) == before


def test_the_last_admin_key_stays_and_the_form_says_why(tmp_path: Path) -> None:
    svc = Services.open(make_settings(tmp_path / "data", port=free_port()))
    try:
        with serve_app(svc) as srv:
            # serve_app made one admin key; this session's is the second
            with signed_in(srv, issue_key(svc.config, "admin", "me")[1]) as admin:
                others = [k for k in svc.config.list_api_keys() if k.name != "me"]
                assert (
                    admin.post(
                        "/admin/keys/revoke", data={"csrf": CSRF, "key_id": others[0].key_id}
                    ).status_code
                    == 303
                )
                me = next(k for k in svc.config.list_api_keys() if k.name == "me")
                resp = admin.post("/admin/keys/revoke", data={"csrf": CSRF, "key_id": me.key_id})
                assert resp.status_code == 409, resp.text
                shown = unescape(
                    re.search(r'data-testid="keys-error">([^<]*)<', resp.text).group(1)
                )  # type: ignore[union-attr]
                assert "last active admin key" in shown and "Create another admin key" in shown
                assert svc.config.get_api_key(me.key_id).active  # type: ignore[union-attr]
                assert [e.action for e in svc.config.list_audit(target=me.key_id)] == ["key.create"]
    finally:
        svc.close()


def _snapshot(srv: RunningServer) -> tuple[object, ...]:
    config = srv.services.config
    return (
        config.list_tenants(),
        config.list_price_overrides(),
        [(k.key_id, k.active) for k in config.list_api_keys()],
        [e.id for e in config.list_audit(limit=1000)],
    )


def _valid_posts(srv: RunningServer) -> dict[str, dict[str, str]]:
    """A form for each POST route that would change something with the right token."""
    config = srv.services.config
    override = config.add_price_override(
        PriceOverride(model="m", effective_from=datetime.now(timezone.utc), input_mtok=Decimal(1))
    )
    victim = srv.key("reader", name="victim")
    return {
        "/admin/tenant": _tenant_form(tenant_id="forged", tier="x"),
        "/admin/prices": _override_form(input_mtok="9"),
        "/admin/prices/delete": {"override_id": str(override.id)},
        "/admin/keys": {"role": "admin", "tenant_id": "", "name": "forged"},
        "/admin/keys/revoke": {"key_id": victim.split("_")[1]},
    }


@pytest.mark.parametrize("token", ["missing", "wrong", "cookie-only"])
def test_forms_without_the_right_csrf_token_are_refused_and_change_nothing(
    server: RunningServer, admin: httpx.Client, token: str
) -> None:
    posts = _valid_posts(server)
    before = _snapshot(server)
    for path, form in posts.items():
        data = {k: v for k, v in form.items() if k != "csrf"}
        if token == "wrong":
            data["csrf"] = "not-the-cookie-value"
        if token == "cookie-only":  # another site's form: no cookie of ours, its own token
            admin.cookies.delete("ts_csrf")
            data["csrf"] = CSRF
        resp = admin.post(path, data=data)
        # the refusal page hands out a fresh token cookie: back to the test's own
        admin.cookies.delete("ts_csrf")
        admin.cookies.set("ts_csrf", CSRF)
        assert resp.status_code == 403, (path, resp.text)
        assert "form expired or came from another site" in resp.text
    assert _snapshot(server) == before
    # and the same forms with the token do change things (the refusal above was the token)
    for path, form in posts.items():
        resp = admin.post(path, data={**form, "csrf": CSRF})
        assert resp.status_code in (200, 303), (path, resp.text)
    assert _snapshot(server) != before


@pytest.mark.parametrize("role", ["tenant", "reader"])
def test_other_sessions_get_403_and_change_nothing(server: RunningServer, role: str) -> None:
    server.services.config.set_tenant("acme", display_name="Acme Secret Name")
    posts = _valid_posts(server)
    token = server.key(role, "acme" if role == "tenant" else None)
    before = _snapshot(server)
    with signed_in(server, token) as client:
        for path in PAGES:
            resp = client.get(path, params={"tenant_id": "acme"} if path == "/admin/tenant" else {})
            assert resp.status_code == 403, (path, resp.text)
            assert "Acme Secret Name" not in resp.text
        for path, form in posts.items():
            resp = client.post(path, data={**form, "csrf": CSRF})
            assert resp.status_code == 403, (path, resp.text)
    assert _snapshot(server) == before


def test_keys_that_are_not_admin_get_403(server: RunningServer) -> None:
    before = _snapshot(server)
    for role, tenant in (("tenant", "acme"), ("ingest", None), ("reader", None)):
        headers = {
            "authorization": f"Bearer {server.key(role, tenant)}",
            "cookie": f"ts_csrf={CSRF}",
        }
        for path in PAGES:
            assert httpx.get(server.url + path, headers=headers, timeout=30).status_code == 403
        for path in POSTS:
            resp = httpx.post(
                server.url + path,
                headers=headers,
                data={"csrf": CSRF, "tenant_id": "x"},
                timeout=30,
            )
            assert resp.status_code == 403, (role, path)
    # the keys made above are the only change
    assert _snapshot(server)[:2] == before[:2]


def test_the_audit_page_lists_filters_and_pages(server: RunningServer, admin: httpx.Client) -> None:
    config = server.services.config
    for i in range(60):
        config.set_tenant(f"t{i:02}", tier="gold")
    admin.post("/admin/tenant", data=_tenant_form(tenant_id="<a href='https://evil.example'>x</a>"))
    page = admin.get("/audit")
    assert page.status_code == 200
    rows = re.findall(r'data-testid="audit-target">([^<]*)<', page.text)
    assert len(rows) == 50
    assert unescape(rows[0]) == "<a href='https://evil.example'>x</a>"
    assert "href='https://evil.example'" not in page.text
    assert "session · admin" in page.text and "ops laptop" in page.text
    older = re.search(r'href="([^"]*)" data-testid="audit-older"', page.text)
    assert older
    rest = admin.get(unescape(older.group(1))).text
    assert len(re.findall(r'data-testid="audit-target"', rest)) >= 11
    only = admin.get("/audit", params={"target": "t07"}).text
    assert re.findall(r'data-testid="audit-target">([^<]*)<', only) == ["t07"]
    assert "tier:</span> — → gold" in only
    assert admin.get("/audit", params={"since": "yesterday-ish"}).status_code == 400
    assert admin.get("/audit", params={"action": "nope"}).status_code == 400


def test_the_nav_shows_admin_pages_to_admins_only(
    server: RunningServer, admin: httpx.Client
) -> None:
    page = admin.get("/").text
    assert 'href="/admin/tenants?range=7d"' in page and 'href="/audit?range=7d"' in page
    # the range the nav carries is taken by the admin pages too
    assert admin.get("/audit", params={"range": "7d"}).status_code == 200
    with signed_in(server, server.key("reader")) as reader:
        page = reader.get("/").text
        assert 'href="/audit' not in page and 'href="/admin/' not in page
