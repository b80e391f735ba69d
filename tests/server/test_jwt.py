"""Sign-in with the operator's identity provider (JWT), against a real server.

Tokens are really signed (PyJWT with RSA and EC keys made by cryptography), the JWKS is
served by a real HTTP server on a free port, and the tenantscope server is the real one
(tests/conftest.py). Requests that must not spend another test's failure budget come from
their own loopback addresses."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tenantscope.errors import ConfigError
from tenantscope.server.jwt_auth import JwtIdentity, JwtRefused, JwtVerifier
from tenantscope.server.settings import Settings
from tests.conftest import RunningServer, seeded_server
from tests.server.test_access_matrix import ACME, FROM, GLOBEX, TO, seed_tenants

AUD = "tenantscope-portal"
SECRET = "a-shared-secret-of-at-least-32-characters!"
CSRF = "jwt-csrf-0123456789abcdef"
RANGE = {"from": FROM, "to": TO}
DROP = object()  # a claim left out of the token


# --- the identity provider: keys and a JWKS served over HTTP ----------------------------------
@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        algorithm = RSAAlgorithm if self.alg.startswith(("RS", "PS")) else ECAlgorithm
        out: dict[str, Any] = json.loads(algorithm.to_jwk(public))
        return {**out, "kid": self.kid, "use": "sig", "alg": self.alg}


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


@dataclass
class IdentityProvider:
    """A JWKS endpoint on a free port; ``keys`` is what it serves now."""

    url: str = ""
    keys: list[SigningKey] = field(default_factory=list)
    fetches: int = 0

    @property
    def issuer(self) -> str:
        return self.url.rsplit("/", 1)[0]

    def token(self, key: SigningKey | None = None, *, kid: Any = "", **claims: Any) -> str:
        """A token signed with ``key`` (the first served key by default), for acme,
        valid 10 minutes; ``claims`` override (DROP leaves one out)."""
        key = key or self.keys[0]
        return make_token(
            key.private, key.alg, self.issuer, kid=key.kid if kid == "" else kid, **claims
        )


def make_token(key: Any, alg: str, issuer: str, *, kid: Any = None, **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": issuer,
        "aud": AUD,
        "sub": "user-ann",
        "tenant_id": ACME.tenant_id,
        "iat": now,
        "exp": now + 600,
        **claims,
    }
    payload = {k: v for k, v in payload.items() if v is not DROP}
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


@contextmanager
def http_server(page: Callable[[], tuple[str, bytes]]) -> Iterator[int]:
    """A real HTTP server on a free loopback port answering every GET with ``page()``
    (content type, body); yields the port, stops when left."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            content_type, body = page()
            self.send_response(200)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def serving_jwks(provider: IdentityProvider) -> Iterator[IdentityProvider]:
    """``provider``'s JWKS served over HTTP (what it serves follows ``provider.keys``)."""

    def jwks() -> tuple[str, bytes]:
        provider.fetches += 1
        return "application/json", json.dumps({"keys": [k.jwk() for k in provider.keys]}).encode()

    with http_server(jwks) as port:
        provider.url = f"http://127.0.0.1:{port}/idp/jwks.json"
        yield provider


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with serving_jwks(IdentityProvider(keys=[rsa_key("rsa-1"), ec_key("ec-1")])) as provider:
        yield provider


def jwks_settings(idp: IdentityProvider, **given: Any) -> dict[str, Any]:
    return {
        "jwt_jwks_url": idp.url,
        "jwt_issuer": idp.issuer,
        "jwt_audience": AUD,
        **given,
    }


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, idp: IdentityProvider) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("jwt") / "data"
    with seeded_server(data, seed_tenants, **jwks_settings(idp)) as running:
        yield running


