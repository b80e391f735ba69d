"""Sign-in with the operator's identity provider: a JWT as a tenant's credential.

A SaaS that already signs its users in can link (or send) its customers to their usage
pages without handing out tenantscope keys: its identity provider issues a JWT naming the
customer's tenant in a claim, and tenantscope accepts that token as a tenant key of that
tenant, for the JSON API (``Authorization: Bearer <jwt>``) and for a dashboard session
(``/login/jwt``, dashboard/login.py).

Tokens are checked by PyJWT, with the provider's public keys (a JWKS URL) or a shared
HS256 secret; the issuer, the audience and an expiry are required. What a refusal says is
meant for the person holding the token (what is wrong with it), never the secret, the
keys or the expected issuer and audience.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from tenantscope.errors import Unavailable
from tenantscope.server.keys import Principal, split_token
from tenantscope.server.settings import Settings
from tenantscope.storage.validation import MAX_TENANT_ID

log = logging.getLogger("tenantscope.server")

# A token naming a key id the cached JWKS lacks makes the JWKS be read again at once (the
# provider rotated its keys), but not more often than this: made-up key ids must not turn
# every request into a fetch from the provider.
JWKS_REFETCH_S = 10.0
# Fetched keys stay in use this much longer than ``jwt_jwks_cache_s`` while the provider
# cannot be reached, so a short outage of its JWKS endpoint does not sign everyone out.
JWKS_STALE_S = 3600.0
# Who a token names, as the audit log and the session cookie keep it (bounded: the cookie
# must stay under browsers' 4 KB).
MAX_NAME = 200


# The JWK key type each family of JWKS algorithms needs (settings.JWKS_ALGORITHMS).
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class JwtRefused(Exception):
    """The token is not accepted; the message says why, for the one who sent it."""


@dataclass(frozen=True)
class JwtIdentity:
    """Whom a verified token names: its tenant, and its subject and issuer for the audit
    log; ``expires`` is its ``exp`` (epoch seconds)."""

    tenant_id: str
    subject: str
    issuer: str
    expires: int

    @property
    def principal(self) -> Principal:
        """A tenant key's rights over this tenant: read only, scoped to it. No key id
        (none was used); the name says where the caller came from."""
        return Principal(
            role="tenant",
            tenant_id=self.tenant_id,
            name=f"JWT {self.subject or '(no sub)'} from {self.issuer}",
            jwt=True,
        )


# --- the session cookie's subject -------------------------------------------------------------
# A dashboard session names the key that signed in (server/sessions.py); a session made
# from a JWT names its identity instead, behind this mark (key ids never contain "~").
JWT_SESSION_MARK = "jwt~"


def session_subject(identity: JwtIdentity) -> str:
    """What a session made from ``identity`` names (signed with the cookie)."""
    raw = json.dumps([identity.tenant_id, identity.issuer, identity.subject]).encode()
    return JWT_SESSION_MARK + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def identity_of_session(subject: str) -> JwtIdentity | None:
    """The identity a session subject names, None when it names a key."""
    if not subject.startswith(JWT_SESSION_MARK):
        return None
    data = subject[len(JWT_SESSION_MARK) :]
    try:
        tenant, issuer, sub = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    except (ValueError, TypeError):
        return None
    if not all(isinstance(v, str) for v in (tenant, issuer, sub)):
        return None
    return JwtIdentity(tenant, sub, issuer, 0)


def looks_like_jwt(token: str) -> bool:
    """A bearer token that is not a tenantscope key but has a JWT's three parts."""
    return split_token(token) is None and token.count(".") == 2


