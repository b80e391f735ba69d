"""Chart specifications (plotly.js ``data`` + ``layout``) built from query results. The page
embeds them as JSON; ``static/app.js`` draws them. Numbers stay numbers here (money as
floats is fine for drawing; the tables beside each chart show the exact figures).

Plotly.js renders a subset of HTML in every text it draws (legend names, hover labels,
axis ticks, annotations: ``<a href>``, ``<b>``, ``<br>``, entities), so a tenant id like
``<a href="https://evil.example">Session expired</a>`` would become a real link. Every
string taken from data goes through ``plotly_text`` (the Jinja autoescape does not reach
inside the JSON spec, and the JSON escaping only keeps it from closing the script tag)."""

from __future__ import annotations

import html
from typing import Any

from tenantscope.dashboard.render import NO_TENANT
from tenantscope.query.models import SlaRow, TimeSeries

Spec = dict[str, Any]

PALETTE = (
    "#4f46e5",
    "#0891b2",
    "#16a34a",
    "#ea580c",
    "#db2777",
    "#7c3aed",
    "#ca8a04",
    "#475569",
    "#dc2626",
    "#0d9488",
)
_FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12}


def plotly_text(text: str) -> str:
    """A data string as plotly text: ``<``, ``>`` and ``&`` escaped. Plotly decodes the
    entities when it draws, so the chart shows the string exactly as it was sent (an
    ``&amp;`` in the data stays visible as such), and no tag from data is rendered."""
    return html.escape(text, quote=False)


def _layout(y_title: str, *, money: bool = False, stacked: bool = False) -> Spec:
    layout: Spec = {
        "margin": {"l": 56, "r": 12, "t": 8, "b": 36},
        "height": 260,
        "font": _FONT,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "xaxis": {"type": "date", "gridcolor": "#eef0f4"},
        "yaxis": {"title": {"text": y_title}, "gridcolor": "#eef0f4", "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": -0.2},
        "showlegend": stacked,
        "hovermode": "x unified",
    }
    if money:
        layout["yaxis"]["tickprefix"] = "$"
    return layout


def _value(v: Any) -> float | None:
    if v is None:
        return None
    return float(v)


def series_chart(ts: TimeSeries, y_title: str, *, money: bool = False) -> Spec:
    """One line per series; several series (grouped by tenant) are stacked areas."""
    stacked = len(ts.series) > 1
    data = []
    for i, s in enumerate(ts.series):
        trace: Spec = {
            "type": "scatter",
            "mode": "lines",
            "name": plotly_text(s.key) if s.key else (NO_TENANT if stacked else y_title),
            "x": [p.t.isoformat() if p.t else None for p in s.points],
            "y": [_value(p.value) for p in s.points],
            "line": {"color": PALETTE[i % len(PALETTE)], "width": 2 if not stacked else 1},
        }
        if stacked:
            trace["stackgroup"] = "one"
        else:
            trace["fill"] = "tozeroy"
            trace["fillcolor"] = "rgba(79,70,229,0.08)"
        data.append(trace)
    return {"data": data, "layout": _layout(y_title, money=money, stacked=stacked)}


def latency_chart(rows: list[SlaRow], target_ms: int | None) -> Spec:
    """p50/p95/p99 per tenant as grouped bars, with the tier's target as a line."""
    names = [plotly_text(r.display_name or r.tenant_id) or NO_TENANT for r in rows]
    data: list[Spec] = [
        {
            "type": "bar",
            "name": label,
            "x": names,
            "y": [getattr(r, field) for r in rows],
            "marker": {"color": color},
        }
        for label, field, color in (
            ("p50", "p50_ms", "#a5b4fc"),
            ("p95", "p95_ms", "#4f46e5"),
            ("p99", "p99_ms", "#312e81"),
        )
    ]
    layout = _layout("latency (ms)", stacked=True)
    # the legend goes above the plot: below it, tenant names (turned when they are long or
    # many) ran into it
    layout["legend"] = {
        "orientation": "h",
        "x": 0,
        "xanchor": "left",
        "y": 1.02,
        "yanchor": "bottom",
    }
    layout["margin"] = {**layout["margin"], "t": 32}
    layout["xaxis"] = {"type": "category", "automargin": True}
    layout["barmode"] = "group"
    layout["hovermode"] = "closest"
    if target_ms is not None:
        layout["shapes"] = [
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": target_ms,
                "y1": target_ms,
                "line": {"color": "#dc2626", "dash": "dash", "width": 2},
            }
        ]
        layout["annotations"] = [
            {
                "xref": "paper",
                "x": 1,
                "y": target_ms,
                "text": f"target p95 {target_ms} ms",
                "showarrow": False,
                "yanchor": "bottom",
                "xanchor": "right",
                "font": {"color": "#dc2626"},
            }
        ]
    return {"data": data, "layout": layout}
