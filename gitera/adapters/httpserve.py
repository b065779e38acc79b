"""Serving one page on the loopback interface with the standard library's HTTP server (`gitera view`).

The page is built again when the experiment's branch has moved since the last request (the
caller's ``page`` function decides), so reloading the browser after an `iterate` shows it.
Only GET / (and /index.html) is answered. The server binds 127.0.0.1 and answers only requests
whose Host header names the loopback interface: a web page elsewhere cannot read the dev rows
through a DNS-rebinding name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gitera.core.errors import GiteraError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def allowed_host(header: str | None, port: int) -> bool:
    """Whether a Host header names the loopback interface on our port (or no port)."""
    if not header:
        return False
    host = header.strip().lower()
    for name in LOOPBACK_HOSTS:
        if host in (name, f"{name}:{port}"):
            return True
    return False


class PageServer:
    """A loopback HTTP server for one page; ``serve_forever`` until ``stop`` (or Ctrl-C)."""

    def __init__(self, page: Callable[[], bytes], port: int = 0, host: str = "127.0.0.1") -> None:
        lock = threading.Lock()
        server_port = [0]

        class Handler(BaseHTTPRequestHandler):
            server_version = "gitera-view"
            timeout = 30  # a browser's idle pre-connection must not hold a thread forever

            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                if not allowed_host(self.headers.get("Host"), server_port[0]):
                    self._send(HTTPStatus.FORBIDDEN, b"gitera view answers only on 127.0.0.1 or localhost\n", "text/plain; charset=utf-8")
                    return
                if self.path.split("?", 1)[0] not in ("/", "/index.html"):
                    self._send(HTTPStatus.NOT_FOUND, b"not found: gitera view serves one page, at /\n", "text/plain; charset=utf-8")
                    return
                try:
                    with lock:
                        body = page()
                except GiteraError as exc:  # the browser gets the reason; the server keeps serving
                    self._send(HTTPStatus.INTERNAL_SERVER_ERROR, f"gitera view could not build the page: {exc}\n".encode(), "text/plain; charset=utf-8")
                    return
                self._send(HTTPStatus.OK, body, "text/html; charset=utf-8")

            def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the standard library's name
                pass  # the terminal shows gitera's own lines, not an access log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        server_port[0] = self.port

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._server.server_close()

    def stop(self) -> None:
        self._server.shutdown()