def client_from(srv: RunningServer, address: str) -> httpx.Client:
    return httpx.Client(
        base_url=srv.url, transport=httpx.HTTPTransport(local_address=address), timeout=30
    )


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def jar(cookies: dict[str, str]) -> dict[str, str]:
    return {"cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


@pytest.fixture
def c(srv: RunningServer) -> Iterator[httpx.Client]:
    with client_from(srv, "127.0.0.21") as client:
        yield client


# --- the API ---------------------------------------------------------------------------------
def test_a_token_reads_its_own_tenant_only(
    srv: RunningServer, idp: IdentityProvider, c: httpx.Client
) -> None:
    for key in idp.keys:  # RS256 and ES256 alike
        token = idp.token(key)
        tenants = c.get("/api/tenants", params=RANGE, headers=bearer(token))
        assert tenants.status_code == 200, tenants.text
        assert [t["tenant_id"] for t in tenants.json()["items"]] == [ACME.tenant_id]
        own = c.get(f"/api/tenants/{ACME.tenant_id}", params=RANGE, headers=bearer(token))
        assert own.status_code == 200 and own.json()["tenant_id"] == ACME.tenant_id
        traces = c.get("/api/traces", params=RANGE, headers=bearer(token)).json()["items"]
        assert {t["trace_id"] for t in traces} == set(ACME.trace_ids())
        # another tenant's objects answer as missing ones do, never 403
        for path in (
            f"/api/tenants/{GLOBEX.tenant_id}",
            f"/api/tenants/{GLOBEX.tenant_id}/usage",
            f"/api/traces/{GLOBEX.trace_ids()[0]}",
        ):
            params = {} if path.startswith("/api/traces/") else RANGE
            foreign = c.get(path, params=params, headers=bearer(token))
            assert foreign.status_code == 404, (path, foreign.text)
            assert GLOBEX.name not in foreign.text
        # the dashboard's tenant page, with the token as the key
        page = c.get("/tenant", params={"tenant_id": ACME.tenant_id}, headers=bearer(token))
        assert page.status_code == 200 and ACME.name in page.text
        assert GLOBEX.tenant_id not in page.text


def test_a_token_may_do_no_more_than_a_tenant_key(
    srv: RunningServer, idp: IdentityProvider, c: httpx.Client
) -> None:
    token = idp.token()
    refused = [
        ("GET", "/api/keys", {}),
        ("POST", "/api/keys", {"json": {"role": "admin"}}),
        ("GET", "/api/audit", {}),
        ("GET", "/api/tenant-suggestions", {}),
        ("GET", "/metrics", {}),
        ("GET", "/tenants", {}),
        ("GET", "/prices", {}),
        ("POST", "/v1/events", {"json": []}),
        ("POST", "/v1/traces", {"json": {}}),
        ("POST", "/v1/limits/check", {"json": {"tenant_id": ACME.tenant_id}}),
        ("POST", "/api/alerts/rules", {"json": {}}),
    ]
    for method, path, kwargs in refused:
        resp = c.request(method, path, headers=bearer(token), **kwargs)
        assert resp.status_code == 403, (path, resp.text)
        assert "tenant" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.token(exp=int(time.time()) - 120), "expired"),
        (lambda p: p.token(nbf=int(time.time()) + 600), "not valid yet"),
        (lambda p: p.token(iss="https://other-idp.example"), "issuer (iss)"),
        (lambda p: p.token(aud="another-app"), "audience (aud)"),
        (lambda p: p.token(tenant_id=DROP), "no tenant claim 'tenant_id'"),
        (lambda p: p.token(tenant_id=""), "tenant claim 'tenant_id' must be"),
        (lambda p: p.token(tenant_id=["a", "b"]), "tenant claim 'tenant_id' must be"),
        (lambda p: p.token(exp=DROP), "no 'exp' claim"),
        (lambda p: p.token(iss=DROP), "no 'iss' claim"),
        (lambda p: p.token(aud=DROP), "no 'aud' claim"),
        (lambda p: p.token(kid=None), "names no signing key (kid)"),
        (lambda p: p.token(kid="nobody-knows-me"), "does not hold"),
        # signed with another RSA key under a served key's id
        (lambda p: p.token(SigningKey("rsa-1", "RS256", rsa_key("x").private)), "signature"),
        # a served EC key's id on an RSA signature: the key does not fit the algorithm
        (lambda p: p.token(SigningKey("ec-1", "RS256", p.keys[0].private)), "not valid"),
        # alg none: no signature at all
        (lambda p: jwt.encode(_claims(p), None, algorithm="none"), "'none'"),
        # algorithm confusion: HS256 "signed" with the provider's public key
        (lambda p: _hs256_with_public_key(p), "'HS256'"),
        (lambda p: "not-a.jwt.atall", "not a well-formed JWT"),
        (lambda p: p.token()[:-6] + "AAAAAA", "signature"),
    ],
)
def test_bad_tokens_are_refused_saying_why(
    srv: RunningServer, idp: IdentityProvider, make: Any, says: str
) -> None:
    with client_from(srv, "127.0.0.22") as client:
        resp = client.get("/api/tenants", params=RANGE, headers=bearer(make(idp)))
    assert resp.status_code == 401, resp.text
    message = resp.json()["error"]["message"]
    assert message.startswith("the token was refused: ") and says in message, message
    assert resp.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    # nothing the server checks against is told: not the issuer, audience or keys
    assert idp.issuer not in resp.text and AUD not in resp.text
    assert all(k.jwk().get("n", k.jwk().get("x")) not in resp.text for k in idp.keys)


