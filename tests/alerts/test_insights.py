"""Insights over real stores: a tenant's seasonal traffic for three weeks, then an hour in
which a new, expensive model takes over: the anomaly is found, explained by that model,
listed by the API for admins and for the tenant's own key only, and usable as an alert
metric."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx

from tenantscope.alerts.insights import last_hour
from tenantscope.alerts.rules import check_rule
from tenantscope.records import UsageRecord
from tests.conftest import RunningServer

_ids = itertools.count(1)


def _calls(
    tenant: str, hour: datetime, n: int, model: str, tokens: tuple[int, int]
) -> list[UsageRecord]:
    out = []
    for i in range(n):
        k = next(_ids)
        start = hour + timedelta(seconds=(i * 3599) // max(n, 1))
        out.append(
            UsageRecord(
                event_id=f"ins-{k}",
                trace_id=f"{k:032x}",
                span_id=f"{k:016x}",
                name="chat",
                kind="llm",
                provider="openai",
                model=model,
                tenant_id=tenant,
                user_id="u1",
                input_tokens=tokens[0],
                output_tokens=tokens[1],
                start_time=start,
                end_time=start + timedelta(milliseconds=800),
                duration_ms=800.0,
            )
        )
    return out


def _seed(server: RunningServer) -> datetime:
    """Three weeks of office-hours traffic for two tenants; in the last whole hour acme's
    calls go to o1, ten times as many."""
    spike = last_hour(datetime.now(timezone.utc))
    records: list[UsageRecord] = []
    hour = spike - timedelta(weeks=3)
    while hour < spike:
        busy = hour.weekday() < 5 and 8 <= hour.hour < 18
        for tenant in ("acme", "globex"):
            records += _calls(tenant, hour, 30 if busy else 6, "gpt-4o-mini", (1000, 100))
        hour += timedelta(hours=1)
    records += _calls(
        "globex",
        spike,
        30 if spike.weekday() < 5 and 8 <= spike.hour < 18 else 6,
        "gpt-4o-mini",
        (1000, 100),
    )
    records += _calls("acme", spike, 300, "o1", (1000, 500))
    for start in range(0, len(records), 5000):
        server.services.writer.write_sync(records[start : start + 5000])
    return spike


def test_a_new_expensive_model_is_an_anomaly_explained_by_it(server: RunningServer) -> None:
    spike = _seed(server)
    found = server.client.get("/api/insights", params={"hours": 3}).json()["anomalies"]
    assert {a["tenant_id"] for a in found} == {"acme"}
    by_metric = {a["metric"]: a for a in found}
    assert {"cost", "requests"} <= set(by_metric)
    cost = by_metric["cost"]
    assert cost["hour"] == spike.strftime("%Y-%m-%dT%H:%M:%SZ") and cost["direction"] == "up"
    assert cost["driver"]["dimension"] == "model" and cost["driver"]["key"] == "o1"
    assert cost["driver"]["share_before"] == 0.0 and cost["driver"]["share_now"] == 1.0
    # the tenant's own key sees its own anomalies; another tenant's key sees none of them
    for tenant, expected in (("acme", {"acme"}), ("globex", set())):
        token = server.key("tenant", tenant)
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"}) as c:
            mine = c.get("/api/insights").json()["anomalies"]
            assert {a["tenant_id"] for a in mine} == expected
            assert (
                c.get(
                    "/api/insights",
                    params={"tenant_id": "acme" if tenant == "globex" else "globex"},
                ).status_code
                == 404
            )
    risers = server.client.get("/api/insights", params={"tenant_id": "acme"}).json()["risers"]
    assert (risers[0]["dimension"], risers[0]["key"]) in {("model", "o1"), ("user", "u1")}
    assert Decimal(risers[0]["change_usd"]) > 0


def test_anomaly_score_is_an_alert_metric(server: RunningServer) -> None:
    _seed(server)
    svc = server.services
    rule = svc.config.alerts.add_rule(
        check_rule(
            {"name": "anomalies", "metric": "anomaly_score", "threshold": 5, "per_tenant": True}
        )
    )
    assert svc.evaluator is not None  # the server's own (it holds the lease)
    svc.evaluator.run_once()
    states = {i.key: i.state for i in svc.config.alerts.instances(rule.id)}
    assert states == {"acme": "firing", "globex": "ok"}


def test_the_insights_page_lists_anomalies_and_a_tenants_risers(server: RunningServer) -> None:
    _seed(server)
    page = server.client.get("/insights", params={"hours": 3})
    assert page.status_code == 200
    row = page.text[page.text.index('<tr data-tenant="acme" data-metric="cost">') :].split("</tr>")[
        0
    ]
    assert "model" in row and ">o1<" in row and "0% → 100%" in row
    one = server.client.get("/insights", params={"tenant_id": "acme"}).text
    assert 'data-testid="risers"' in one and ">o1<" in one
    token = server.key("tenant", "globex")
    theirs = httpx.get(f"{server.url}/insights", headers={"authorization": f"Bearer {token}"})
    assert theirs.status_code == 200 and 'data-tenant="acme"' not in theirs.text
    assert "No anomalies" in theirs.text


def test_the_tenant_page_shows_its_anomalies_and_biggest_risers(server: RunningServer) -> None:
    _seed(server)
    page = server.client.get("/tenant", params={"tenant_id": "acme"}).text
    card = page[page.index('data-testid="tenant-anomalies"') :].split("</section>")[0]
    assert 'data-metric="cost"' in card and ">o1<" in card
    risers = page[page.index('data-testid="tenant-risers"') :].split("</section>")[0]
    assert ">o1<" in risers
    quiet = server.client.get("/tenant", params={"tenant_id": "globex"}).text
    assert "None: every hour was within" in quiet
