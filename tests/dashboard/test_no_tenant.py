"""The tenant "" (spans sent without one, shown as "(no tenant)") is a filter value like
any other: in the API (``tenant_id=`` present and empty), in the dashboard's links and in
its filter forms; and the overview's changes against a near-empty previous period."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from tenantscope.records import UsageRecord
from tenantscope.server.services import Services
from tests.conftest import RunningServer, seeded_server
from tests.query.seed import CALLS, NOW, Call, seed


def _seed(svc: Services) -> None:
    seed(svc)  # every other tenant's calls
    anonymous = [replace(c, tenant="") for c in CALLS[:2]]
    _write(svc, anonymous, first=100)
    # a previous period that is all but empty: a tenth of a cent 8 days ago
    _write(
        svc, [Call("apex-legal", "x", "sx", "gpt-4o", "old", 100, "0.000001", hours_ago=200)], 200
    )


def _write(svc: Services, calls: list[Call], first: int) -> None:
    records = []
    for i, c in enumerate(calls, start=first):
        trace = f"{i:032x}"
        start = NOW - timedelta(hours=c.hours_ago) + timedelta(minutes=i % 50)
        end = start + timedelta(milliseconds=c.duration_ms)
        common = {
            "trace_id": trace,
            "tenant_id": c.tenant,
            "user_id": c.user,
            "session_id": c.session,
            "feature": c.feature,
            "start_time": start,
            "end_time": end,
            "duration_ms": c.duration_ms,
        }
        records.append(UsageRecord(event_id=f"{trace}:r", span_id=f"{2 * i:016x}", **common))
        records.append(
            UsageRecord(
                event_id=f"{trace}:l",
                span_id=f"{2 * i + 1:016x}",
                parent_span_id=f"{2 * i:016x}",
                kind="llm",
                model=c.model,
                provider="openai",
                input_tokens=10,
                output_tokens=1,
                cost_usd=Decimal(c.cost),
                cost_source="reported",
                **common,
            )
        )
    assert svc.writer.write_sync(records).accepted == len(records)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data: Path = tmp_path_factory.mktemp("no-tenant") / "data"
    with seeded_server(data, _seed) as running:
        yield running


def page(site: RunningServer, path: str, status: int = 200) -> str:
    resp = site.client.get(path, headers={"accept": "text/html"})
    assert resp.status_code == status, (path, resp.status_code, resp.text[-600:])
    return resp.text


def traces_of(text: str) -> list[str]:
    return re.findall(r'<tr data-trace="([0-9a-f]+)"', text)


ANONYMOUS = [f"{100:032x}", f"{101:032x}"]


def test_api_tenant_id_present_and_empty_is_the_tenant_without_an_id(site: RunningServer) -> None:
    c = site.client
    items = c.get("/api/traces", params={"tenant_id": ""}).json()["items"]
    assert sorted(t["trace_id"] for t in items) == ANONYMOUS
    assert {t["tenant_id"] for t in items} == {""}
    everyone = c.get("/api/traces", params={"limit": 100}).json()["items"]
    assert len(everyone) == len(CALLS) + 2  # absent: every tenant
    users = c.get("/api/users", params={"tenant_id": ""}).json()["items"]
    assert {(u["tenant_id"], u["id"]) for u in users} == {("", "alice")}
    sessions = c.get("/api/sessions", params={"tenant_id": ""}).json()["items"]
    assert {s["tenant_id"] for s in sessions} == {""}
    by_model = c.get("/api/breakdown", params={"by": "model", "tenant_id": ""}).json()
    assert [r["key"] for r in by_model["items"]] == ["gpt-4o"]
    assert by_model["total_cost_usd"] == "0.030000000"
    assert c.get("/api/tenants/").json()["tenant_id"] == ""
    assert c.get("/api/tenants//usage").json()["request_count"] == 2


def test_no_tenant_row_view_traces_lists_its_traces_only(site: RunningServer) -> None:
    tenants = page(site, "/tenants")
    row = re.search(r'<tr data-tenant="">(.*?)</tr>', tenants, re.S)
    assert row and "(no tenant)" in row.group(1)
    href = re.search(r'href="([^"]*)">View traces', row.group(1))
    assert href
    link = href.group(1).replace("&amp;", "&")
    assert dict(parse_qsl(urlsplit(link).query, keep_blank_values=True))["tenant_id"] == ""
    listed = page(site, link)
    assert sorted(traces_of(listed)) == ANONYMOUS
    assert "Tenant: <a" in listed and "(no tenant)" in listed
    # the tenant page of "(no tenant)" links to the same list
    detail = page(site, "/tenant?tenant_id=")
    view = re.search(r'<a class="btn" href="([^"]*)">View traces', detail)
    assert view and sorted(traces_of(page(site, view.group(1).replace("&amp;", "&")))) == ANONYMOUS


def test_filter_form_empty_box_is_any_tenant_and_the_label_is_no_tenant(
    site: RunningServer,
) -> None:
    """A browser sends every box: the page answers the form's submission with the URL a
    link would use (empty boxes left out; "(no tenant)" as ``tenant_id=``)."""
    c = site.client
    form = page(site, "/traces?tenant_id=")
    assert 'name="tenant_id" value="(no tenant)"' in form  # the box shows the filter
    sent = c.get(
        "/traces",
        params={"range": "7d", "form": "1", "tenant_id": "", "user_id": "", "model": "gpt-4o"},
    )
    assert sent.status_code == 303
    assert sent.headers["location"] == "/traces?range=7d&model=gpt-4o"
    again = c.get("/traces", params={"form": "1", "tenant_id": "(no tenant)", "user_id": ""})
    assert again.headers["location"] == "/traces?tenant_id="
    users = c.get("/users", params={"form": "1", "tenant_id": "(no tenant)", "sort": "cost"})
    assert users.headers["location"] == "/users?tenant_id=&sort=cost"
    listed = page(site, "/users?tenant_id=&sort=cost")
    assert re.findall(r'<td><a class="mono" href="[^"]*">([^<]+)</a>', listed) == ["alice"]


def test_overview_change_against_a_near_empty_previous_period_is_new(site: RunningServer) -> None:
    text = page(site, "/")
    cards = re.search(r'data-testid="cards">(.*?)</section>', text, re.S)
    assert cards
    cost = re.search(r"Total cost</div>.*?</div>\s*(.*?)</div>\s*</div>", cards.group(1), re.S)
    assert cost and "new" in cost.group(1), cards.group(1)
    assert not re.search(r"[+−]\d{5,}%", cards.group(1)), cards.group(1)