def _claims(p: IdentityProvider) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": p.issuer, "aud": AUD, "tenant_id": ACME.tenant_id, "exp": now + 600}


def _hs256_with_public_key(p: IdentityProvider) -> str:
    pem = (
        p.keys[0]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode())
    body = jwt.utils.base64url_encode(json.dumps(_claims(p)).encode())
    import hashlib
    import hmac

    mac = hmac.new(pem, header + b"." + body, hashlib.sha256).digest()
    return (header + b"." + body + b"." + jwt.utils.base64url_encode(mac)).decode()


def test_refused_tokens_spend_the_failure_budget(srv: RunningServer, idp: IdentityProvider) -> None:
    """Past 20 refused tokens a minute a client gets 429, like a key guesser; its valid
    tokens still work."""
    with client_from(srv, "127.0.0.23") as client:
        bad = idp.token(aud="another-app")
        for i in range(20):
            resp = client.get("/api/tenants", headers=bearer(bad))
            assert resp.status_code == 401, (i, resp.text)
        resp = client.get("/api/tenants", headers=bearer(bad))
        assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
        assert client.get("/api/tenants", headers=bearer(idp.token())).status_code == 200


def test_unknown_key_ids_do_not_flood_the_identity_provider(
    srv: RunningServer, idp: IdentityProvider
) -> None:
    with client_from(srv, "127.0.0.24") as client:
        assert client.get("/api/tenants", headers=bearer(idp.token())).status_code == 200
        before = idp.fetches
        for i in range(10):
            resp = client.get("/api/tenants", headers=bearer(idp.token(kid=f"made-up-{i}")))
            assert resp.status_code == 401
    # one refetch at most for the lot (JWKS_REFETCH_S), not one per token
    assert idp.fetches - before <= 1


# --- key rotation ----------------------------------------------------------------------------
def test_key_rotation_without_a_restart(tmp_path: Path, idp: IdentityProvider) -> None:
    """The provider adds a key and signs with it: accepted at once (an unknown kid reads
    the JWKS again). It drops the old key: tokens signed with it are refused once the
    cached JWKS is read again."""
    old, new = rsa_key("rotate-old"), ec_key("rotate-new")
    served = idp.keys
    idp.keys = [old]
    try:
        with (
            seeded_server(
                tmp_path / "data", seed_tenants, **jwks_settings(idp, jwt_jwks_cache_s=0.5)
            ) as running,
            client_from(running, "127.0.0.25") as client,
        ):

            def status(key: SigningKey) -> int:
                resp = client.get("/api/tenants", headers=bearer(idp.token(key)))
                return resp.status_code

            assert status(old) == 200
            assert status(new) == 401  # not published yet
            idp.keys = [old, new]
            time.sleep(0.6)  # past the refetch pause a made-up kid is held to
            assert status(new) == 200, "a new key is used without a restart"
            assert status(old) == 200
            idp.keys = [new]
            # the old key keeps working only until the cached JWKS is read again
            deadline = time.monotonic() + 10
            while status(old) == 200:
                assert time.monotonic() < deadline, "a removed key is still accepted"
                time.sleep(0.2)
            resp = client.get("/api/tenants", headers=bearer(idp.token(old)))
            assert "does not hold" in resp.json()["error"]["message"]
            assert status(new) == 200
    finally:
        idp.keys = served


