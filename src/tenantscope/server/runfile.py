"""Where a running server can be reached, kept in its data dir for the CLI.

``tenantscope keys create`` prints a sign-in address and ``tenantscope usage`` asks the
running server: both must find the server of their data dir on whatever port it was
started with, not assume the default one. The server writes ``server.json`` (its URL and
process id) when it starts and removes it when it stops; a file left by a server that died
names a process that is gone, and is ignored.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from tenantscope.server.settings import Settings

log = logging.getLogger("tenantscope.server")

NAME = "server.json"


def local_url(host: str, port: int) -> str:
    """The URL a client on this machine uses (a wildcard bind is reached on loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def write(settings: Settings) -> None:
    """Say where this server listens (log, don't raise: the CLI then falls back)."""
    try:
        path = Path(settings.data_dir) / NAME
        body = {"url": local_url(settings.host, settings.port), "pid": os.getpid()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(path)
    except OSError as exc:
        log.warning("could not write %s in the data dir: %s", NAME, exc)


def remove(settings: Settings) -> None:
    """Forget it, if it is still this process's."""
    path = Path(settings.data_dir) / NAME
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def running_url(data_dir: Path) -> str | None:
    """The URL of the server running on ``data_dir``, or None if none is."""
    try:
        body = json.loads((Path(data_dir) / NAME).read_text())
        url, pid = body["url"], int(body["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)  # signal 0: is it alive (and ours to ask)?
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return str(url)
