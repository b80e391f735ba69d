"""Static files: our CSS and script, and plotly.js taken from the installed ``plotly``
package (it bundles the minified library for offline use), so the dashboard needs no CDN
and the repository carries no third-party code."""

from __future__ import annotations

import gzip
import hashlib
import threading
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import Response

from tenantscope.errors import NotFound

STATIC = Path(__file__).parent / "static"
_OURS = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}

router = APIRouter(include_in_schema=False)
_lock = threading.Lock()


def plotly_path() -> Path | None:
    spec = find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


@lru_cache(maxsize=8)
def _load(name: str) -> tuple[bytes, str]:
    """(raw, etag) of an asset, read once per process."""
    if name == "vendor/plotly.min.js":
        path = plotly_path()
        if path is None:
            raise NotFound("plotly.js is not installed (pip install plotly)")
    elif name in _OURS:
        path = STATIC / name
    else:
        raise NotFound(f"no static file {name}")
    raw = path.read_bytes()
    return raw, hashlib.sha256(raw).hexdigest()[:16]


@lru_cache(maxsize=8)
def _gzipped(name: str) -> bytes:
    """Compressed when first asked for (not when a page links it: a link needs the hash
    only, and compressing plotly.js takes a noticeable moment)."""
    return gzip.compress(_load(name)[0], 6)


def asset_version(name: str) -> str:
    """A content hash for cache-busting links (``?v=``)."""
    with _lock:
        return _load(name)[1]


@router.get("/static/{name:path}")
def static(name: str, request: Request) -> Response:
    with _lock:
        raw, etag = _load(name)
    media = _OURS.get(name, "text/javascript; charset=utf-8")
    headers = {
        "ETag": f'"{etag}"',
        # links carry ?v=<hash>, so a changed file gets a new URL
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }
    if request.headers.get("if-none-match") == f'"{etag}"':
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        with _lock:
            packed = _gzipped(name)
        return Response(packed, media_type=media, headers=headers)
    return Response(raw, media_type=media, headers=headers)