def test_an_unreachable_provider_keeps_the_keys_it_had(tmp_path: Path) -> None:
    """The JWKS endpoint goes away: tokens signed with keys fetched before still work
    (for a while); with no keys ever fetched the answer is 503, not the caller's fault."""
    with contextlib.ExitStack() as stack:
        provider = stack.enter_context(serving_jwks(IdentityProvider(keys=[rsa_key("kept")])))
        settings = jwks_settings(provider, jwt_jwks_cache_s=0.2, jwt_jwks_timeout_s=1)
        with seeded_server(tmp_path / "data", seed_tenants, **settings) as running:
            with client_from(running, "127.0.0.26") as client:
                token = provider.token()
                assert client.get("/api/tenants", headers=bearer(token)).status_code == 200
                stack.close()  # the provider goes away
                time.sleep(0.3)  # the cache has expired: the next token fetches, and fails
                resp = client.get("/api/tenants", headers=bearer(provider.token()))
                assert resp.status_code == 200, resp.text
    # a server that never got the keys: 503, saying so
    with seeded_server(tmp_path / "data2", seed_tenants, **settings) as running:
        with client_from(running, "127.0.0.26") as client:
            resp = client.get("/api/tenants", headers=bearer(provider.token()))
            assert resp.status_code == 503, resp.text
            assert "JWKS" in resp.json()["error"]["message"]


# --- a shared secret (HS256) -----------------------------------------------------------------
def test_a_shared_secret(tmp_path: Path, idp: IdentityProvider) -> None:
    issuer = "https://app.example"
    settings = {"jwt_secret": SECRET, "jwt_issuer": issuer, "jwt_audience": AUD}
    with (
        seeded_server(tmp_path / "data", seed_tenants, **settings) as running,
        client_from(running, "127.0.0.27") as client,
    ):
        good = make_token(SECRET, "HS256", issuer, tenant_id=GLOBEX.tenant_id)
        resp = client.get("/api/tenants", params=RANGE, headers=bearer(good))
        assert resp.status_code == 200, resp.text
        assert [t["tenant_id"] for t in resp.json()["items"]] == [GLOBEX.tenant_id]
        for bad, says in (
            (make_token(SECRET[::-1], "HS256", issuer), "signature"),
            (make_token(SECRET * 2, "HS512", issuer), "'HS512'"),  # not among the accepted
            (make_token(idp.keys[0].private, "RS256", issuer, kid="rsa-1"), "'RS256'"),
            (make_token(SECRET, "HS256", issuer, exp=int(time.time()) - 60), "expired"),
        ):
            resp = client.get("/api/tenants", headers=bearer(bad))
            assert resp.status_code == 401 and says in resp.json()["error"]["message"]
            assert SECRET not in resp.text
        # API keys keep working beside tokens
        assert client.get("/api/tenants", headers=bearer(running.admin_key)).status_code == 200


