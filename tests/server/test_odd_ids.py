"""Ids with any characters (``/``, ``?``, ``#``, ``%``, ``+``, spaces, unicode) are
addressable in the API and every link of the dashboard carries them intact."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from tenantscope.records import UsageRecord
from tenantscope.server.services import Services
from tests.conftest import RunningServer, seeded_server
from tests.query.seed import NOW

# One tenant per odd id; its user, session, feature and customer carry the same id.
ODD = [
    "acme/usage",
    "acme",
    "a/b/c",
    "what?x=1&y=2",
    "frag#ment",
    "100% real",
    "with space",
    "plus+sign",
    "ünïcødé 租户",
    "..",
]


def _records(i: int, odd: str) -> list[UsageRecord]:
    trace = f"{0xABC000 + i:032x}"
    start = NOW - timedelta(hours=1) + timedelta(minutes=i)
    end = start + timedelta(milliseconds=500)
    common = {
        "trace_id": trace,
        "tenant_id": odd,
        "user_id": odd,
        "session_id": odd,
        "feature": odd,
        "customer_id": odd,
        "start_time": start,
        "end_time": end,
        "duration_ms": 500.0,
    }
    root = UsageRecord(
        event_id=f"{trace}:root", span_id=f"{2 * i + 1:016x}", name="POST /ask", **common
    )
    llm = UsageRecord(
        event_id=f"{trace}:llm",
        span_id=f"{2 * i + 2:016x}",
        parent_span_id=f"{2 * i + 1:016x}",
        name="chat",
        kind="llm",
        provider="openai",
        model="gpt-4o",
        input_tokens=100 + i,
        output_tokens=10,
        cost_usd=Decimal(i + 1),
        cost_source="reported",
        **common,
    )
    return [root, llm]


def _seed(svc: Services) -> None:
    records = [r for i, odd in enumerate(ODD) for r in _records(i, odd)]
    assert svc.writer.write_sync(records).accepted == len(records)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data: Path = tmp_path_factory.mktemp("odd") / "data"
    with seeded_server(data, _seed) as running:
        yield running


def path_segment(tenant_id: str) -> str:
    """The id as one path segment: percent-encoded, ``.`` and ``..`` too (URL libraries,
    httpx among them, would resolve those as dot segments)."""
    if tenant_id.strip(".") == "":
        return "%2E" * len(tenant_id)
    return quote(tenant_id, safe="")


@pytest.mark.parametrize("odd", ODD)
def test_api_addresses_every_tenant_id_exactly(site: RunningServer, odd: str) -> None:
    segment = path_segment(odd)
    detail = site.client.get(f"/api/tenants/{segment}")
    assert detail.status_code == 200, detail.text
    assert detail.json()["tenant_id"] == odd
    assert detail.json()["totals"]["requests"] == 1
    usage = site.client.get(f"/api/tenants/{segment}/usage")
    assert usage.status_code == 200, usage.text
    body = usage.json()
    assert (body["tenant_id"], body["request_count"]) == (odd, 1)
    assert body["total_cost"] == f"{ODD.index(odd) + 1}.000000000"
    traces = site.client.get("/api/traces", params={"tenant_id": odd}).json()["items"]
    assert [t["tenant_id"] for t in traces] == [odd]
    for route in ("/api/users", "/api/sessions"):
        rows = site.client.get(route, params={"tenant_id": odd}).json()["items"]
        assert [(r["tenant_id"], r["id"]) for r in rows] == [(odd, odd)], route


def test_api_usage_suffix_is_only_a_literal_slash(site: RunningServer) -> None:
    """``acme%2Fusage`` is the tenant ``acme/usage``; ``acme/usage`` is acme's usage."""
    encoded = site.client.get("/api/tenants/acme%2Fusage").json()
    assert encoded["tenant_id"] == "acme/usage" and "totals" in encoded
    suffix = site.client.get("/api/tenants/acme/usage").json()
    assert suffix["tenant_id"] == "acme" and "request_count" in suffix
    # an unencoded / inside an id reaches the tenant too, and its usage
    assert site.client.get("/api/tenants/a/b/c").json()["tenant_id"] == "a/b/c"
    assert site.client.get("/api/tenants/a/b/c/usage").json()["tenant_id"] == "a/b/c"
    assert site.client.get("/api/tenants/a%2Fb%2Fc/usage").json()["tenant_id"] == "a/b/c"


# The dashboard: every link built from data carries the id whole.
IDS = {"tenant_id", "user_id", "session_id", "customer_id", "feature", "id", "tenant"}
IDS |= {"user", "session", "customer"}  # (the dashboard's older names)


def _links(text: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="([^"]*)"', text)]


def _page(site: RunningServer, url: str) -> str:
    resp = site.client.get(url, headers={"accept": "text/html"})
    assert resp.status_code == 200, (url, resp.status_code, resp.text[-800:])
    return resp.text


def _crawl(site: RunningServer, start: list[str], depth: int) -> dict[str, str]:
    """Pages reached from ``start`` by following the dashboard's own links (GET only)."""
    seen: dict[str, str] = {}
    frontier = list(start)
    for _ in range(depth):
        found = []
        for url in frontier:
            if url in seen:
                continue
            seen[url] = text = _page(site, url)
            for href in _links(text):
                parts = urlsplit(href)
                if parts.netloc or not parts.path.startswith("/") or href in seen:
                    continue
                if parts.path.startswith(("/static", "/docs", "/login", "/logout")):
                    continue
                if any(k in IDS for k, _ in parse_qsl(parts.query)):
                    found.append(href)
        frontier = found
    return seen


def test_every_dashboard_link_carries_odd_ids_whole(site: RunningServer) -> None:
    pages = _crawl(site, ["/tenants", "/users", "/sessions", "/traces"], depth=3)
    values: dict[str, set[str]] = {}
    for url in pages:
        for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
            if key in IDS:
                values.setdefault(key, set()).add(value)
    # a link built without encoding would cut an id at ? # & or turn + into a space
    for key, seen in values.items():
        assert seen <= set(ODD) | {""}, (key, sorted(seen - set(ODD)))
    assert any(set(ODD) <= seen for seen in values.values()), values
    # every tenant's page was reached through a link and shows its own figures
    tenant_pages = [u for u in pages if urlsplit(u).path == "/tenant"]
    assert len(tenant_pages) >= len(ODD)


def test_trace_links_are_encoded_paths(site: RunningServer) -> None:
    text = _page(site, "/traces")
    trace_links = [h for h in _links(text) if urlsplit(h).path.startswith("/traces/")]
    assert len(trace_links) == len(ODD)
    for href in trace_links:
        _page(site, href)
