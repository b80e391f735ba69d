"""API keys: how they look, how they are made and checked.

A key reads ``<prefix>_<key_id>_<secret>``; the prefix names its role so a key pasted in
the wrong place is recognisable (``tsa`` admin, ``tsi`` ingest, ``tsr`` reader, ``tst``
tenant). Only ``sha256(secret)`` is stored: the secret is 256 random bits, so a slow
password hash would add nothing. Checks compare hashes in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from tenantscope.errors import ValidationFailed
from tenantscope.query.scope import Scope
from tenantscope.storage.base import ROLES, SYSTEM, Actor, ApiKey, ConfigStore

PREFIXES: dict[str, str] = {"admin": "tsa", "ingest": "tsi", "reader": "tsr", "tenant": "tst"}
_ROLE_OF_PREFIX = {v: k for k, v in PREFIXES.items()}
# What each role may do; routes name the capability they need (server/access.py).
CAN: dict[str, frozenset[str]] = {
    "admin": frozenset({"read", "read_all", "ingest", "admin"}),
    "reader": frozenset({"read", "read_all"}),
    "tenant": frozenset({"read"}),
    "ingest": frozenset({"ingest"}),
}
# How long a checked key is trusted without asking the store again: a key revoked by the
# CLI (another process) stops working within this time.
CACHE_SECONDS = 5.0
# last_used_at is written at most this often per key (a write per request would be waste).
TOUCH_SECONDS = 60.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's role and, for tenant keys (and bound ingest keys), its
    tenant. A tenant signed in with its identity provider's token (server/jwt_auth.py)
    is a tenant without a key: ``jwt`` is set and ``name`` says whose token it was."""

    role: str
    tenant_id: str | None = None
    key_id: str | None = None
    name: str = ""  # the key's label (or the token's subject and issuer), for the audit log
    jwt: bool = False

    def can(self, capability: str) -> bool:
        return capability in CAN.get(self.role, frozenset())

    def actor(self, kind: str) -> Actor:
        """This caller as the audit log records it; ``kind`` says how it came (``api``
        with a key, ``session`` through a dashboard form)."""
        known = self.key_id or self.jwt
        name = self.name if known else "no authentication (--insecure-no-auth)"
        return Actor(kind, key_id=self.key_id, name=name, role=self.role)

    @property
    def sender(self) -> str:
        """Who this caller is to the writer (its key id, "" without keys): its reads wait
        for what it sent (``BatchWriter.wait_applied``)."""
        return self.key_id or ""

    @property
    def scope(self) -> Scope:
        """The query scope: one tenant for tenant keys, everything for the others that
        may read. Never taken from a request parameter."""
        if self.role == "tenant" and self.tenant_id is not None:
            return Scope.tenant(self.tenant_id)
        return Scope.all()


INSECURE = Principal(role="admin")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(role: str, name: str = "", tenant_id: str | None = None) -> tuple[ApiKey, str]:
    """A new key (to store) and its token (to show once)."""
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = f"{PREFIXES[role]}_{key_id}_{secret}"
    key = ApiKey(
        key_id=key_id,
        role=role,
        name=name,
        tenant_id=tenant_id,
        secret_hash=hash_secret(secret),
        created_at=datetime.now(timezone.utc),
    )
    return key, token


def issue_key(
    config: ConfigStore,
    role: str,
    name: str = "",
    tenant_id: str | None = None,
    *,
    actor: Actor = SYSTEM,
) -> tuple[ApiKey, str]:
    """``new_key``, stored (and audited as ``actor``'s): (the stored key, its token to
    show once)."""
    key, token = new_key(role, name, tenant_id)
    return config.add_api_key(key, actor=actor), token


def split_token(token: str) -> tuple[str, str, str] | None:
    """(role, key_id, secret) of a well-formed token, else None."""
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] not in _ROLE_OF_PREFIX or not parts[1] or not parts[2]:
        return None
    return _ROLE_OF_PREFIX[parts[0]], parts[1], parts[2]


class KeyChecker:
    """Checks tokens against the config store, with a short cache."""

    def __init__(self, store: ConfigStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._touched: dict[str, float] = {}

    def principal(self, token: str) -> Principal | None:
        parts = split_token(token)
        if parts is None:
            return None
        role, key_id, secret = parts
        key = self._key(key_id)
        if key is None or not key.active or key.role != role:
            return None
        if not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
            return None
        self._touch(key_id)
        return Principal(role=key.role, tenant_id=key.tenant_id, key_id=key.key_id, name=key.name)

    def cached_principal(self, token: str) -> Principal | None:
        """The principal of ``token`` when its key is in the cache and fresh (no store
        read: safe on the event loop), else None (then ask ``principal``)."""
        parts = split_token(token)
        if parts is None:
            return None
        role, key_id, secret = parts
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is None or time.monotonic() - hit[0] >= CACHE_SECONDS:
            return None
        key = hit[1]
        if key is None or not key.active or key.role != role:
            return None
        if not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
            return None
        return Principal(role=key.role, tenant_id=key.tenant_id, key_id=key.key_id, name=key.name)

    def principal_of_key_id(self, key_id: str) -> Principal | None:
        """For a signed session that names its key: still there and not revoked?"""
        key = self._key(key_id)
        if key is None or not key.active:
            return None
        return Principal(role=key.role, tenant_id=key.tenant_id, key_id=key.key_id, name=key.name)

    def known(self, key_id: str) -> bool:
        """Is there an active key with this id (whatever the secret)?"""
        key = self._key(key_id)
        return key is not None and key.active

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)

    def _key(self, key_id: str) -> ApiKey | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        key = self._store.get_api_key(key_id)
        with self._lock:
            if len(self._cache) > 10_000:  # random ids tried by a scanner: don't grow
                self._cache.clear()
            self._cache[key_id] = (now, key)
        return key

    def _touch(self, key_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._touched.get(key_id)
            if last is not None and now - last < TOUCH_SECONDS:
                return
            self._touched[key_id] = now
        try:
            self._store.touch_api_key(key_id, datetime.now(timezone.utc))
        except Exception:  # a busy config store must not fail the request
            pass