# --- the portal: a sign-in link ---------------------------------------------------------------
def test_a_sign_in_link_makes_a_tenant_session(srv: RunningServer, idp: IdentityProvider) -> None:
    expires = int(time.time()) + 900
    token = idp.token(exp=expires)
    nxt = f"/tenant?tenant_id={ACME.tenant_id}&range=24h"
    with client_from(srv, "127.0.0.28") as client:
        resp = client.get("/login/jwt", params={"token": token, "next": nxt})
        assert resp.status_code == 303, resp.text
        assert resp.headers["location"] == nxt
        assert resp.headers["referrer-policy"] == "no-referrer"
        cookie = resp.headers["set-cookie"]
        assert cookie.startswith("ts_session=") and "HttpOnly" in cookie
        assert re.search(r"SameSite=lax", cookie, re.I) and "Path=/" in cookie
        max_age = int(re.findall(r"Max-Age=(\d+)", cookie)[0])
        assert 880 <= max_age <= 900  # until the token expires
        session = resp.cookies["ts_session"]
        assert token not in session
        client.cookies.clear()
        # the tenant page it was sent to, and nothing of another tenant
        page = client.get(nxt, headers=jar({"ts_session": session}))
        assert page.status_code == 200 and ACME.name in page.text
        assert all(s not in page.text for s in GLOBEX.strings())
        assert f"tenant · {ACME.tenant_id}" in page.text  # who is signed in
        overview = client.get("/", headers=jar({"ts_session": session}))
        assert overview.status_code == 303
        assert overview.headers["location"].startswith(f"/tenant?tenant_id={ACME.tenant_id}")
        foreign = client.get(
            "/tenant", params={"tenant_id": GLOBEX.tenant_id}, headers=jar({"ts_session": session})
        )
        assert foreign.status_code == 404
        api = client.get("/api/traces", params=RANGE, headers=jar({"ts_session": session}))
        assert {t["trace_id"] for t in api.json()["items"]} == set(ACME.trace_ids())
        assert client.get("/tenants", headers=jar({"ts_session": session})).status_code == 403
        # signed in, the sign-in page sends on
        again = client.get(
            "/login", params={"next": "/traces"}, headers=jar({"ts_session": session})
        )
        assert again.status_code == 303 and again.headers["location"] == "/traces"
        # signing out ends the session on the server: a copy of the cookie stops working
        out = client.post(
            "/logout", data={"csrf": CSRF}, headers=jar({"ts_session": session, "ts_csrf": CSRF})
        )
        assert out.status_code == 303
        client.cookies.clear()
        after = client.get(nxt, headers=jar({"ts_session": session}))
        assert after.status_code == 303 and after.headers["location"].startswith("/login?next=")


def test_a_session_ends_with_its_token(srv: RunningServer, idp: IdentityProvider) -> None:
    # the server allows 30 s of clock difference on exp: a token that expires in 2 s
    # is still valid, and its session lasts those 2 s
    token = idp.token(exp=int(time.time()) + 2)
    with client_from(srv, "127.0.0.29") as client:
        resp = client.get("/login/jwt", params={"token": token, "next": "/traces"})
        assert resp.status_code == 303
        session = resp.cookies["ts_session"]
        client.cookies.clear()
        assert client.get("/traces", headers=jar({"ts_session": session})).status_code == 200
        time.sleep(3.1)
        late = client.get("/traces", headers=jar({"ts_session": session}))
        assert late.status_code == 303 and late.headers["location"].startswith("/login")


def test_a_bad_sign_in_link_says_why(srv: RunningServer, idp: IdentityProvider) -> None:
    with client_from(srv, "127.0.0.30") as client:
        expired = idp.token(exp=int(time.time()) - 300)
        resp = client.get("/login/jwt", params={"token": expired, "next": "/tenant"})
        assert resp.status_code == 401 and "ts_session" not in resp.headers.get("set-cookie", "")
        assert "text/html" in resp.headers["content-type"]
        assert "expired" in resp.text and "sign-in link" in resp.text
        resp = client.get("/login/jwt", params={"next": "/tenant"})
        assert resp.status_code == 400 and "carries no token" in resp.text
        # a tenantscope key is no token (sign in with keys at /login)
        key = srv.key("admin")
        resp = client.get("/login/jwt", params={"token": key})
        assert resp.status_code == 401 and "ts_session" not in resp.headers.get("set-cookie", "")


