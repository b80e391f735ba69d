"""Dashboard sessions: a signed cookie naming the key that signed in, with an expiry.

The cookie holds ``<key_id>.<expires>.<signature>`` (HMAC-SHA256 with a secret kept in
the data directory), so it reveals nothing secret and cannot be forged; each request
still checks that the key exists and is not revoked. CSRF tokens for the dashboard's
forms are a double-submitted random cookie, bound to nothing secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

SESSION_COOKIE = "ts_session"
CSRF_COOKIE = "ts_csrf"
SESSION_SECONDS = 12 * 3600
SECRET_FILE = "session.key"


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
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def make(self, key_id: str, seconds: int = SESSION_SECONDS) -> str:
        payload = f"{key_id}.{int(time.time()) + seconds}"
        return f"{payload}.{self._sign(payload)}"

    def read(self, value: str) -> str | None:
        """The key id of a valid, unexpired session cookie, else None."""
        parts = value.split(".")
        if len(parts) != 3:
            return None
        key_id, expires, signature = parts
        if not hmac.compare_digest(signature, self._sign(f"{key_id}.{expires}")):
            return None
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return key_id


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)
