"""The server-rendered dashboard: Jinja2 pages over the same query layer and Scope as the
JSON API. Every filter lives in the URL; tables work without JavaScript and charts (plotly.js,
served from the installed ``plotly`` package) are drawn on top when scripts run."""
