"""Dashboard pages over a real server for traces whose root span never arrived, the
Customers card and the counting decisions on the trace page (tests/query/seed_traces.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from markupsafe import escape

from tenantscope.semconv import describe_usage_convention
from tests.conftest import RunningServer, seeded_server
from tests.query.seed_traces import REASON, ROOTED, ROOTLESS, seed_traces

BADGE = "incomplete: root span not received"


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with seeded_server(tmp_path_factory.mktemp("trace-pages") / "data", seed_traces) as srv:
        yield srv


def page(srv: RunningServer, path: str) -> str:
    resp = srv.client.get(path, headers={"accept": "text/html"})
    assert resp.status_code == 200, (path, resp.text[:500])
    return resp.text


def trace_rows(text: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-trace="([0-9a-f]+)">(.*?)</tr>', text, re.S))


def span_row(text: str, span_id: str) -> str:
    found = re.search(rf'data-span="{span_id}">(.*?)</details>', text, re.S)
    assert found, span_id
    return found.group(1)


def test_traces_list_marks_a_trace_without_its_root(dash: RunningServer) -> None:
    rows = trace_rows(page(dash, "/traces"))
    assert BADGE in rows[ROOTLESS] and "agent step" in rows[ROOTLESS]
    assert BADGE not in rows[ROOTED]
    only = page(dash, "/traces?customer_id=globex")
    assert list(trace_rows(only)) == [ROOTLESS]
    assert 'name="customer_id" value="globex"' in only  # the filter stays in its box


def test_trace_page_shows_incomplete_usage_rules_and_shadow_reasons(dash: RunningServer) -> None:
    text = page(dash, f"/traces/{ROOTLESS}")
    heading = re.search(r"<h1.*?</h1>", text, re.S)
    assert heading and BADGE in heading.group(0)
    assert "<script>alert(" not in text  # the reason holds markup: shown as text
    copy = span_row(text, "00000000000000b3")
    assert f"shadowed: {escape(REASON)}" in copy
    assert "a more specific span of this trace counts" not in copy  # its own reason instead
    assert "<dt>Usage read as</dt>" in copy
    assert str(escape(describe_usage_convention("openllmetry"))) in copy
    call = span_row(text, "00000000000000b2")
    assert describe_usage_convention("langfuse") in call and "shadowed" not in call
    assert "<dt>Customer</dt>" in call and ">acme<" in call
    # a rule name with markup in it is escaped too
    mini = span_row(text, "00000000000000b4")
    assert "figures:input&lt;cache" in mini and "figures:input<cache" not in mini
    # a shadowed record without a stored reason keeps the general explanation
    wrapper = span_row(page(dash, f"/traces/{ROOTED}"), "00000000000000a3")
    assert "shadowed: a more specific span of this trace counts" in wrapper
    assert BADGE not in page(dash, f"/traces/{ROOTED}")


def test_tenant_page_customers_card(dash: RunningServer) -> None:
    text = page(dash, "/tenant?tenant_id=lf-co")
    table = re.search(r'data-testid="tenant-customers".*?<tbody>(.*?)</tbody>', text, re.S)
    assert table, "no Customers card"
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    firsts = [re.search(r"<td[^>]*>(.*?)</td>", r, re.S) for r in rows]
    names = [re.sub(r"<[^>]+>", "", m.group(1)) for m in firsts if m]
    assert names == ["acme", "(none)", "globex"]
    assert 'href="/traces?tenant_id=lf-co&amp;customer_id=acme&amp;range=7d"' in rows[0]
    assert "$0.0300" in rows[0]
    plain = page(dash, "/tenant?tenant_id=plain-co")
    assert 'data-testid="no-customers"' in plain and "No customer ids sent" in plain
    assert 'data-testid="tenant-customers"' not in plain
