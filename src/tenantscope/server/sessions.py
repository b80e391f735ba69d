"""Dashboard sessions: a signed cookie naming who signed in, with an expiry.

The cookie holds ``<subject>.<expires>.<session id>.<signature>`` (HMAC-SHA256 with a
secret kept in the data directory), so it reveals nothing secret and cannot be forged.
The subject is the key that signed in, and each request still checks that the key exists
and is not revoked; or, for a tenant signed in with its identity provider's token, that
tenant and the token's issuer and subject (server/jwt_auth.py: ``session_subject``),
valid until the token's own expiry at most. Signing out revokes the
session id on the server too (kept in the data directory until the session would have
expired), so a copy of the cookie stops working. CSRF tokens for the dashboard's forms are
a double-submitted random cookie, bound to nothing secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from pathlib import Path

SESSION_COOKIE = "ts_session"
CSRF_COOKIE = "ts_csrf"
SESSION_SECONDS = 12 * 3600
SECRET_FILE = "session.key"
REVOKED_FILE = "revoked-sessions.txt"


def load_secret(data_dir: Path) -> bytes:
    """The signing secret of this data directory, made on first use (mode 0600)."""
    path = data_dir / SECRET_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret


class SessionSigner:
    def __init__(self, secret: bytes, revoked_file: Path | None = None) -> None:
        self._secret = secret
        self._revoked_file = revoked_file
        self._lock = threading.Lock()
        self._revoked: dict[str, int] = self._load_revoked()

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def make(self, subject: str, seconds: int = SESSION_SECONDS) -> str:
        """A new session cookie for ``subject`` (a key id, or a JWT identity's
        ``session_subject``: neither holds a "."), valid ``seconds``."""
        payload = f"{subject}.{int(time.time()) + seconds}.{secrets.token_hex(8)}"
        return f"{payload}.{self._sign(payload)}"

    def _parse(self, value: str) -> tuple[str, int, str] | None:
        parts = value.split(".")
        if len(parts) != 4:
            return None
        subject, expires, sid, signature = parts
        if not hmac.compare_digest(signature, self._sign(f"{subject}.{expires}.{sid}")):
            return None
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return subject, int(expires), sid

    def read(self, value: str) -> str | None:
        """The subject (a key id, or a JWT identity's subject) of a valid, unexpired, not
        signed-out session cookie, else None."""
        parsed = self._parse(value)
        if parsed is None or parsed[2] in self._revoked:
            return None
        return parsed[0]

    def revoke(self, value: str) -> None:
        """Sign a session out for good (a copied cookie stops working too)."""
        parsed = self._parse(value)
        if parsed is None:
            return
        _, expires, sid = parsed
        with self._lock:
            self._revoked[sid] = expires
            if self._revoked_file is not None:
                with self._revoked_file.open("a", encoding="ascii") as f:
                    f.write(f"{sid} {expires}\n")

    def _load_revoked(self) -> dict[str, int]:
        """Signed-out sessions that would still be valid (expired ones are dropped, and
        the file is rewritten without them)."""
        path = self._revoked_file
        if path is None or not path.exists():
            return {}
        now = time.time()
        kept: dict[str, int] = {}
        for line in path.read_text(encoding="ascii", errors="replace").splitlines():
            sid, _, expires = line.partition(" ")
            if expires.isdigit() and int(expires) >= now:
                kept[sid] = int(expires)
        path.write_text("".join(f"{s} {e}\n" for s, e in kept.items()), encoding="ascii")
        return kept


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)
