"""Traces offline: a stand-in X-Ray daemon on loopback, receiving what the X-Ray SDK emits.

LocalStack community has no X-Ray. The offline executor points every function's
AWS_XRAY_DAEMON_ADDRESS at UDP 127.0.0.1:<LocalStack port>; `python -m opspawn.offline
traces` (or a test) listens there and prints each task's trace as a tree.

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


def handlers_of(nodes: list[dict[str, Any]], task_id: str) -> list[dict[str, Any]]:
    """The handler subsegments (`## lambda_handler`) annotated with the task."""
    return [n for n in nodes if str(n.get("name", "")).startswith("## ")
            and n.get("annotations", {}).get("task_id") == task_id]


def tree(nodes: list[dict[str, Any]], trace_id: str) -> list[str]:
    """One trace as indented lines by start time: offset, duration, name, annotations."""
    ours = sorted((n for n in nodes if n.get("trace_id") == trace_id),
                  key=lambda n: n.get("start_time", 0))
    ids = {n.get("id") for n in ours}
    children: dict[Any, list[dict[str, Any]]] = {}
    for node in ours:
        parent = node.get("parent_id")
        children.setdefault(parent if parent in ids else None, []).append(node)
    start = ours[0].get("start_time", 0) if ours else 0
    lines: list[str] = []

    def visit(node: dict[str, Any], depth: int) -> None:
        took = (node.get("end_time", 0) - node.get("start_time", 0)) * 1000
        at = (node.get("start_time", 0) - start) * 1000
        notes = {k: v for k, v in node.get("annotations", {}).items()
                 if k not in {"Service", "ColdStart"}}
        lines.append(f"{'  ' * depth}+{at:7.0f} ms {took:6.0f} ms  {node.get('name')}"
                     + (f"  {json.dumps(notes, sort_keys=True)}" if notes else ""))
        for child in children.get(node.get("id"), []):
            visit(child, depth + 1)

    for root in children.get(None, []):
        visit(root, 0)
    return lines


def task_trace(nodes: list[dict[str, Any]], task_id: str, *, requests: bool = False) -> list[str]:
    """A task's trace (its submit's, continued by every state) and the traces linked to it
    (tool turns run from SQS), as printed lines; `requests`: also the other API requests
    that named the task (each its own trace: a GET, a cancel, an approval)."""
    handlers = handlers_of(nodes, task_id)
    linked = {n["trace_id"] for n in handlers if n.get("annotations", {}).get("sender_trace_id")}
    counts: dict[str, int] = {}
    for node in handlers:
        if node["trace_id"] not in linked:
            counts[node["trace_id"]] = counts.get(node["trace_id"], 0) + 1
    ranked = sorted(counts, key=lambda trace_id: -counts[trace_id])
    lines: list[str] = []
    for index, trace_id in enumerate(ranked):
        if index == 0:
            lines += [f"trace {trace_id} (task {task_id}):", *tree(nodes, trace_id)]
        elif requests:
            lines += [f"request trace {trace_id}:", *tree(nodes, trace_id)]
    for trace_id in sorted(linked):
        lines += [f"linked trace {trace_id} (from SQS):", *tree(nodes, trace_id)]
    return lines


def listen(port: int, task_id: str | None = None, quiet_s: float = 2.0,
           out: Callable[[str], None] = print) -> None:
    """Print each task's trace once its segments stop arriving (Ctrl-C ends)."""
    printed: set[str] = set()
    with XRayDaemon(port) as daemon:
        out(f"[offline] listening for X-Ray segments on udp://{daemon.address} (Ctrl-C stops)")
        seen = 0
        quiet_since = time.monotonic()
        while True:
            time.sleep(0.2)
            documents = daemon.received()
            if len(documents) != seen:
                seen, quiet_since = len(documents), time.monotonic()
                continue
            if time.monotonic() - quiet_since < quiet_s:
                continue
            nodes = flat(documents)
            tasks = {str(n["annotations"]["task_id"]) for n in nodes
                     if str(n.get("name", "")).startswith("## ")
                     and "task_id" in n.get("annotations", {})}
            for task in sorted(tasks - printed):
                if task_id is None or task == task_id:
                    out("\n".join(task_trace(nodes, task)))
                    printed.add(task)
