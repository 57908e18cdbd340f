"""Each Lambda handler fed its sample event from events/, on moto."""

from __future__ import annotations

import json

import boto3
import pytest

from agentkit.models.domain import TaskStatus
from agentkit.store import TaskStore
from tests.support.api_events import (
    EXAMPLE_ID,
    EXAMPLE_TENANT,
    as_tenant,
    call_handler,
    seed_example_task,
    submit_event,
)
from tests.support.aws import (
    FakeLambdaContext,
    RecordingStepFunctions,
    load_event,
    load_handler,
)


def test_submit_stores_the_task_and_starts_its_execution(
    state_machine_arn: str, store: TaskStore
) -> None:
    status, body = call_handler("submit", submit_event())
    assert status == 202
    assert body["status"] == "QUEUED" and body["goal"] == "What is 17 * 23?"
    task = store.require_task(body["task_id"])
    assert task.model == "scripted" and len(store.get_script(task.task_id)) == 2
    execution = boto3.client("stepfunctions").describe_execution(executionArn=task.execution_arn)
    assert execution["name"] == body["task_id"]
    assert json.loads(execution["input"]) == {"task_id": body["task_id"]}


@pytest.mark.parametrize(
    ("body", "status", "field", "problem"),
    [
        ('{"model": "scripted"}', 400, "goal", "Field required"),
        ('{"goal": ["not", "a", "string"]}', 400, "goal", "valid string"),
        ('{"goal": "x", "max_turns": "ten"}', 400, "max_turns", "valid integer"),
        ('{"goal": "x", "tools": ["calculator", "shell"]}', 400, "tools", "unknown tool(s): shell"),
        ('{"goal": "x", "extra": 1}', 400, "extra", "Extra inputs are not permitted"),
        ("goal=hello", 400, "body", "not valid JSON"),
        ("", 400, "body", "required"),
        (json.dumps({"goal": "x" * 70_000}), 413, "body", "larger than"),
    ],
)
def test_submit_rejects_bad_bodies_naming_the_field(
    state_machine_arn: str, store: TaskStore, body: str, status: int, field: str, problem: str
) -> None:
    got_status, answer = call_handler("submit", submit_event(body))
    assert got_status == status, answer
    assert answer["error"] in {"validation_error", "payload_too_large"}
    fields = {item["field"]: item["problem"] for item in answer["fields"]}
    assert field in fields, answer
    assert problem in fields[field]
    assert store.client.scan(TableName=store.table_name)["Count"] == 0  # nothing stored


def test_get_task_and_unknown_task(store: TaskStore) -> None:
    seed_example_task(store)
    status, body = call_handler("tasks", load_event("tasks_get_task.json"))
    assert status == 200
    assert body["task_id"] == EXAMPLE_ID and body["messages"] == []
    event = load_event("tasks_get_task.json")
    event["path"] = "/tasks/tsk_nope"
    event["pathParameters"] = {"task_id": "tsk_nope"}
    status, body = call_handler("tasks", event)
    assert status == 404
    assert body == {"error": "not_found", "message": "task 'tsk_nope' not found"}


def test_submit_stores_the_callers_tenant(state_machine_arn: str, store: TaskStore) -> None:
    status, body = call_handler("submit", as_tenant(submit_event(), "acme"))
    assert status == 202
    assert store.require_task(body["task_id"]).tenant_id == "acme"
    # the tenant is the authorizer's word only: nothing in the body or headers can set it
    assert "tenant" not in json.dumps(body)


def test_another_tenants_task_answers_exactly_like_an_unknown_id(store: TaskStore) -> None:
    seed_example_task(store)
    status, mine = call_handler("tasks",
                                as_tenant(load_event("tasks_get_task.json"), EXAMPLE_TENANT))
    assert status == 200 and mine["task_id"] == EXAMPLE_ID

    status, theirs = call_handler("tasks", as_tenant(load_event("tasks_get_task.json"), "intruder"))
    unknown_event = as_tenant(load_event("tasks_get_task.json"), "intruder")
    unknown_event["path"] = "/tasks/tsk_01JUNKNOWN000000000000000000"
    unknown_event["pathParameters"] = {"task_id": "tsk_01JUNKNOWN000000000000000000"}
    unknown_status, unknown = call_handler("tasks", unknown_event)
    assert status == unknown_status == 404
    assert theirs == {"error": "not_found", "message": f"task '{EXAMPLE_ID}' not found"}
    assert set(theirs) == set(unknown) and unknown["message"].startswith("task 'tsk_01JUNKNOWN")


@pytest.mark.parametrize("function", ["submit", "tasks"])
def test_a_request_without_a_tenant_is_refused_never_defaulted(
    function: str, state_machine_arn: str, store: TaskStore, caplog: pytest.LogCaptureFixture
) -> None:
    seed_example_task(store)
    before = store.client.scan(TableName=store.table_name)["Count"]
    event = submit_event() if function == "submit" else load_event("tasks_get_task.json")
    status, body = call_handler(function, as_tenant(event, None))
    assert status == 500
    assert body["error"] == "internal_error" and "no tenant" in body["message"]
    assert store.client.scan(TableName=store.table_name)["Count"] == before  # nothing stored
    assert "refused a request without a tenant" in caplog.messages  # the clear log


