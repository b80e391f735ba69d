"""Property-based fuzzing of every GET route's query (and path) parameters against a real
server with an admin key: no input may give a 5xx, or drop the connection.

The JSON API is fuzzed by schemathesis from the app's own ``/openapi.json`` (values that fit
each parameter's schema and values that do not), with times drawn from the whole range a
client could write (year 1 to 9999, any offset, huge epochs) mixed in. The dashboard's
pages are not in the OpenAPI document; hypothesis fuzzes the query parameters each page
route declares the same way. Runs are bounded and derandomized: the same cases every run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.conftest import RunningServer, seeded_server
from tests.query.seed import CALLS, HOSTILE, seed
from tests.server.test_access_matrix import app_routes

# Cases per API operation and per page (~2,000 requests in all: ~20 s on 2 cores).
API_EXAMPLES = 100
PAGE_EXAMPLES = 80
SETTINGS = settings(
    max_examples=API_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
TIME_PARAMS = ("from", "to")
# Not pages: assets, the sign-in form and the API reference (fuzzed as the API, or static).
NOT_PAGES = ("/static/", "/login", "/logout", "/docs", "/redoc", "/openapi.json")


def _rfc3339(t: datetime, form: int) -> str:
    if form == 0:
        return t.isoformat()
    if form == 1:
        return t.strftime("%Y-%m-%d") if t.year >= 1000 else t.date().isoformat()
    return t.isoformat().replace("+00:00", "Z")


# Times anywhere a client could write one: every year Python holds, offsets up to ±23:59,
# epoch seconds far past any datetime, and the corners that once gave 500s.
TIMES = st.one_of(
    st.builds(
        _rfc3339,
        st.datetimes(
            min_value=datetime(1, 1, 1),
            max_value=datetime(9999, 12, 31, 23, 59, 59),
            timezones=st.one_of(
                st.none(),
                st.just(timezone.utc),
                st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m))),
            ),
        ),
        st.integers(0, 2),
    ),
    st.integers(-(10**20), 10**20).map(str),
    st.floats().map(repr),
    st.sampled_from(
        [
            "0",
            "0001-01-01T00:00:00Z",
            "0001-01-02",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-01:00",
            "1970-01-01T00:00:00Z",
            "2200-01-01T00:00:00Z",
            "nan",
            "-inf",
        ]
    ),
)
# What page parameters get besides random text: the seed's ids and the pages' own words.
WORDS = st.sampled_from(
    sorted(
        {c.tenant for c in CALLS}
        | {c.user for c in CALLS}
        | {c.session for c in CALLS}
        | {c.model for c in CALLS}
        | {c.feature for c in CALLS}
        | {"", HOSTILE, "cost", "tenant", "last_seen", "asc", "desc", "error", "ok"}
        | {"1h", "24h", "7d", "30d", "@@@", "eyJvIjo1MH0", "eyJ0IjoiMDAwMS0wMS0wMSJ9"}
    )
)
VALUES = st.one_of(WORDS, st.text(max_size=40), TIMES)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data: Path = tmp_path_factory.mktemp("fuzz") / "data"
    with seeded_server(data, seed) as running:
        yield running


@pytest.fixture(scope="module")
def tally() -> Iterator[dict[str, int]]:
    """Requests sent and seconds spent, printed at the end (pytest -s shows it)."""
    counts = {"api": 0, "pages": 0}
    started = time.monotonic()
    yield counts
    print(f"\nfuzz: {counts} requests in {time.monotonic() - started:.1f} s")


def _api_operations(site: RunningServer) -> list[Any]:
    schema = schemathesis.openapi.from_url(site.url + "/openapi.json", config=schemathesis.Config())
    ops = [r.ok() for r in schema.get_all_operations()]
    return [op for op in ops if op.method.upper() == "GET"]


def _takes(op: Any, name: str) -> bool:
    return any(p.name == name for p in op.query)


def _check(resp: Any, what: str) -> None:
    assert resp.status_code < 500, f"{what} -> {resp.status_code}: {resp.text[:500]}"
    if resp.status_code >= 400 and "json" in resp.headers.get("content-type", ""):
        error = resp.json()["error"]
        assert error["code"] and error["message"], what


def test_api_fuzz_has_no_server_errors(site: RunningServer, tally: dict[str, int]) -> None:
    """schemathesis over every GET operation of /openapi.json (schema-fitting and
    schema-breaking values), with arbitrary times in ``from``/``to``."""
    import requests

    operations = _api_operations(site)
    assert len(operations) >= 10, [op.label for op in operations]
    auth = {"authorization": f"Bearer {site.admin_key}"}
    with requests.Session() as session:
        for op in operations:
            _fuzz_operation(op, session, auth, tally)


def _fuzz_operation(op: Any, session: Any, auth: dict[str, str], tally: dict[str, int]) -> None:
    cases = st.one_of(
        op.as_strategy(generation_mode=GenerationMode.POSITIVE),
        op.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @SETTINGS
    @given(case=cases, times=st.lists(TIMES, min_size=2, max_size=2), mix=st.booleans())
    def run(case: Any, times: list[str], mix: bool) -> None:
        if mix:
            for name, value in zip(TIME_PARAMS, times, strict=True):
                if _takes(op, name):
                    case.query = {**(case.query or {}), name: value}
        tally["api"] += 1
        resp = case.call(session=session, headers=auth, timeout=30)
        _check(resp, f"{op.label} {case.path_parameters} {case.query}")

    run()


def _pages(site: RunningServer) -> list[tuple[str, list[str]]]:
    """(path, query parameter names) of every dashboard page route."""
    from tenantscope.server.app import create_app

    return [
        (r.path, [q.lstrip("!") for q in r.query])
        for r in app_routes(create_app(services=site.services))
        if "GET" in r.methods and not r.include_in_schema and not r.path.startswith(NOT_PAGES)
    ]


def test_pages_fuzz_has_no_server_errors(site: RunningServer, tally: dict[str, int]) -> None:
    """Every dashboard page with any subset of its own query parameters set to arbitrary
    text, ids, words and times (the trace page with arbitrary ids in its path too)."""
    pages = _pages(site)
    assert {"/", "/tenants", "/tenant", "/traces", "/sla"} <= {p for p, _ in pages}
    with httpx.Client(
        base_url=site.url, timeout=30, headers=site.client.headers, follow_redirects=False
    ) as client:
        for path, names in pages:
            _fuzz_page(client, path, names, tally)


def _fuzz_page(client: httpx.Client, path: str, names: list[str], tally: dict[str, int]) -> None:
    params = st.dictionaries(st.sampled_from(names), st.one_of(TIMES, VALUES), max_size=len(names))
    # the seed's first trace, or any text (quoted: it is a path segment)
    ids = st.one_of(st.just(f"{1:032x}"), st.text(min_size=1, max_size=40))

    @settings(SETTINGS, max_examples=PAGE_EXAMPLES)
    @given(query=params, trace_id=ids)
    def run(query: dict[str, str], trace_id: str) -> None:
        url = path.replace("{trace_id}", quote(trace_id, safe=""))
        tally["pages"] += 1
        resp = client.get(url, params=query, headers={"accept": "text/html"})
        _check(resp, f"{url} {query}")

    run()
