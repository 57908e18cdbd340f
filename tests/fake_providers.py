"""A loopback server that speaks each provider's real wire format, replaying scripted replies.

Routes (the base URLs handed to the deployed LLM function):
  POST /openai/v1/chat/completions          OpenAI Chat Completions
  POST /openrouter/api/v1/chat/completions  OpenRouter (OpenAI format)
  POST /anthropic/v1/messages               Anthropic Messages
  POST /google/v1beta/models/<m>:generateContent   Gemini API

Each provider has a queue of replies (`Reply`), rendered in that provider's format, and a
log of the requests received (path, headers, JSON body) for assertions. It binds
127.0.0.1 on a free port and is started and stopped by the tests.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROVIDERS = ("openai", "openrouter", "anthropic", "google")


@dataclass
class Reply:
    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    input_tokens: int = 100
    output_tokens: int = 20
    cached_tokens: int = 0
    # An HTTP error instead of an answer, in the provider's error shape.
    error_status: int | None = None
    error_message: str = ""


@dataclass
class Received:
    provider: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def openai_body(reply: Reply, turn: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None,
                               "annotations": []}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{turn}_{i}abc", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-{turn}", "object": "chat.completion", "created": 1741569952,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
        "usage": {
            "prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        },
        "service_tier": "default", "system_fingerprint": "fp_06737a9306",
    }


def anthropic_body(reply: Reply, turn: int) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    content += [{"type": "tool_use", "id": f"toolu_{turn}{i}", "name": name, "input": args}
                for i, (name, args) in enumerate(reply.tool_calls)]
    # Anthropic counts cache reads apart from input_tokens.
    return {
        "model": "claude-sonnet-4-5-20250929", "id": f"msg_{turn}", "type": "message",
        "role": "assistant", "content": content,
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens - reply.cached_tokens,
                  "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": reply.cached_tokens,
                  "output_tokens": reply.output_tokens, "service_tier": "standard"},
    }


def google_body(reply: Reply, turn: int) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if reply.text:
        parts.append({"text": reply.text})
    parts += [{"functionCall": {"name": name, "args": args}} for name, args in reply.tool_calls]
    usage: dict[str, Any] = {
        "promptTokenCount": reply.input_tokens, "candidatesTokenCount": reply.output_tokens,
        "totalTokenCount": reply.input_tokens + reply.output_tokens,
    }
    if reply.cached_tokens:
        usage["cachedContentTokenCount"] = reply.cached_tokens
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP",
                        "index": 0}],
        "usageMetadata": usage, "modelVersion": "gemini-2.5-flash", "responseId": f"r{turn}",
    }


def error_body(provider: str, reply: Reply) -> dict[str, Any]:
    if provider == "anthropic":
        return {"type": "error", "error": {"type": "authentication_error",
                                           "message": reply.error_message}}
    if provider == "google":
        return {"error": {"code": reply.error_status, "message": reply.error_message,
                          "status": "UNAUTHENTICATED"}}
    return {"error": {"message": reply.error_message, "type": "invalid_request_error",
                      "code": "invalid_api_key", "param": None}}


_RENDER = {"openai": openai_body, "openrouter": openai_body, "anthropic": anthropic_body,
           "google": google_body}


def _provider_of(path: str) -> str | None:
    if path == "/openai/v1/chat/completions":
        return "openai"
    if path == "/openrouter/api/v1/chat/completions":
        return "openrouter"
    if path == "/anthropic/v1/messages":
        return "anthropic"
    if path.startswith("/google/v1beta/models/") and path.endswith(":generateContent"):
        return "google"
    return None


class FakeProviders:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replies: dict[str, deque[Reply]] = defaultdict(deque)
        self.received: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_urls(self) -> dict[str, str]:
        root = f"http://127.0.0.1:{self._server.server_port}"
        return {"openai": f"{root}/openai/v1", "openrouter": f"{root}/openrouter/api/v1",
                "anthropic": f"{root}/anthropic", "google": f"{root}/google"}

    def start(self) -> FakeProviders:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def script(self, provider: str, *replies: Reply) -> None:
        with self._lock:
            self._replies[provider].extend(replies)

    def requests_for(self, provider: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.provider == provider]

    def _next(self, provider: str, received: Received) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.received.append(received)
            if not self._replies[provider]:
                return 500, {"error": {"message": "fake provider: no reply scripted",
                                       "type": "server_error", "code": None}}
            turn = sum(1 for r in self.received if r.provider == provider)
            reply = self._replies[provider].popleft()
            if reply.error_status is not None:
                return reply.error_status, error_body(provider, reply)
            return 200, _RENDER[provider](reply, turn)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                provider = _provider_of(path)
                if provider is None:
                    status, body = 404, {"error": {"message": f"no route {path}"}}
                else:
                    received = Received(provider, path, {k.lower(): v for k, v in
                                                         self.headers.items()},
                                        json.loads(raw or b"{}"))
                    status, body = fake._next(provider, received)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:  # keep test output clean
                return

        return Handler