# --- verification ----------------------------------------------------------------------------
class JwksKeys:
    """The identity provider's signing keys by key id, fetched with ``PyJWKClient`` and
    kept ``cache_s``. PyJWKClient's own cache is not used: it forgets the keys when they
    expire, so one failed fetch would refuse every token, and its refetch cooldown came
    in PyJWT 2.11. Here an unknown key id refetches at most every ``JWKS_REFETCH_S``, and
    a failed fetch keeps the last keys for ``JWKS_STALE_S``."""

    def __init__(self, url: str, cache_s: float, timeout_s: float) -> None:
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout_s)
        self._cache_s = cache_s
        self._refetch_s = min(JWKS_REFETCH_S, cache_s)
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # monotonic, of the last successful fetch
        self._tried_at: float | None = None  # of the last attempt, failed or not

    def key(self, kid: str) -> jwt.PyJWK:
        """The key ``kid`` names. Blocking (it may fetch the JWKS): call it in a thread."""
        now = time.monotonic()
        with self._lock:
            stale = self._fetched_at is None or now - self._fetched_at >= self._cache_s
            unknown = kid not in self._keys and (
                self._tried_at is None or now - self._tried_at >= self._refetch_s
            )
            if stale or unknown:
                self._fetch(now)
            found = self._keys.get(kid)
        if found is None:
            raise JwtRefused(
                f"the token is signed with key {kid[:64]!r}, which the identity provider's"
                " JWKS does not hold (an old or removed key, or a token from elsewhere)"
            )
        return found

    def _fetch(self, now: float) -> None:
        # one fetch at a time (under the lock): a burst of tokens after the cache expired
        # makes one request to the provider, not one each
        self._tried_at = now
        try:
            keys = self._client.get_signing_keys()
        except (jwt.PyJWTError, ValueError, OSError) as exc:
            # unreachable, not JSON, or no signing keys in it: keep the last keys a while
            if self._fetched_at is not None and now - self._fetched_at < JWKS_STALE_S:
                log.warning("JWKS fetch failed, using the keys fetched before: %s", exc)
                return
            log.error("JWKS fetch failed: %s", exc)
            raise Unavailable(
                "the identity provider's signing keys (JWKS) could not be fetched; try again"
                " later (the server log says why)"
            ) from None
        self._keys = {k.key_id: k for k in keys if k.key_id}
        self._fetched_at = now


class JwtVerifier:
    """Checks tokens against one identity provider's settings."""

    def __init__(self, settings: Settings) -> None:
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.algorithms = list(settings.jwt_algorithms)
        self.claim = settings.jwt_tenant_claim
        self.leeway = settings.jwt_leeway_s
        self._secret = settings.jwt_secret
        self._jwks = (
            JwksKeys(settings.jwt_jwks_url, settings.jwt_jwks_cache_s, settings.jwt_jwks_timeout_s)
            if settings.jwt_jwks_url
            else None
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtVerifier | None:
        return cls(settings) if settings.jwt_on else None

    def verify(self, token: str) -> JwtIdentity:
        """The identity of a valid token, else ``JwtRefused`` saying what is wrong.
        Blocking (it may fetch the JWKS): call it in a thread."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise JwtRefused("it is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            # "none" included: an unsigned token is refused before anything else
            raise JwtRefused(
                f"it is signed with {str(alg)[:20]!r}; this server accepts"
                f" {', '.join(self.algorithms)}"
            )
        key: Any
        if self._jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise JwtRefused("its header names no signing key (kid)")
            jwk = self._jwks.key(kid)
            # PyJWT would try the key with whatever algorithm the token names
            if _KEY_TYPE.get(str(alg)[:2]) != jwk.key_type:
                raise JwtRefused(
                    f"it is not valid: its algorithm {alg!r} does not fit key {kid[:64]!r}"
                    f" ({jwk.key_type})"
                )
            key = jwk.key
        else:
            key = self._secret
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise JwtRefused("it has expired (exp)") from None
        except jwt.ImmatureSignatureError:
            raise JwtRefused("it is not valid yet (nbf or iat is in the future)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise JwtRefused(f"it has no {exc.claim!r} claim") from None
        except jwt.InvalidIssuerError:
            raise JwtRefused("its issuer (iss) is not the one this server accepts") from None
        except jwt.InvalidAudienceError:
            raise JwtRefused("its audience (aud) is not this server") from None
        except jwt.InvalidSignatureError:
            raise JwtRefused("its signature does not verify (signed with another key?)") from None
        except jwt.DecodeError:
            raise JwtRefused("it is not a well-formed JWT") from None
        except (jwt.PyJWTError, TypeError, ValueError) as exc:  # e.g. a key of the wrong curve
            raise JwtRefused(f"it is not valid ({type(exc).__name__})") from None
        return JwtIdentity(
            tenant_id=self._tenant(claims),
            subject=_text(claims.get("sub")),
            issuer=_text(claims.get("iss")),
            expires=int(claims["exp"]),
        )

    def accepts_session(self, identity: JwtIdentity) -> bool:
        """Does a session made from a token still count? Only while JWT sign-in is on
        (this verifier exists) and for the issuer it accepts now."""
        return identity.issuer == _text(self.issuer)

    def _tenant(self, claims: Mapping[str, Any]) -> str:
        # the claim by its whole name first: namespaced claims such as
        # "https://example.com/tenant" contain dots themselves
        value: Any = claims.get(self.claim)
        if value is None and "." in self.claim:
            value = claims
            for part in self.claim.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            raise JwtRefused(f"it has no tenant claim {self.claim!r}")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # numeric organisation ids are common
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_TENANT_ID:
            raise JwtRefused(
                f"its tenant claim {self.claim!r} must be a string of 1 to {MAX_TENANT_ID}"
                " characters"
            )
        return value


def _text(value: Any) -> str:
    return str(value)[:MAX_NAME] if value is not None else ""
