"""The isolation matrix (tests/server/test_access_matrix.py) for tenants signed in with
their identity provider's token: every route of the app, as a bearer JWT and as the
dashboard session a sign-in link makes, must answer exactly what a tenant key of that
tenant gets, and show nothing of another tenant."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer, seeded_server
from tests.server.test_access_matrix import (
    ACME,
    GLOBEX,
    KIND,
    ROUTE_PATHS,
    ROUTES,
    Caller,
    Matrix,
    check,
    probes,
    seed_tenants,
)
from tests.server.test_jwt import AUD, SECRET, make_token

ISSUER = "https://saas.example"
# the sign-in and sign-out routes take keys or end sessions: tests/server/test_jwt.py
SKIPPED = {"login", "login_jwt", "logout"}


def _session(client: httpx.Client, token: str) -> str:
    resp = client.get("/login/jwt", params={"token": token, "next": "/"})
    assert resp.status_code == 303, resp.text
    session = resp.cookies["ts_session"]
    client.cookies.clear()
    return session


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    settings = {"jwt_secret": SECRET, "jwt_issuer": ISSUER, "jwt_audience": AUD}
    data = tmp_path_factory.mktemp("jwt-matrix") / "data"
    with seeded_server(data, seed_tenants, **settings) as srv:
        transport = httpx.HTTPTransport(local_address="127.0.0.41")
        with httpx.Client(base_url=srv.url, transport=transport, timeout=30) as client:
            callers = []
            for tenant in (ACME, GLOBEX):
                token = make_token(
                    SECRET, "HS256", ISSUER, tenant_id=tenant.tenant_id, exp=2**31 - 1
                )
                name = f"jwt-{tenant.tenant_id}"
                callers.append(Caller(name, "tenant", tenant, token))
                callers.append(
                    Caller(f"{name}-session", "tenant", tenant, "", "", _session(client, token))
                )
            yield Matrix(srv, callers, client)


@pytest.mark.parametrize("path", [p for p in ROUTE_PATHS if KIND[p] not in SKIPPED])
def test_route_for_every_jwt_caller(matrix: Matrix, path: str) -> None:
    problems: list[str] = []
    for route in [r for r in ROUTES if r.path == path]:
        for caller in matrix.callers:
            for probe in probes(route, caller, matrix):
                problems += check(matrix, route, caller, probe)
    assert not problems, "\n".join(problems)


def test_the_matrix_has_jwt_callers(matrix: Matrix) -> None:
    srv: RunningServer = matrix.srv
    assert srv.services.jwt is not None
    assert [c.name for c in matrix.callers if c.session] == [
        "jwt-acme-own-session",
        "jwt-globex-foreign-session",
    ]
