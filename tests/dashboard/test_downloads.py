"""CSV downloads of every table page over a real server: the page's filters and range,
every row (not the page's 50), exact money, formula-safe text, the caller's scope."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from html import unescape

import httpx
import pytest

from tenantscope.records import UsageRecord
from tests.conftest import RunningServer
from tests.query.seed import HOSTILE, NOW, seed

FORMULA = '=HYPERLINK("http://evil.example","click")'


def extra_users(srv: RunningServer) -> None:
    """120 users of one tenant (more than a page of 50), one with a formula for an id."""
    records = []
    for i in range(120):
        start = NOW - timedelta(hours=2, seconds=i)
        records.append(
            UsageRecord(
                event_id=f"many-{i}",
                trace_id=f"{0xABC000 + i:032x}",
                span_id=f"{0xABC000 + i:016x}",
                name="chat",
                kind="llm",
                tenant_id="many-users-co",
                user_id=FORMULA if i == 0 else f"u{i:03d}",
                feature="-minus-feature",
                provider="openai",
                model="gpt-4o",
                input_tokens=100,
                output_tokens=10,
                cost_usd=Decimal("0.000001"),
                cost_source="reported",
                start_time=start,
                end_time=start + timedelta(milliseconds=300),
                duration_ms=300,
            )
        )
    assert srv.services.writer.write_sync(records).accepted == 120


@pytest.fixture
def dash(server: RunningServer) -> Iterator[RunningServer]:
    seed(server.services)
    extra_users(server)
    yield server


def download(client: httpx.Client, path: str, **params: str) -> list[dict[str, str]]:
    resp = client.get(path, params={"range": "7d", **params, "format": "csv"})
    assert resp.status_code == 200, (path, resp.status_code, resp.text[:400])
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = resp.headers["content-disposition"]
    assert re.fullmatch(
        r'attachment; filename="tenantscope-[a-z-]+-\d{8}T\d{4,6}Z-\d{8}T\d{4,6}Z\.csv"',
        disposition,
    ), disposition
    assert resp.text.endswith("\r\n")
    return list(csv.DictReader(io.StringIO(resp.text)))


def test_tenants_csv_exact_money_and_the_pages_order(dash: RunningServer) -> None:
    rows = download(dash.client, "/tenants", sort="cost")
    assert [r["tenant_id"] for r in rows] == [
        "apex-legal",
        "stratex-consulting",
        "techstart-inc",
        "many-users-co",
        HOSTILE,
    ]
    apex = rows[0]
    assert (apex["display_name"], apex["tier"], apex["requests"]) == (
        "Apex Legal",
        "enterprise",
        "4",
    )
    assert apex["cost_usd"] == "0.100000000" and apex["error_rate"] == "0.25"
    assert rows[-1]["cost_usd"] == "0.000000000001"  # never a float, never 1e-12
    assert rows[3]["cost_usd"] == "0.000120000"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", apex["last_seen"])
    # the search of the page applies
    assert [r["tenant_id"] for r in download(dash.client, "/tenants", q="strat")] == [
        "stratex-consulting"
    ]


def test_users_csv_has_every_row_not_the_first_page(dash: RunningServer) -> None:
    page = dash.client.get("/users", params={"tenant_id": "many-users-co", "range": "7d"})
    assert len(re.findall(r"<tr>\s*<td><a class=\"mono\"", page.text)) == 50  # one page
    rows = download(dash.client, "/users", tenant_id="many-users-co", cursor="eyJvIjo1MH0")
    assert len(rows) == 120  # every user, from the first (the cursor is not a filter)
    assert {r["tenant_id"] for r in rows} == {"many-users-co"}
    # a formula sent as a user id is text in the sheet
    assert "'" + FORMULA in {r["id"] for r in rows}
    assert FORMULA not in {r["id"] for r in rows}


def test_traces_sessions_csv_follow_the_filters(dash: RunningServer) -> None:
    traces = download(dash.client, "/traces", tenant_id="apex-legal", status="error")
    assert len(traces) == 1 and traces[0]["tenant_id"] == "apex-legal"
    assert traces[0]["status"] == "error" and traces[0]["cost_usd"] == "0.040000000"
    assert traces[0]["models"] == "claude-3-5-sonnet"
    everything = download(dash.client, "/traces")
    assert len(everything) == 8 + 120
    sessions = download(dash.client, "/sessions", tenant_id="apex-legal", user_id="alice")
    assert [(s["id"], s["user_id"], s["requests"]) for s in sessions] == [("s1", "alice", "2")]


def test_sla_csv_is_the_pages_rows(dash: RunningServer) -> None:
    rows = download(dash.client, "/sla")
    assert [(r["tier"], r["tenant_id"]) for r in rows] == [
        ("enterprise", "apex-legal"),
        ("professional", "stratex-consulting"),
    ]
    assert rows[0]["compliant"] == "false" and rows[0]["target_p95_ms"] == "2000"
    one = download(dash.client, "/sla", tenant_id="stratex-consulting")
    assert [r["tenant_id"] for r in one] == ["stratex-consulting"]


def test_prices_csvs(dash: RunningServer) -> None:
    from datetime import datetime, timezone

    dash.services.config.add_price_override(
        __import__("tenantscope.storage.base", fromlist=["PriceOverride"]).PriceOverride(
            model="gpt-4o",
            effective_from=datetime(2020, 1, 1, tzinfo=timezone.utc),
            input_mtok=Decimal("2"),
            output_mtok=Decimal("8"),
            note="=cmd|' /C calc'!A0",
        )
    )
    models = {r["model"]: r for r in download(dash.client, "/prices")}
    assert set(models) == {"gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet"}
    assert models["gpt-4o"]["provider"] == "openai"
    assert re.fullmatch(r"\d+\.\d{9,}", models["gpt-4o-mini"]["catalog_input_mtok"])
    overrides = download(dash.client, "/prices", table="overrides")
    assert len(overrides) == 1
    o = overrides[0]
    assert (o["model"], o["input_mtok"], o["output_mtok"]) == (
        "gpt-4o",
        "2.000000000",
        "8.000000000",
    )
    assert o["prices_models_seen"] == "openai/gpt-4o"
    assert o["note"] == "'=cmd|' /C calc'!A0"
    assert o["effective_from"] == "2020-01-01T00:00:00Z"
    # filtered to a tenant: its models only
    mine = download(dash.client, "/prices", tenant_id="stratex-consulting")
    assert [r["model"] for r in mine] == ["gpt-4o-mini"]


def test_tenant_page_breakdown_csvs(dash: RunningServer) -> None:
    providers = download(dash.client, "/tenant", tenant_id="apex-legal", table="provider")
    assert [(r["provider"], r["requests"], r["cost_usd"]) for r in providers] == [
        ("anthropic", "2", "0.070000000"),
        ("openai", "2", "0.030000000"),
    ]
    assert list(providers[0]) == [
        "provider",
        "requests",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost_usd",
        "unpriced_requests",
        "errors",
        "share_of_cost",
    ]
    users = download(dash.client, "/tenant", tenant_id="many-users-co", table="user")
    assert len(users) == 120  # more than the page's 8
    features = download(dash.client, "/tenant", tenant_id="many-users-co", table="feature")
    assert features[0]["feature"] == "'-minus-feature"  # text, guarded
    assert features[0]["requests"] == "120"


def test_compare_csv(dash: RunningServer) -> None:
    rows = download(dash.client, "/compare")
    assert list(rows[0])[:3] == ["tenant_id", "feature", "requests"]
    pairs = {(r["tenant_id"], r["feature"]): r for r in rows}
    assert pairs[("apex-legal", "qa")]["cost_usd"] == "0.070000000"
    assert pairs[("apex-legal", "qa")]["share_of_group_cost"] == "0.7"
    assert ("many-users-co", "'-minus-feature") in pairs
    by_model = download(dash.client, "/compare", by="model", tenant_id="apex-legal")
    assert {(r["tenant_id"], r["model"]) for r in by_model} == {
        ("apex-legal", "gpt-4o"),
        ("apex-legal", "claude-3-5-sonnet"),
    }


def test_every_table_page_links_its_csv(dash: RunningServer) -> None:
    for path, tables in [
        ("/tenants?range=24h&q=a", [""]),
        ("/traces?range=24h&tenant_id=apex-legal", [""]),
        ("/users?range=24h&cursor=eyJvIjo1MH0", [""]),
        ("/sessions?range=24h", [""]),
        ("/sla?range=24h", [""]),
        ("/prices?range=24h", ["models", "overrides"]),
        ("/compare?range=24h", [""]),
        ("/tenant?range=24h&tenant_id=apex-legal", ["model", "provider", "feature", "user"]),
    ]:
        text = dash.client.get(path, headers={"accept": "text/html"}).text
        links = [unescape(h) for h in re.findall(r'class="csv-link" href="([^"]+)"', text)]
        assert links, path
        base = path.split("?")[0]
        for table in tables:
            want = [x for x in links if x.endswith(f"&table={table}")] if table else links
            assert want, (path, table, links)
            assert want[0].startswith(base + "?") and "format=csv" in want[0]
            assert "range=24h" in want[0] and "cursor" not in want[0]
        assert "up to 100,000 rows" in text


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/tenants?format=xlsx", "format must be csv"),
        ("/traces?table=model", "unknown query parameter"),
        ("/tenant?tenant_id=apex-legal&table=model", "add format=csv"),
        ("/tenant?tenant_id=apex-legal&format=csv&table=colour", "table must be one of"),
        ("/prices?format=csv&table=colour", "table"),
        ("/compare?by=tenant", "by must be one of"),
    ],
)
def test_bad_download_parameters_are_400_pages(dash: RunningServer, path: str, needle: str) -> None:
    resp = dash.client.get(path, headers={"accept": "text/html"})
    assert resp.status_code == 400, (path, resp.text[:300])
    assert needle in unescape(resp.text), resp.text[-600:]


def test_a_tenant_key_downloads_its_own_rows_only(dash: RunningServer) -> None:
    token = dash.key("tenant", "stratex-consulting")
    with httpx.Client(base_url=dash.url, headers={"authorization": f"Bearer {token}"}) as c:
        for path, params in [
            ("/traces", {}),
            ("/traces", {"tenant_id": "apex-legal"}),
            ("/users", {}),
            ("/sessions", {}),
            ("/sla", {}),
            ("/tenant", {"tenant_id": "stratex-consulting", "table": "user"}),
        ]:
            rows = download(c, path, **params)
            for r in rows:
                assert r.get("tenant_id", "stratex-consulting") == "stratex-consulting", (path, r)
            text = str(rows)
            assert "apex" not in text and "many-users" not in text and "alice" not in text
        assert len(download(c, "/traces")) == 2
        foreign = c.get(
            "/tenant",
            params={"tenant_id": "apex-legal", "table": "model", "format": "csv"},
        )
        assert foreign.status_code == 404
        for path in ("/tenants", "/prices", "/compare"):
            assert c.get(path, params={"format": "csv"}).status_code == 403