def test_the_loop_through_the_step_handlers(store: TaskStore) -> None:
    seed_example_task(store)
    context = FakeLambdaContext()
    plan = load_handler("plan").lambda_handler(load_event("plan.json"), context)
    assert plan == {"task_id": EXAMPLE_ID, "turn": 0}
    assert store.require_task(EXAMPLE_ID).status == TaskStatus.RUNNING

    call_model = load_handler("call_model")
    step = call_model.lambda_handler(load_event("call_model.json"), context)
    assert step["action"] == "tool_calls" and step["turn"] == 1
    assert step["tool_calls"] == [
        {"task_id": EXAMPLE_ID, "turn": 1, "call_id": "call_1_0", "index": 0}
    ]
    assert step["approvals"] == [] and step["route"] == "run_tools"

    run_tools = load_handler("run_tools")
    run_tools._sfn = sfn = RecordingStepFunctions()
    sqs_event = load_event("run_tools_sqs.json")
    assert json.loads(sqs_event["Records"][0]["body"])["tool_calls"] == step["tool_calls"]
    assert run_tools.lambda_handler(sqs_event, context) == {"batchItemFailures": []}
    [(kind, call)] = sfn.calls
    assert (
        kind == "success"
        and call["taskToken"] == json.loads(sqs_event["Records"][0]["body"])["task_token"]
    )
    [result] = json.loads(call["output"])["results"]
    assert result == {"call_id": "call_1_0", "is_error": False,
                      "duration_ms": result["duration_ms"]}

    step = call_model.lambda_handler({"task_id": EXAMPLE_ID, "turn": 1}, context)
    assert step["action"] == "final"
    done = load_handler("finalize").lambda_handler(load_event("finalize_succeeded.json"), context)
    assert done == {"task_id": EXAMPLE_ID, "status": "SUCCEEDED"}
    task = store.require_task(EXAMPLE_ID)
    assert task.answer == "17 * 23 = 391."
    assert task.usage.input_tokens == 280 and task.usage.output_tokens == 27


def test_finalize_failed_records_a_readable_reason(store: TaskStore) -> None:
    seed_example_task(store)
    result = load_handler("finalize").lambda_handler(
        load_event("finalize_failed.json"), FakeLambdaContext()
    )
    assert result["status"] == "FAILED"
    assert store.require_task(EXAMPLE_ID).error == "ModelRequestError: openai: 401 invalid api key"


def test_finalize_stopped_keeps_the_status_the_loop_wrote(store: TaskStore) -> None:
    seed_example_task(store)
    store.finish_task(EXAMPLE_ID, TaskStatus.CANCELLED, error="cancelled by the caller")
    result = load_handler("finalize").lambda_handler(
        load_event("finalize_stopped.json"), FakeLambdaContext()
    )
    assert result["status"] == "CANCELLED"
    assert store.require_task(EXAMPLE_ID).error == "cancelled by the caller"


def test_tool_poison_message_is_a_batch_failure_and_fails_the_wait_on_last_try(
    store: TaskStore,
) -> None:
    tool = load_handler("run_tools")
    tool._sfn = sfn = RecordingStepFunctions()
    event = load_event("run_tools_sqs.json")  # no such task in the table: the call cannot run
    message_id = event["Records"][0]["messageId"]
    assert tool.lambda_handler(event, FakeLambdaContext()) == {
        "batchItemFailures": [{"itemIdentifier": message_id}]
    }
    assert sfn.calls == []  # first delivery: SQS will retry
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "3"
    tool.lambda_handler(event, FakeLambdaContext())
    [(kind, call)] = sfn.calls
    assert kind == "failure" and call["error"] == "ToolCallFailed"
    assert "not found" in call["cause"]


def test_a_batch_reports_only_the_turn_that_failed(store: TaskStore) -> None:
    """Two turns in one SQS batch, one of a task that does not exist: only that record is an
    item failure, so SQS redelivers it alone and the other turn's tool does not run twice."""
    seed_example_task(store)
    context = FakeLambdaContext()
    load_handler("plan").lambda_handler(load_event("plan.json"), context)
    load_handler("call_model").lambda_handler(load_event("call_model.json"), context)
    tool = load_handler("run_tools")
    tool._sfn = sfn = RecordingStepFunctions()
    event = load_event("run_tools_sqs.json")
    good = event["Records"][0]
    poison = json.loads(json.dumps(good))
    poison["messageId"] = "poison-1"
    body = json.loads(poison["body"])
    body["task_id"] = body["tool_calls"][0]["task_id"] = "tsk_01JNOSUCHTASK000000000000"
    poison["body"] = json.dumps(body)
    event["Records"] = [poison, good]
    assert tool.lambda_handler(event, context) == {
        "batchItemFailures": [{"itemIdentifier": "poison-1"}]
    }
    [(kind, call)] = sfn.calls  # the good turn answered its wait; the poison one will retry
    assert kind == "success" and call["taskToken"] == json.loads(good["body"])["task_token"]


def test_step_handlers_reject_malformed_events(store: TaskStore) -> None:
    from aws_lambda_powertools.utilities.parser import ValidationError

    with pytest.raises(ValidationError, match="turn"):
        load_handler("call_model").lambda_handler({"task_id": EXAMPLE_ID, "turn": -1},
                                                  FakeLambdaContext())


def test_a_body_that_is_not_utf8_is_a_400_not_a_500(state_machine_arn: str) -> None:
    import base64

    event = submit_event(base64.b64encode(b"\x9c\x80 not text").decode())
    event["isBase64Encoded"] = True
    status, answer = call_handler("submit", event)
    assert status == 400
    assert answer["fields"] == [{"field": "body", "problem": "not UTF-8 encoded JSON"}]
