"""Chart specs: what plotly.js is given to draw. Plotly renders a subset of HTML in every
text it draws (``<a href>``, ``<b>``, ``<br>``, entities), so strings that come from data
(tenant ids and names, models, features...) must reach it escaped."""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from typing import Any

from tenantscope.dashboard.charts import latency_chart, series_chart
from tenantscope.query.models import Series, SeriesPoint, SlaRow, TimeSeries

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
LINK = '<a href="https://evil.example/login">Session expired</a>'
MARKUP = [LINK, "<b>bold</b><br>two", "a & b", "x &amp; y", "<img src=x onerror=alert(1)>"]


def _strings(value: Any) -> list[str]:
    """Every string anywhere in a spec."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _series(keys: list[str]) -> TimeSeries:
    points = [SeriesPoint(t=T0, value=1.0)]
    return TimeSeries(
        metric="cost",
        interval="hour",
        start=T0,
        end=T0,
        series=[Series(key=k, points=points) for k in keys],
    )


def _sla_row(tenant_id: str, name: str = "") -> SlaRow:
    return SlaRow(
        tenant_id=tenant_id,
        display_name=name,
        tier="pro",
        requests=3,
        p50_ms=100.0,
        p95_ms=200.0,
        p99_ms=300.0,
        target_p95_ms=250,
    )


def plotly_text(text: str) -> str:
    """What a data string must become: plotly decodes the entities when it draws, so the
    chart shows the string exactly as it was sent."""
    return html.escape(text, quote=False)


def test_stacked_series_names_are_escaped() -> None:
    spec = series_chart(_series(MARKUP), "cost (USD)", money=True)
    names = [trace["name"] for trace in spec["data"]]
    assert names == [plotly_text(m) for m in MARKUP]
    assert names[3] == "x &amp;amp; y"  # an entity in data is shown as typed
    text = json.dumps(spec)
    assert "<a" not in text and "<b>" not in text and "<img" not in text
    assert all("<" not in s and ">" not in s for s in _strings(spec))


def test_latency_chart_labels_are_escaped() -> None:
    rows = [_sla_row(LINK), _sla_row("plain", name="<b>Acme</b> & Co"), _sla_row("", "")]
    spec = latency_chart(rows, 250)
    for trace in spec["data"]:
        assert trace["x"] == [plotly_text(LINK), "&lt;b&gt;Acme&lt;/b&gt; &amp; Co", "(no tenant)"]
    assert all("<" not in s and ">" not in s for s in _strings(spec))
    # what we write ourselves stays as it is
    assert spec["layout"]["annotations"][0]["text"] == "target p95 250 ms"


def test_escaping_keeps_categories_apart() -> None:
    """Two tenants whose labels differ only in markup stay two bars."""
    spec = latency_chart([_sla_row("<b>x</b>"), _sla_row("&lt;b&gt;x&lt;/b&gt;")], None)
    x = spec["data"][0]["x"]
    assert len(set(x)) == 2
