"""A typed HTTPS client for the Opspawn API (offline stack or a deployed one)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from agentkit.models import SubmitTaskRequest, TaskStatus, TaskSummary, TaskView


class ApiError(RuntimeError):
    """A non-2xx answer; `body` is the API's JSON error when it sent one."""

    def __init__(self, status_code: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"HTTP {status_code}: {message or body}")
        self.status_code = status_code
        self.body = body


class OpspawnClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["x-api-key"] = api_key
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport
        )

    def __enter__(self) -> OpspawnClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Raw access (tests use it to send malformed bodies)."""
        return self._http.request(method, path, **kwargs)

    def submit(self, request: SubmitTaskRequest | dict[str, Any]) -> TaskSummary:
        if isinstance(request, dict):
            request = SubmitTaskRequest.model_validate(request)
        body = request.model_dump(mode="json", exclude_none=True)
        return TaskSummary.model_validate(self._json(self._http.post("/tasks", json=body)))

    def get(self, task_id: str) -> TaskView:
        return TaskView.model_validate(self._json(self._http.get(f"/tasks/{task_id}")))

    def wait(
        self,
        task_id: str,
        *,
        timeout_s: float = 120.0,
        poll_s: float = 0.5,
        on_update: Callable[[TaskView], None] | None = None,
    ) -> TaskView:
        """Poll until the task ends; `on_update` sees every state that differs from the last."""
        deadline = time.monotonic() + timeout_s
        last: tuple[Any, ...] | None = None
        while True:
            view = self.get(task_id)
            marker = (view.status, view.turn, len(view.messages))
            if marker != last and on_update is not None:
                on_update(view)
            last = marker
            if view.status in {s for s in TaskStatus if s.is_terminal}:
                return view
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"task {task_id} still {view.status.value} after {timeout_s:.0f} s"
                )
            time.sleep(poll_s)

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body