def test_the_sign_in_form_takes_a_token_with_its_csrf_token(
    srv: RunningServer, idp: IdentityProvider
) -> None:
    token = idp.token()
    with client_from(srv, "127.0.0.31") as client:
        page = client.get("/login")
        assert 'data-testid="login-jwt"' in page.text and 'action="/login/jwt"' in page.text
        client.cookies.clear()
        form = {"token": token, "next": "/users", "csrf": CSRF}
        resp = client.post("/login/jwt", data=form, headers=jar({"ts_csrf": CSRF}))
        assert resp.status_code == 303 and resp.headers["location"] == "/users"
        assert "ts_session=" in resp.headers["set-cookie"]
        client.cookies.clear()
        # without the CSRF token, or another site's: refused
        for sent, cookie in ((None, CSRF), ("other", CSRF), (CSRF, None)):
            data = {k: v for k, v in {**form, "csrf": sent}.items() if v is not None}
            headers = jar({"ts_csrf": cookie}) if cookie else {}
            resp = client.post("/login/jwt", data=data, headers=headers)
            assert resp.status_code == 403, resp.text
            assert "ts_session" not in resp.headers.get("set-cookie", "")
            client.cookies.clear()


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "//evil.example/tenant",
        "https://evil.example",
        "http:evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "///evil.example",
        "%2F%2Fevil.example",
    ],
)
def test_a_sign_in_link_redirects_only_here(
    srv: RunningServer, idp: IdentityProvider, target: str
) -> None:
    with client_from(srv, "127.0.0.32") as client:
        resp = client.get("/login/jwt", params={"token": idp.token(), "next": target})
        assert resp.status_code == 303
        assert resp.headers["location"] == "/", resp.headers["location"]
        # the same through the query string written by hand (no client-side encoding)
        raw = client.get(f"/login/jwt?token={idp.token()}&next={quote(target, safe='/:%')}")
        assert raw.status_code == 303 and raw.headers["location"] == "/"


def test_sign_in_links_are_off_unless_configured(tmp_path: Path, idp: IdentityProvider) -> None:
    with (
        seeded_server(tmp_path / "data", seed_tenants) as running,
        client_from(running, "127.0.0.33") as client,
    ):
        token = idp.token()
        resp = client.get("/login/jwt", params={"token": token})
        assert resp.status_code == 404 and "not turned on" in resp.text
        assert 'data-testid="login-jwt"' not in client.get("/login").text
        resp = client.get("/api/tenants", headers=bearer(token))
        assert resp.status_code == 401
        assert "JWT sign-in is off" in resp.json()["error"]["message"]


def test_sessions_end_when_jwt_sign_in_is_turned_off(tmp_path: Path, idp: IdentityProvider) -> None:
    data = tmp_path / "data"
    with seeded_server(data, seed_tenants, **jwks_settings(idp)) as running:
        with client_from(running, "127.0.0.34") as client:
            resp = client.get("/login/jwt", params={"token": idp.token(), "next": "/traces"})
            session = resp.cookies["ts_session"]
    with seeded_server(data, lambda svc: None) as running:  # the same data dir, JWT off
        with client_from(running, "127.0.0.34") as client:
            page = client.get("/traces", headers=jar({"ts_session": session}))
            assert page.status_code == 303 and page.headers["location"].startswith("/login")


