"""An HTTP server on 127.0.0.1 (a free port) for tests: it records every request and answers
each one as the test says (`respond`), in a thread of its own, until stopped."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    raw: bytes

    @property
    def body(self) -> Any:
        """The body parsed as JSON (None when empty)."""
        return json.loads(self.raw) if self.raw else None


@dataclass(frozen=True)
class Reply:
    status: int = 200
    #: bytes and str are sent as they are, anything else as JSON
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: wait this long before answering (cut short when the server stops)
    delay_s: float = 0.0
    #: close the connection without answering
    drop: bool = False

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


Respond = Callable[[Request], Reply]


class LoopbackServer:
    """`with LoopbackServer(respond) as server:` serves `server.url`; `server.requests` are
    the requests it got, in order. `respond` may be swapped between requests."""

    def __init__(self, respond: Respond = lambda _: Reply()) -> None:
        self.respond = respond
        self.requests: list[Request] = []
        self._released = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.loopback = self
        # A short poll: `stop()` waits for the serve loop to notice at most this long.
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def paths(self) -> list[str]:
        return [request.path for request in self.requests]

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()  # ends any delayed reply
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        request = Request(
            method=handler.command,
            path=handler.path,
            headers={name.lower(): value for name, value in handler.headers.items()},
            raw=handler.rfile.read(length) if length else b"",
        )
        self.requests.append(request)
        reply = self.respond(request)
        if reply.delay_s:
            self._released.wait(reply.delay_s)
        if reply.drop:
            handler.close_connection = True
            return
        data, content_type = reply.encoded()
        headers = dict(reply.headers)
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = content_type
        try:
            handler.send_response(reply.status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # the client gave up (timeout tests)
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    loopback: LoopbackServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up is what timeout tests do


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _any(self) -> None:
        self.server.loopback._answer(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

    def log_message(self, *_: Any) -> None:
        pass  # keep test output clean
