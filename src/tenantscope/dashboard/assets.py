"""Static files: our CSS and scripts, plotly.js taken from the installed ``plotly`` package
(it bundles the minified library for offline use) and Swagger UI from the installed
``fastapi-offline`` package (made to serve FastAPI's API reference without a CDN), so
no page needs a CDN and the repository carries no third-party code."""

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
_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"
_OURS = {"app.css": _CSS, "app.js": _JS, "docs.js": _JS}
# /static/vendor/<name>: (installed package, file inside it, media type, how to install it)
_VENDOR: dict[str, tuple[str, str, str, str]] = {
    "vendor/plotly.min.js": ("plotly", "package_data/plotly.min.js", _JS, "plotly"),
    "vendor/swagger-ui-bundle.js": (
        "fastapi_offline",
        "static/swagger-ui-bundle.js",
        _JS,
        "fastapi-offline",
    ),
    "vendor/swagger-ui.css": ("fastapi_offline", "static/swagger-ui.css", _CSS, "fastapi-offline"),
}

router = APIRouter(include_in_schema=False)
_lock = threading.Lock()


def vendor_path(name: str) -> Path | None:
    """Where an installed package keeps a vendored file (None: not installed). The
    package is found, not imported."""
    package, inside = _VENDOR[name][:2]
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / inside
    return path if path.is_file() else None


@lru_cache(maxsize=8)
def _load(name: str) -> tuple[bytes, str]:
    """(raw, etag) of an asset, read once per process."""
    if name in _VENDOR:
        path = vendor_path(name)
        if path is None:
            raise NotFound(f"{name} is not installed (pip install {_VENDOR[name][3]})")
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
    media = _VENDOR[name][2] if name in _VENDOR else _OURS[name]
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
