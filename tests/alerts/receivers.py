"""Real receivers for notifications in tests: an HTTP server on a loopback port that
answers as scripted (as Slack or a webhook receiver might) and keeps what it was sent."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Answers each POST with the next scripted reply (the last one repeats) and keeps
    what it was sent."""

    def __init__(self, server: ThreadingHTTPServer, replies: list[Reply]) -> None:
        self.server = server
        self.replies = replies
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        scheme = "https" if isinstance(server.socket, ssl.SSLSocket) else "http"
        self.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"

    @property
    def hits(self) -> int:
        return len(self.seen)

    def next_reply(self, seen: Seen) -> Reply:
        with self.lock:
            self.seen.append(seen)
            return self.replies[min(len(self.seen), len(self.replies)) - 1]


def serve_http(replies: list[Reply], tls: ssl.SSLContext | None = None) -> Receiver:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            reply = receiver.next_reply(seen)
            time.sleep(reply.delay)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except OSError:
                pass  # the client gave up (the timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver = Receiver(server, replies)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return receiver
