"""A stand-in X-Ray daemon on loopback: receives what the X-Ray SDK emits over UDP.

The SDK sends one datagram per (sub)segment, `{"format": "json", "version": 1}` then a
newline then the document. In a Lambda function it sends subsegments only (the function's
own segment is Lambda's), each carrying its `trace_id` and its parent's id, annotations and
metadata; Powertools streams each one as it ends.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

HEADER = b'{"format": "json", "version": 1}\n'


class XRayDaemon:
    """Listens on UDP 127.0.0.1:`port` (0: any free port) until closed."""

    def __init__(self, port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._socket.bind(("127.0.0.1", port))
        self._socket.settimeout(0.2)
        self.address = f"127.0.0.1:{self._socket.getsockname()[1]}"
        self.documents: list[dict[str, Any]] = []
        self.rejected: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            header, _, body = data.partition(b"\n")
            try:
                assert json.loads(header) == {"format": "json", "version": 1}
                document = json.loads(body)
            except (ValueError, AssertionError):
                with self._lock:
                    self.rejected.append(data)
                continue
            with self._lock:
                self.documents.append(document)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        self._socket.close()

    def __enter__(self) -> XRayDaemon:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.documents)

    def wait_for(
        self, condition: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 10.0
    ) -> list[dict[str, Any]]:
        """The documents once `condition` holds for them (the last seen at the timeout)."""
        deadline = time.monotonic() + timeout_s
        while True:
            documents = self.received()
            if condition(documents) or time.monotonic() > deadline:
                return documents
            time.sleep(0.1)


def walk(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A document and its nested subsegments, each with the trace id of the document."""
    trace_id = document.get("trace_id")
    stack = [document]
    while stack:
        node = stack.pop()
        yield {**node, "trace_id": node.get("trace_id", trace_id)}
        stack.extend(node.get("subsegments") or [])


def flat(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [node for document in documents for node in walk(document)]
