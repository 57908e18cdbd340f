"""A typed HTTPS client for the Opspawn API (offline stack or a deployed one)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from agentkit.memory.models import Memory
from agentkit.models.api import (
    FollowUpAccepted,
    FollowUpRequest,
    OnBusy,
    SubmitTaskRequest,
    TaskSummary,
    TaskView,
)
from agentkit.models.domain import TaskEvent, TaskStatus


class MemoryMatch(Memory):
    """A memory; with `score` (cosine similarity to the query) in a search."""

    score: float | None = None


class RememberedMemory(BaseModel):
    """POST /memories: the memory, and whether it is new (else an existing one that says
    the same)."""

    memory: Memory
    created: bool
    duplicate_score: float | None = None


class ApiError(RuntimeError):
    """A non-2xx answer; `body` is the API's JSON error when it sent one."""

    def __init__(self, status_code: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else None
        super().__init__(f"HTTP {status_code}: {message or body}")
        self.status_code = status_code
        self.body = body


class TaskPage(BaseModel):
    """GET /tasks: one page of summaries, newest first; `next_cursor` fetches the next."""

    items: list[TaskSummary]
    next_cursor: str | None = None


class Approval(BaseModel):
    """A tool call waiting for (or given) a human decision (GET /tasks/{id}, approvals)."""

    model_config = ConfigDict(extra="allow")

    approval_id: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    status: str = "PENDING"


class TaskDetail(TaskView):
    """GET /tasks/{id}: the task view plus its approvals (when the API sends them)."""

    # Read leniently (Approval tolerates fields a newer server adds or an older one lacks),
    # where the server's TaskView is strict.
    approvals: list[Approval] = Field(default_factory=list)  # type: ignore[assignment]


class Schedule(BaseModel):
    """POST/GET /schedules: a goal submitted on a `rate(...)` or `cron(...)` expression."""

    model_config = ConfigDict(extra="allow")

    schedule_id: str
    name: str
    schedule_expression: str
    task: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None


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
        # The tenant's key (`python -m opspawn.admin keys create`); $OPSPAWN_API_KEY if not given.
        api_key = api_key or os.environ.get("OPSPAWN_API_KEY") or None
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
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

    def submit(
        self,
        request: SubmitTaskRequest | dict[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> TaskSummary:
        if isinstance(request, dict):
            request = SubmitTaskRequest.model_validate(request)
        body = _submit_body(request)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self._http.post("/tasks", json=body, headers=headers)
        return TaskSummary.model_validate(self._json(response))

    def get(self, task_id: str) -> TaskDetail:
        return TaskDetail.model_validate(self._json(self._http.get(f"/tasks/{task_id}")))

    def list_tasks(
        self, *, status: TaskStatus | str | None = None, limit: int = 20, cursor: str | None = None,
        parent_id: str | None = None,
    ) -> TaskPage:
        """One page of GET /tasks (newest first); `parent_id`: that task's sub-tasks."""
        params: dict[str, str | int] = {"limit": limit}
        if parent_id:
            params["parent_id"] = parent_id
        if status:
            params["status"] = TaskStatus(status).value
        if cursor:
            params["cursor"] = cursor
        return TaskPage.model_validate(self._json(self._http.get("/tasks", params=params)))

    def iter_tasks(
        self, *, status: TaskStatus | str | None = None, limit: int = 20
    ) -> Iterator[TaskSummary]:
        """Every task, following `next_cursor` page after page."""
        cursor: str | None = None
        while True:
            page = self.list_tasks(status=status, limit=limit, cursor=cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def events(self, task_id: str) -> list[TaskEvent]:
        body = self._json(self._http.get(f"/tasks/{task_id}/events"))
        return [TaskEvent.model_validate(item) for item in body.get("items", [])]

    def cancel(self, task_id: str) -> TaskSummary:
        """Stop a task; ApiError 409 if it has already finished."""
        return TaskSummary.model_validate(self._json(self._http.post(f"/tasks/{task_id}/cancel")))

    def reply(
        self,
        task_id: str,
        content: str,
        *,
        on_busy: OnBusy = "reject",
        idempotency_key: str | None = None,
    ) -> FollowUpAccepted:
        """Continue an ended task with a follow-up message (a new run of the task). While a
        run is active: ApiError 409 (`on_busy="reject"`) or queued (`"enqueue"`)."""
        body = FollowUpRequest(content=content, on_busy=on_busy).model_dump(mode="json")
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self._http.post(f"/tasks/{task_id}/messages", json=body, headers=headers)
        return FollowUpAccepted.model_validate(self._json(response))

    def wait_follow_up(
        self,
        task_id: str,
        follow_up: int,
        *,
        timeout_s: float = 120.0,
        poll_s: float = 0.5,
        on_update: Callable[[TaskView], None] | None = None,
    ) -> TaskView:
        """Poll until the run answering follow-up `follow_up` has ended (RuntimeError if the
        task was cancelled before it started: it was discarded)."""
        deadline = time.monotonic() + timeout_s
        last: tuple[Any, ...] | None = None
        while True:
            view = self.get(task_id)
            marker = (view.status, view.run, view.turn, len(view.messages))
            if marker != last and on_update is not None:
                on_update(view)
            last = marker
            run = next((r for r in view.runs if r.follow_up == follow_up), None)
            if run is not None and run.status.is_terminal:
                return view
            # Neither answered by a run nor waiting any more: a cancel discarded it.
            if run is None and view.status.is_terminal and not view.queued_follow_ups:
                raise RuntimeError(
                    f"follow-up {follow_up} of task {task_id} was discarded (the task was "
                    "cancelled before it started)"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"follow-up {follow_up} of task {task_id} not answered after "
                    f"{timeout_s:.0f} s (task {view.status.value}, run {view.run})"
                )
            time.sleep(poll_s)

    def approve(
        self, task_id: str, approval_id: str, *, approve: bool = True, reason: str | None = None
    ) -> Any:
        """Decide a tool call waiting for approval; returns the API's JSON answer."""
        body: dict[str, str] = {"decision": "approve" if approve else "deny"}
        if reason:
            body["reason"] = reason
        path = f"/tasks/{task_id}/approvals/{approval_id}"
        return self._json(self._http.post(path, json=body))

    def create_schedule(
        self,
        name: str,
        schedule_expression: str,
        task: SubmitTaskRequest | dict[str, Any],
    ) -> Schedule:
        if isinstance(task, dict):
            task = SubmitTaskRequest.model_validate(task)
        body = {
            "name": name,
            "schedule_expression": schedule_expression,
            "task": _submit_body(task),
        }
        return Schedule.model_validate(self._json(self._http.post("/schedules", json=body)))

    def list_schedules(self) -> list[Schedule]:
        body = self._json(self._http.get("/schedules"))
        return [Schedule.model_validate(item) for item in body.get("items", [])]

    def delete_schedule(self, schedule_id: str) -> None:
        self._json(self._http.delete(f"/schedules/{schedule_id}"))

    def remember(self, text: str, *, tags: list[str] | None = None,
                 scope: str | None = None) -> RememberedMemory:
        body: dict[str, Any] = {"text": text, "tags": tags or []}
        if scope is not None:
            body["scope"] = scope
        return RememberedMemory.model_validate(
            self._json(self._http.post("/memories", json=body)))

    def search_memories(self, query: str | None = None, *, limit: int = 10,
                        scope: str | None = None) -> list[MemoryMatch]:
        """With `query`: the nearest memories, best first; without: the newest first."""
        params: dict[str, Any] = {"limit": limit}
        if query is not None:
            params["query"] = query
        if scope is not None:
            params["scope"] = scope
        body = self._json(self._http.get("/memories", params=params))
        return [MemoryMatch.model_validate(item) for item in body.get("items", [])]

    def get_memory(self, memory_id: str) -> Memory:
        return Memory.model_validate(self._json(self._http.get(f"/memories/{memory_id}")))

    def delete_memory(self, memory_id: str) -> None:
        self._json(self._http.delete(f"/memories/{memory_id}"))

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


def _submit_body(request: SubmitTaskRequest) -> dict[str, Any]:
    """The request as sent: without what is unset, nor `memory` at its default (the server's
    own; a deployment from before long-term memory refuses the field)."""
    body = request.model_dump(mode="json", exclude_none=True)
    if body.get("memory") == "recall":
        del body["memory"]
    return body
