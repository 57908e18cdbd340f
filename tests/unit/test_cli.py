"""The `opspawn` CLI against an in-memory API speaking the HTTP contract (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opspawn import cli

ENDPOINT = "https://api.example.test/v1"
KEY = "osk_live_SECRETkey0123456789"
NOW = "2025-01-02T03:04:05.678Z"


def _usage(**extra: Any) -> dict[str, Any]:
    return {"input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "cost_usd": 0.0,
            "model_calls": 0, **extra}


def _summary(task_id: str, status: str = "QUEUED", **extra: Any) -> dict[str, Any]:
    return {"task_id": task_id, "status": status, "goal": "What is 6 * 7?",
            "model": "scripted", "turn": 0, "usage": _usage(), "answer": None, "error": None,
            "created_at": NOW, "updated_at": NOW, **extra}


def _view(task_id: str, status: str, messages: list[dict[str, Any]], **extra: Any) -> dict:
    return {**_summary(task_id, status, **extra), "tools": ["calculator"], "max_turns": 10,
            "messages": messages}


SYSTEM = {"role": "system", "content": "You are an agent."}
USER = {"role": "user", "content": "What is 6 * 7?"}
CALL = {"role": "assistant", "tool_calls": [
    {"id": "c1", "name": "calculator", "arguments": {"expression": "6 * 7"}}]}
RESULT = {"role": "tool", "tool_call_id": "c1", "name": "calculator", "content": "42"}
FINAL = {"role": "assistant", "content": "6 * 7 = 42."}


class FakeApi:
    """Routes of the contract; records every request. `views` is the sequence GET
    /tasks/{id} walks through (the last one repeats)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.views: list[dict[str, Any]] = []
        self.routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {}

    def route(self, method: str, path: str, answer: Any, status: int = 200) -> None:
        self.routes[(method, path)] = (
            answer if callable(answer) else lambda _r: httpx.Response(status, json=answer)
        )

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/v1")
        if (request.method, path) in self.routes:
            return self.routes[(request.method, path)](request)
        if request.method == "GET" and path.startswith("/tasks/") and self.views:
            view = self.views.pop(0) if len(self.views) > 1 else self.views[0]
            return httpx.Response(200, json=view)
        return httpx.Response(404, json={"error": "not_found", "message": f"no route {path}"})

    def bodies(self, method: str, path: str) -> list[Any]:
        return [json.loads(r.content or b"null") for r in self.requests
                if r.method == method and r.url.path.removeprefix("/v1") == path]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real config file, offline outputs or environment leak into a test."""
    for name in ("OPSPAWN_ENDPOINT", "OPSPAWN_API_KEY", "OPSPAWN_CONFIG", "OPSPAWN_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("OPSPAWN_OFFLINE_DIR", str(tmp_path / "offline"))
    monkeypatch.delenv("OPSPAWN_OFFLINE_INSTANCE", raising=False)  # the default stack's outputs
    monkeypatch.setattr(cli, "POLL_SECONDS", 0)
    monkeypatch.setenv("COLUMNS", "200")  # wide tables whatever the runner's terminal


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    fake = FakeApi()
    monkeypatch.setattr(cli, "transport_factory", lambda: httpx.MockTransport(fake.handler))
    yield fake


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def _run(*argv: str, endpoint: bool = True) -> tuple[int, str, str]:
        args = ["--endpoint", ENDPOINT, "--api-key", KEY, *argv] if endpoint else list(argv)
        code = cli.main(args)
        out, err = capsys.readouterr()
        assert KEY not in out and KEY not in err  # the key is never printed
        return code, out, err

    return _run


# --- submit ---------------------------------------------------------------------------------


def test_submit_sends_the_request_and_prints_the_task(api: FakeApi, run: Run) -> None:
    api.route("POST", "/tasks", _summary("tsk_1"), 202)
    code, out, _ = run("submit", "What is 6 * 7?", "--tools", "calculator,current_time",
                       "--model", "openai:gpt-4o-mini", "--fallback-model", "anthropic:claude-x",
                       "--max-turns", "5", "--max-tokens", "9000", "--max-cost", "0.5",
                       "--idempotency-key", "idem-1")
    assert code == 0
    assert "tsk_1" in out and "opspawn watch tsk_1" in out
    [body] = api.bodies("POST", "/tasks")
    assert body == {"goal": "What is 6 * 7?", "model": "openai:gpt-4o-mini",
                    "fallback_models": ["anthropic:claude-x"],
                    "tools": ["calculator", "current_time"], "max_turns": 5,
                    "max_tokens": 9000, "max_cost_usd": 0.5}
    request = api.requests[0]
    assert request.headers["Idempotency-Key"] == "idem-1"
    assert request.headers["Authorization"] == f"Bearer {KEY}"


def test_submit_wait_prints_each_step_and_the_answer(api: FakeApi, run: Run) -> None:
    api.route("POST", "/tasks", _summary("tsk_2"), 202)
    api.views = [
        _view("tsk_2", "QUEUED", []),
        _view("tsk_2", "RUNNING", [SYSTEM, USER]),
        _view("tsk_2", "RUNNING", [SYSTEM, USER, CALL, RESULT], turn=1),
        _view("tsk_2", "SUCCEEDED", [SYSTEM, USER, CALL, RESULT, FINAL], turn=2,
              answer="6 * 7 = 42.", usage=_usage(input_tokens=30, output_tokens=8,
                                                model_calls=2)),
    ]
    turns = json.dumps([{"tool_calls": [{"name": "calculator",
                                         "arguments": {"expression": "6 * 7"}}]},
                        {"content": "6 * 7 = 42."}])
    code, out, _ = run("submit", "What is 6 * 7?", "--model", "scripted",
                       "--scripted-turns", turns, "--wait")
    assert code == 0
    lines = [line.split() for line in out.splitlines()]
    assert ["status", "RUNNING"] in lines and ["status", "SUCCEEDED"] in lines
    assert 'calculator({"expression": "6 * 7"})' in out
    assert "tool    calculator → 42" in out
    assert "turn 2 → final answer" in out
    assert "6 * 7 = 42." in out and "30 / 8 / 0" in out
    order = ["status  QUEUED", "status  RUNNING", "plan", "goal", "turn 1 → calculator",
             "calculator → 42", "turn 2 → final answer", "status  SUCCEEDED", "6 * 7 = 42."]
    positions = [out.index(text) for text in order]
    assert positions == sorted(positions), out
    [body] = api.bodies("POST", "/tasks")
    assert body["scripted_turns"][1] == {"content": "6 * 7 = 42.", "tool_calls": []}


def test_scripted_turns_from_a_file(api: FakeApi, run: Run, tmp_path: Path) -> None:
    api.route("POST", "/tasks", _summary("tsk_f"), 202)
    script = tmp_path / "turns.json"
    script.write_text('[{"content": "42"}]')
    code, _, _ = run("submit", "6 * 7?", "--model", "scripted", "--scripted-turns", f"@{script}")
    assert code == 0
    assert api.bodies("POST", "/tasks")[0]["scripted_turns"] == [
        {"content": "42", "tool_calls": []}]


def test_submit_wait_on_a_failed_task_exits_3_with_the_reason(api: FakeApi, run: Run) -> None:
    api.route("POST", "/tasks", _summary("tsk_3"), 202)
    api.views = [_view("tsk_3", "RUNNING", [SYSTEM, USER]),
                 _view("tsk_3", "FAILED", [SYSTEM, USER], error="model said no: bad request")]
    code, out, err = run("submit", "x", "--wait")
    assert code == 3
    assert "FAILED" in out and "model said no: bad request" in err


def test_submit_wait_json_keeps_stdout_parseable(api: FakeApi, run: Run) -> None:
    api.route("POST", "/tasks", _summary("tsk_j"), 202)
    api.views = [_view("tsk_j", "SUCCEEDED", [SYSTEM, USER, FINAL], answer="42")]
    code, out, err = run("submit", "x", "--wait", "--json")
    assert code == 0
    assert json.loads(out)["answer"] == "42"
    assert "SUCCEEDED" in err  # progress went to stderr


def test_submit_json_without_wait(api: FakeApi, run: Run) -> None:
    api.route("POST", "/tasks", _summary("tsk_k"), 202)
    code, out, _ = run("submit", "x", "--json")
    assert code == 0 and json.loads(out)["task_id"] == "tsk_k"


def test_invalid_request_is_caught_before_sending_and_names_the_flag(api: FakeApi,
                                                                     run: Run) -> None:
    code, _, err = run("submit", "x", "--model", "scripted", "--max-turns", "99")
    assert code == 1
    assert "--max-turns" in err and "--scripted-turns" in err
    assert api.requests == []


def test_submit_memory_flags(api: FakeApi, run: Run) -> None:
    api.route("POST", "/tasks", _summary("tsk_m"), 202)
    code, _, _ = run("submit", "x", "--memory-scope", "user-1", "--memory", "auto")
    assert code == 0
    [body] = api.bodies("POST", "/tasks")
    assert body["memory_scope"] == "user-1" and body["memory"] == "auto"
    # Neither given: neither sent (the server's defaults).
    code, _, _ = run("submit", "y")
    assert code == 0
    assert not {"memory", "memory_scope"} & set(api.bodies("POST", "/tasks")[1])


def test_a_bad_memory_scope_names_its_flag(api: FakeApi, run: Run) -> None:
    code, _, err = run("submit", "x", "--memory-scope", "user/1")
    assert code == 1
    assert "--memory-scope" in err and "memory scope 'user/1'" in err
    assert api.requests == []


def test_bad_command_line_exits_2(run: Run) -> None:
    assert run("submit")[0] == 2
    assert run("list", "--status", "SLEEPING")[0] == 2
    assert run("frobnicate")[0] == 2
    assert run("--help")[0] == 0


# --- watch / get / events --------------------------------------------------------------------


def test_watch_shows_pending_approvals_and_ends_cancelled(api: FakeApi, run: Run) -> None:
    approval = {"approval_id": "apr_1", "tool": "http_fetch",
                "arguments": {"url": "https://x.test"}, "status": "PENDING"}
    api.views = [
        _view("tsk_w", "WAITING_APPROVAL", [SYSTEM, USER], approvals=[approval]),
        _view("tsk_w", "CANCELLED", [SYSTEM, USER], error="cancelled by the user",
              approvals=[{**approval, "status": "DENIED"}]),
    ]
    code, out, err = run("watch", "tsk_w")
    assert code == 3
    assert "WAITING_APPROVAL" in out and "opspawn approve tsk_w apr_1" in out
    assert "CANCELLED" in out and "cancelled by the user" in err


def test_get_prints_steps_answer_and_json(api: FakeApi, run: Run) -> None:
    api.views = [_view("tsk_g", "SUCCEEDED", [SYSTEM, USER, CALL, RESULT, FINAL],
                       answer="6 * 7 = 42.", turn=2)]
    code, out, _ = run("get", "tsk_g")
    assert code == 0 and "calculator → 42" in out and "6 * 7 = 42." in out
    code, out, _ = run("get", "tsk_g", "--json")
    assert code == 0 and json.loads(out)["messages"][4]["content"] == "6 * 7 = 42."


def test_events_table(api: FakeApi, run: Run) -> None:
    api.route("GET", "/tasks/tsk_e/events", {"items": [
        {"kind": "status", "name": "RUNNING", "turn": 0, "at": NOW},
        {"kind": "model_call", "name": "openai:gpt-4o-mini", "turn": 1, "at": NOW,
         "duration_ms": 1234, "usage": _usage(input_tokens=120, output_tokens=30,
                                              cost_usd=0.000036, model_calls=1)},
        {"kind": "tool_call", "name": "calculator", "turn": 1, "at": NOW, "duration_ms": 5,
         "call_id": "c1", "error": "ZeroDivisionError: division by zero"},
    ]})
    code, out, _ = run("events", "tsk_e")
    assert code == 0
    for header in ("kind", "name", "turn", "duration", "tokens", "cost", "error"):
        assert header in out
    row = next(line for line in out.splitlines() if "model_call" in line)
    assert "openai:gpt-4o-mini" in row and "1.23 s" in row and "120/30" in row
    assert "0.000036" in row
    assert "ZeroDivisionError" in out and "5 ms" in out
    code, out, _ = run("events", "tsk_e", "--json")
    assert [e["kind"] for e in json.loads(out)["items"]] == ["status", "model_call", "tool_call"]


# --- list ------------------------------------------------------------------------------------


def _pages(request: httpx.Request) -> httpx.Response:
    cursor = request.url.params.get("cursor")
    if cursor is None:
        return httpx.Response(200, json={"items": [_summary("tsk_a", "RUNNING"),
                                                   _summary("tsk_b", "RUNNING")],
                                         "next_cursor": "c2"})
    assert cursor == "c2"
    return httpx.Response(200, json={"items": [_summary("tsk_c", "RUNNING")],
                                     "next_cursor": None})


def test_list_one_page_then_all(api: FakeApi, run: Run) -> None:
    api.route("GET", "/tasks", _pages)
    code, out, _ = run("list", "--status", "running", "--limit", "2")
    assert code == 0
    assert "tsk_a" in out and "tsk_b" in out and "tsk_c" not in out
    assert "--cursor c2" in out
    params = api.requests[-1].url.params
    assert (params["status"], params["limit"]) == ("RUNNING", "2")

    code, out, _ = run("list", "--status", "RUNNING", "--limit", "2", "--all")
    assert code == 0 and all(t in out for t in ("tsk_a", "tsk_b", "tsk_c"))
    assert [r.url.params.get("cursor") for r in api.requests[-2:]] == [None, "c2"]

    code, out, _ = run("list", "--all", "--json")
    assert [t["task_id"] for t in json.loads(out)["items"]] == ["tsk_a", "tsk_b", "tsk_c"]


# --- cancel / approve ---------------------------------------------------------------------------


def test_cancel(api: FakeApi, run: Run) -> None:
    api.route("POST", "/tasks/tsk_x/cancel", _summary("tsk_x", "CANCELLED"))
    code, out, _ = run("cancel", "tsk_x")
    assert code == 0 and "tsk_x CANCELLED" in out


def test_cancel_of_a_finished_task_says_so(api: FakeApi, run: Run) -> None:
    api.route("POST", "/tasks/tsk_x/cancel",
              {"error": "conflict", "message": "task tsk_x already ended SUCCEEDED"}, 409)
    code, _, err = run("cancel", "tsk_x")
    assert code == 1
    assert "cannot cancel tsk_x" in err and "already ended SUCCEEDED" in err


def _run_record(run: int, status: str, follow_up: int | None = None, **extra: Any) -> dict:
    return {"run": run, "follow_up": follow_up, "status": status, "first_turn": 0,
            "last_turn": 1, "usage": _usage(), **extra}


def test_reply_sends_the_follow_up_and_waits_for_its_run(api: FakeApi, run: Run) -> None:
    api.route("POST", "/tasks/tsk_r/messages",
              {"task_id": "tsk_r", "follow_up": 1, "state": "queued", "run": None,
               "task": _summary("tsk_r", "RUNNING")}, 202)
    first = _run_record(1, "RUNNING")
    api.views = [
        # run 1 is still active: the message waits (shown QUEUED)
        _view("tsk_r", "RUNNING", [SYSTEM, USER], runs=[first], queued_follow_ups=1),
        # run 1 ended, the message still queued: not yet the answer
        _view("tsk_r", "SUCCEEDED", [SYSTEM, USER, FINAL], turn=1, answer="6 * 7 = 42.",
              runs=[{**first, "status": "SUCCEEDED"}], queued_follow_ups=1),
        _view("tsk_r", "SUCCEEDED", [SYSTEM, USER, FINAL, {"role": "user", "content": "x2?"},
                                     {"role": "assistant", "content": "84."}],
              turn=2, answer="84.", run=2,
              runs=[{**first, "status": "SUCCEEDED"}, _run_record(2, "SUCCEEDED", 1)]),
    ]
    code, out, _ = run("reply", "tsk_r", "x2?", "--enqueue", "--idempotency-key", "k1",
                       "--wait")
    assert code == 0, out
    assert "follow-up 1 of task tsk_r: queued behind the active run" in out
    assert "84." in out
    [body] = api.bodies("POST", "/tasks/tsk_r/messages")
    assert body == {"content": "x2?", "on_busy": "enqueue"}
    [request] = [r for r in api.requests if r.method == "POST"]
    assert request.headers["Idempotency-Key"] == "k1"
    assert out.index("status  QUEUED") < out.index("status  SUCCEEDED")
    assert len([r for r in api.requests if r.method == "GET"]) == 3  # waited for run 2


def test_get_lists_the_runs_and_labels_a_follow_up(api: FakeApi, run: Run) -> None:
    api.views = [_view("tsk_g", "SUCCEEDED",
                       [SYSTEM, USER, FINAL, {"role": "user", "content": "And x2?"},
                        {"role": "assistant", "content": "84."}],
                       answer="84.", turn=2, run=2, queued_follow_ups=1,
                       runs=[_run_record(1, "SUCCEEDED"),
                             _run_record(2, "SUCCEEDED", 1, first_turn=1, last_turn=2)])]
    code, out, _ = run("get", "tsk_g")
    assert code == 0
    assert "run 1   the goal: SUCCEEDED, turns 1-1" in out
    assert "run 2   follow-up 1: SUCCEEDED, turns 2-2" in out
    assert "queued  1 follow-up(s)" in out
    assert "reply   And x2?" in out and "goal    What is 6 * 7?" in out


def test_reply_to_a_busy_task_says_so(api: FakeApi, run: Run) -> None:
    api.route("POST", "/tasks/tsk_r/messages",
              {"error": "task_busy", "message": "task 'tsk_r' is RUNNING (run 1)"}, 409)
    code, _, err = run("reply", "tsk_r", "now?")
    assert code == 1
    assert "cannot reply to tsk_r" in err and "is RUNNING (run 1)" in err
    assert api.bodies("POST", "/tasks/tsk_r/messages") == [
        {"content": "now?", "on_busy": "reject"}]


def test_approve_and_deny_bodies(api: FakeApi, run: Run) -> None:
    path = "/tasks/tsk_p/approvals/apr_9"
    api.route("POST", path, {"approval_id": "apr_9", "status": "APPROVED"})
    code, out, _ = run("approve", "tsk_p", "apr_9")
    assert code == 0 and "approved apr_9" in out
    code, out, _ = run("approve", "tsk_p", "apr_9", "--deny", "--reason", "not that URL")
    assert code == 0 and "denied apr_9" in out
    assert api.bodies("POST", path) == [
        {"decision": "approve"}, {"decision": "deny", "reason": "not that URL"}]


# --- schedules ---------------------------------------------------------------------------------


def test_schedules_create_list_delete(api: FakeApi, run: Run) -> None:
    schedule = {"schedule_id": "sch_1", "name": "nightly", "schedule_expression": "rate(1 day)",
                "task": {"goal": "Summarize the news", "model": "openai:gpt-4o-mini"},
                "created_at": NOW}
    api.route("POST", "/schedules", schedule, 201)
    api.route("GET", "/schedules", {"items": [schedule]})
    api.route("DELETE", "/schedules/sch_1", lambda _r: httpx.Response(204))

    code, out, _ = run("schedules", "create", "nightly", "rate(1 day)", "Summarize the news",
                       "--model", "openai:gpt-4o-mini", "--tools", "http_fetch", "--max-turns", "3")
    assert code == 0 and "sch_1" in out
    assert api.bodies("POST", "/schedules") == [{
        "name": "nightly", "schedule_expression": "rate(1 day)",
        "task": {"goal": "Summarize the news", "model": "openai:gpt-4o-mini",
                 "tools": ["http_fetch"], "max_turns": 3}}]

    code, out, _ = run("schedules", "list")
    assert code == 0 and "nightly" in out and "rate(1 day)" in out and "Summarize" in out
    code, out, _ = run("schedules", "list", "--json")
    assert json.loads(out)["items"][0]["schedule_id"] == "sch_1"

    code, out, _ = run("schedules", "delete", "sch_1")
    assert code == 0 and "sch_1 deleted" in out
    assert api.requests[-1].method == "DELETE"


# --- memory ------------------------------------------------------------------------------------


def _memory(memory_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"memory_id": memory_id, "text": text, "tags": ["billing"], "created_at": NOW,
            "embedding_model": "openai:text-embedding-3-small", "source": "api", **extra}


def test_memory_add_search_list_rm(api: FakeApi, run: Run) -> None:
    fact = _memory("mem_1", "Acme pays in euros.")
    api.route("POST", "/memories", {"memory": fact, "created": True,
                                    "usage": {"input_tokens": 5}}, 201)
    api.route("GET", "/memories", lambda r: httpx.Response(200, json={"items": [
        {**fact, "score": 0.912} if r.url.params.get("query") else fact]}))
    api.route("DELETE", "/memories/mem_1", lambda _r: httpx.Response(204))

    code, out, _ = run("memory", "add", "Acme pays in euros.", "--tag", "billing",
                       "--scope", "user-1")
    assert code == 0 and "mem_1 saved" in out
    assert api.bodies("POST", "/memories") == [
        {"text": "Acme pays in euros.", "tags": ["billing"], "scope": "user-1"}]

    code, out, _ = run("memory", "search", "which currency?", "--limit", "3")
    assert code == 0 and "0.912" in out and "Acme pays" in out
    params = api.requests[-1].url.params
    assert (params["query"], params["limit"]) == ("which currency?", "3")
    code, out, _ = run("memory", "search", "which currency?", "--json")
    assert json.loads(out)["items"][0]["score"] == 0.912

    code, out, _ = run("memory", "list", "--scope", "user-1")
    assert code == 0 and "mem_1" in out and "score" not in out
    assert "query" not in api.requests[-1].url.params
    assert api.requests[-1].url.params["scope"] == "user-1"

    code, out, _ = run("memory", "rm", "mem_1")
    assert code == 0 and "mem_1 deleted" in out


def test_memory_add_of_a_known_fact_says_so(api: FakeApi, run: Run) -> None:
    fact = _memory("mem_1", "Acme pays in euros.")
    api.route("POST", "/memories", {"memory": fact, "created": False,
                                    "duplicate_score": 0.98})
    code, out, _ = run("memory", "add", "acme pays in euros")
    assert code == 0 and "already known as mem_1" in out


# --- errors ------------------------------------------------------------------------------------


def test_api_error_prints_message_and_fields(api: FakeApi, run: Run) -> None:
    api.route("POST", "/tasks", {
        "error": "validation_error", "message": "tools: unknown tool 'teleport'",
        "fields": [{"field": "tools[0]", "problem": "unknown tool 'teleport'"}]}, 400)
    code, _, err = run("submit", "x", "--tools", "teleport")
    assert code == 1
    assert "tools: unknown tool 'teleport'" in err and "validation_error" in err
    assert "tools[0]: unknown tool 'teleport'" in err


def test_unauthorized_hints_at_the_key_without_printing_it(api: FakeApi, run: Run) -> None:
    api.route("GET", "/tasks", {"error": "unauthorized",
                                "message": f"bad key {KEY}"}, 401)  # even if echoed back
    code, _, err = run("list")
    assert code == 1 and "API key" in err and "****" in err


def test_missing_endpoint_names_the_three_ways(run: Run) -> None:
    code, _, err = run("list", endpoint=False)
    assert code == 1
    assert "--endpoint" in err and "OPSPAWN_ENDPOINT" in err and "config.toml" in err


def test_connection_refused_on_the_offline_stack(monkeypatch: pytest.MonkeyPatch,
                                                run: Run) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    monkeypatch.setattr(cli, "transport_factory", lambda: httpx.MockTransport(refuse))
    monkeypatch.setenv("OPSPAWN_ENDPOINT", "http://127.0.0.1:1/_aws/execute-api/abc/v1")
    code, _, err = run("list", endpoint=False)
    assert code == 1
    assert "Connection refused" in err and "make up" in err


# --- configuration -------------------------------------------------------------------------------


def _write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _config(run: Run, *argv: str) -> dict[str, Any]:
    code, out, _ = run("config", "show", "--json", *argv, endpoint=False)
    assert code == 0
    return json.loads(out)


def test_config_precedence_flag_env_file_offline(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path, run: Run) -> None:
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "outputs.json").write_text(json.dumps({
        "stack_name": "opspawn", "endpoint_url": "http://127.0.0.1:4566",
        "api_url": "http://127.0.0.1:4566/_aws/execute-api/abc/v1"}))
    shown = _config(run)
    assert shown["endpoint"] == "http://127.0.0.1:4566/_aws/execute-api/abc/v1"
    assert "offline" in shown["endpoint_source"] and shown["api_key"] == "not set"

    _write_config(tmp_path / "xdg/opspawn/config.toml",
                  f'[default]\nendpoint = "https://file.test/v1"\napi_key = "{KEY}"\n'
                  '[prod]\nendpoint = "https://prod.test/v1"\n')
    shown = _config(run)
    assert shown["endpoint"] == "https://file.test/v1" and shown["api_key"] == "set"
    assert "config file" in shown["endpoint_source"]
    assert _config(run, "--profile", "prod")["endpoint"] == "https://prod.test/v1"

    monkeypatch.setenv("OPSPAWN_ENDPOINT", "https://env.test/v1")
    shown = _config(run)
    assert shown["endpoint"] == "https://env.test/v1"
    assert shown["endpoint_source"] == "environment OPSPAWN_ENDPOINT"
    assert "config file" in shown["api_key_source"]

    shown = _config(run, "--endpoint", "https://flag.test/v1")
    assert shown["endpoint"] == "https://flag.test/v1"
    assert shown["endpoint_source"] == "flag --endpoint"

    code, out, _ = run("config", "show", endpoint=False)  # the table: key hidden
    assert code == 0 and "set (hidden)" in out


def test_config_file_from_env_and_flags_after_the_command(api: FakeApi, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          run: Run) -> None:
    path = _write_config(tmp_path / "elsewhere.toml",
                         f'[default]\nendpoint = "{ENDPOINT}"\napi_key = "{KEY}"\n')
    monkeypatch.setenv("OPSPAWN_CONFIG", str(path))
    api.route("POST", "/tasks/tsk_z/cancel", _summary("tsk_z", "CANCELLED"))
    code, _, _ = run("cancel", "tsk_z", endpoint=False)
    assert code == 0
    assert str(api.requests[-1].url).startswith(ENDPOINT)
    assert api.requests[-1].headers["Authorization"] == f"Bearer {KEY}"
    # flags after the command win over the file too
    code, _, _ = run("cancel", "tsk_z", "--endpoint", "https://other.test/v1", endpoint=False)
    assert code == 0 and api.requests[-1].url.host == "other.test"


def test_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Run) -> None:
    code, _, err = run("config", "show", "--profile", "prod", endpoint=False)
    assert code == 1 and "prod" in err
    path = _write_config(tmp_path / "bad.toml", "[default\nendpoint = 1")
    monkeypatch.setenv("OPSPAWN_CONFIG", str(path))
    code, _, err = run("config", "show", endpoint=False)
    assert code == 1 and "cannot read the config file" in err
    monkeypatch.setenv("OPSPAWN_CONFIG", str(tmp_path / "missing.toml"))
    code, _, err = run("config", "show", endpoint=False)
    assert code == 1 and "does not exist" in err


# --- the live display --------------------------------------------------------------------------


def test_watch_on_a_terminal_shows_a_spinner_line(api: FakeApi, run: Run,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich treats the captured stdout as a terminal
    monkeypatch.setenv("TERM", "xterm-256color")
    api.views = [_view("tsk_t", "RUNNING", [SYSTEM, USER], turn=1),
                 _view("tsk_t", "SUCCEEDED", [SYSTEM, USER, FINAL], turn=1, answer="42")]
    code, out, _ = run("watch", "tsk_t")
    assert code == 0
    assert "turn 1/10" in out and "tsk_t" in out  # the spinner's status line
    assert "SUCCEEDED" in out


def test_content_is_not_read_as_markup(api: FakeApi, run: Run) -> None:
    tricky = {"role": "tool", "tool_call_id": "c1", "name": "calculator",
              "content": "[/] [bold]not bold[/bold] [link=x]"}
    api.views = [_view("tsk_m", "SUCCEEDED", [SYSTEM, USER, CALL, tricky, FINAL],
                       answer="[red]plain[/red]")]
    code, out, _ = run("watch", "tsk_m")
    assert code == 0
    assert "[/] [bold]not bold[/bold] [link=x]" in out and "[red]plain[/red]" in out


def test_wait_timeout_says_how_to_go_on(api: FakeApi, run: Run) -> None:
    api.route("POST", "/tasks", _summary("tsk_s"), 202)
    api.views = [_view("tsk_s", "RUNNING", [SYSTEM, USER])]
    code, _, err = run("submit", "x", "--wait", "--timeout", "0")
    assert code == 1
    assert "still RUNNING" in err and "opspawn watch tsk_s" in err


def _steps(*statuses: str) -> list[dict[str, str]]:
    return [{"title": title, "status": status}
            for title, status in zip(["Add", "Multiply", "Power"], statuses, strict=True)]


def test_watch_shows_the_plan_as_a_checklist_that_ticks(api: FakeApi, run: Run) -> None:
    api.views = [
        _view("tsk_p", "RUNNING", [SYSTEM, USER], plan="always",
              plan_steps=_steps("pending", "pending", "pending")),
        _view("tsk_p", "RUNNING", [SYSTEM, USER, CALL], plan="always", turn=1,
              plan_steps=_steps("completed", "in_progress", "pending")),
        _view("tsk_p", "SUCCEEDED", [SYSTEM, USER, CALL, RESULT, FINAL], plan="always",
              turn=2, answer="6 * 7 = 42.", plan_steps=_steps("completed", "completed",
                                                              "completed")),
    ]
    code, out, _ = run("watch", "tsk_p")
    assert code == 0
    lines = [line.strip() for line in out.splitlines()
             if line.startswith("plan ") and "instructions" not in line]
    assert lines == [
        "plan    [ ] 1. Add", "plan    [ ] 2. Multiply", "plan    [ ] 3. Power",
        # each tick shows the steps that changed
        "plan    [x] 1. Add", "plan    [~] 2. Multiply",
        "plan    [x] 2. Multiply", "plan    [x] 3. Power",
    ]
    assert "3/3 steps done" in out  # the summary


def test_submit_sends_plan_and_output_schema_and_prints_answer_json(
    api: FakeApi, run: Run, tmp_path: Path
) -> None:
    api.route("POST", "/tasks", _summary("tsk_s", "RUNNING"))
    api.views = [_view("tsk_s", "SUCCEEDED", [SYSTEM, USER, FINAL], answer='{"n": 42}',
                       answer_json={"n": 42})]
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["n"]}))
    code, out, _ = run("submit", "What is 6 * 7?", "--plan", "auto",
                       "--output-schema", f"@{schema}", "--wait")
    assert code == 0
    [body] = api.bodies("POST", "/tasks")
    assert body["plan"] == "auto"
    assert body["output_schema"] == {"type": "object", "required": ["n"]}
    assert "answer_json" in out and '"n": 42' in out
    code, _, err = run("submit", "x", "--output-schema", "[1]")
    assert code == 1 and "--output-schema must be a JSON object" in err