# --- the verifier and its settings ------------------------------------------------------------
def test_the_tenant_claim_may_be_nested_or_namespaced(tmp_path: Path) -> None:
    def verifier(claim: str) -> JwtVerifier:
        settings = Settings.load(
            env={},
            data_dir=tmp_path,
            jwt_secret=SECRET,
            jwt_issuer="https://app.example",
            jwt_audience=AUD,
            jwt_tenant_claim=claim,
        )
        found = JwtVerifier.from_settings(settings)
        assert found is not None
        return found

    def token(**claims: Any) -> str:
        return make_token(SECRET, "HS256", "https://app.example", tenant_id=DROP, **claims)

    nested = verifier("org.id")
    assert nested.verify(token(org={"id": "apex-legal"})).tenant_id == "apex-legal"
    assert nested.verify(token(org={"id": 4711})).tenant_id == "4711"  # numeric ids
    with pytest.raises(JwtRefused, match="no tenant claim 'org.id'"):
        nested.verify(token(org="apex-legal"))
    with pytest.raises(JwtRefused, match="must be a string"):
        nested.verify(token(org={"id": True}))
    namespaced = verifier("https://app.example/tenant")
    got = namespaced.verify(token(**{"https://app.example/tenant": "apex-legal"}))
    assert got == JwtIdentity("apex-legal", "user-ann", "https://app.example", got.expires)
    # who it was, for the audit log: no key id, the token's subject and issuer
    actor = got.principal.actor("api")
    assert actor.key_id is None and actor.role == "tenant"
    assert actor.name == "JWT user-ann from https://app.example"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"jwt_secret": SECRET, "jwt_jwks_url": "https://idp.example/jwks"}, "not both"),
        ({"jwt_secret": "short"}, "at least 32 bytes"),
        ({"jwt_jwks_url": "http://idp.example/jwks"}, "https://"),
        ({"jwt_jwks_url": "file:///etc/passwd"}, "https://"),
        ({"jwt_jwks_url": "https://idp.example/jwks", "jwt_algorithms": "RS256,HS256"}, "HS256"),
        ({"jwt_secret": SECRET, "jwt_algorithms": "RS256"}, "RS256"),
        ({"jwt_secret": SECRET, "jwt_algorithms": "none"}, "none"),
        ({"jwt_secret": SECRET, "jwt_issuer": ""}, "TENANTSCOPE_JWT_ISSUER"),
        ({"jwt_secret": SECRET, "jwt_audience": ""}, "TENANTSCOPE_JWT_AUDIENCE"),
        ({"jwt_secret": SECRET, "jwt_tenant_claim": "org..id"}, "TENANTSCOPE_JWT_TENANT_CLAIM"),
        ({"jwt_secret": SECRET, "jwt_jwks_cache_s": 0}, "TENANTSCOPE_JWT_JWKS_CACHE_S"),
        ({"jwt_secret": SECRET, "jwt_leeway_s": -1}, "TENANTSCOPE_JWT_LEEWAY_S"),
    ],
)
def test_jwt_settings_are_checked(tmp_path: Path, given: dict[str, Any], says: str) -> None:
    base = {"jwt_issuer": "https://app.example", "jwt_audience": AUD}
    with pytest.raises(ConfigError, match=re.escape(says)):
        Settings.load(env={}, data_dir=tmp_path, **{**base, **given})


def test_jwt_settings_defaults_and_environment(tmp_path: Path) -> None:
    off = Settings.load(env={}, data_dir=tmp_path)
    assert not off.jwt_on and JwtVerifier.from_settings(off) is None
    env = {
        "TENANTSCOPE_JWT_JWKS_URL": "https://idp.example/.well-known/jwks.json",
        "TENANTSCOPE_JWT_ISSUER": "https://idp.example/",
        "TENANTSCOPE_JWT_AUDIENCE": AUD,
        "TENANTSCOPE_JWT_TENANT_CLAIM": "org.id",
    }
    on = Settings.load(env=env, data_dir=tmp_path)
    assert on.jwt_on and on.jwt_algorithms == ("RS256", "ES256")
    assert on.jwt_tenant_claim == "org.id" and on.jwt_leeway_s == 30
    secret = Settings.load(
        env={
            "TENANTSCOPE_JWT_SECRET": SECRET,
            "TENANTSCOPE_JWT_ISSUER": "i",
            "TENANTSCOPE_JWT_AUDIENCE": "a",
        },
        data_dir=tmp_path,
    )
    assert secret.jwt_algorithms == ("HS256",)
    assert SECRET not in repr(secret)  # settings may be logged
