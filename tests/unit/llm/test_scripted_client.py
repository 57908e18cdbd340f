from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentkit.llm import LLMRequest, ModelRequestError, RetryableModelError, get_client
from agentkit.llm.base import ModelError, OverloadedError, ProviderOutageError, RateLimitedError
from agentkit.llm.scripted import ScriptedClient
from agentkit.models.domain import Message, ToolCall, Usage
from agentkit.models.scripted import ScriptedTurn


def _turns(*raw: dict[str, object]) -> list[ScriptedTurn]:
    return [ScriptedTurn.model_validate(item) for item in raw]


def _request(assistant_turns: int) -> LLMRequest:
    messages = [Message(role="system", content="s"), Message(role="user", content="goal")]
    for index in range(assistant_turns):
        messages.append(
            Message(role="assistant", tool_calls=[ToolCall(id=f"c{index}", name="calculator")])
        )
        messages.append(Message(role="tool", content="1", tool_call_id=f"c{index}"))
    return LLMRequest(model="scripted", messages=messages)


def test_plays_turns_in_conversation_order() -> None:
    client = ScriptedClient(
        _turns(
            {"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}},
                            {"name": "current_time"}]},
            {"content": "done", "usage": {"input_tokens": 7, "output_tokens": 3}},
        )
    )
    first = client.complete(_request(0))
    assert first.finish_reason == "tool_calls"
    assert [c.name for c in first.message.tool_calls] == ["calculator", "current_time"]
    assert len({c.id for c in first.message.tool_calls}) == 2
    assert first.usage.input_tokens > 0 and first.usage.model_calls == 1
    second = client.complete(_request(1))
    assert second.finish_reason == "stop"
    assert second.message.content == "done"
    assert second.usage == Usage(input_tokens=7, output_tokens=3, model_calls=1)


def test_running_out_of_turns_is_a_clear_error() -> None:
    client = ScriptedClient(_turns({"content": "only one"}))
    with pytest.raises(ModelRequestError, match="has 1 turn"):
        client.complete(_request(1))


@pytest.mark.parametrize(("kind", "error"), [("fatal", ModelRequestError),
                                             ("retryable", RetryableModelError)])
def test_scripted_errors(kind: str, error: type[Exception]) -> None:
    client = ScriptedClient(_turns({"error": {"kind": kind, "message": "boom"}}))
    with pytest.raises(error, match="boom") as caught:
        client.complete(_request(0))
    assert type(caught.value) is error


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [("rate_limited", RateLimitedError, 429), ("overloaded", OverloadedError, 503),
     ("outage", ProviderOutageError, 500), ("retryable", RetryableModelError, None)],
)
def test_scripted_error_kinds_play_the_provider_s_error(
    kind: str, error: type[ModelError], status: int | None
) -> None:
    client = ScriptedClient(_turns(
        {"error": {"kind": kind, "message": "slow down", "retry_after_s": 12.5}},
        {"content": "after the wait"},
    ))
    with pytest.raises(error) as caught:
        client.complete(_request(0))
    raised = caught.value
    assert type(raised) is error and raised.retryable
    assert raised.retry_after_s == 12.5 and raised.status_code == status
    assert raised.kind == (kind if kind != "retryable" else "retryable")
    assert client.complete(_request(1)).message.content == "after the wait"


def test_a_scripted_error_without_a_wait_has_none() -> None:
    client = ScriptedClient(_turns({"error": {"kind": "rate_limited", "message": "429"}}))
    with pytest.raises(RateLimitedError) as caught:
        client.complete(_request(0))
    assert caught.value.retry_after_s is None


@pytest.mark.parametrize(
    "error",
    [{"kind": "fatal", "message": "x", "retry_after_s": 3},  # a fatal error has no wait
     {"kind": "rate_limited", "message": "x", "retry_after_s": -1},
     {"kind": "throttled", "message": "x"},
     {"kind": "outage", "message": "x", "status": 500}],
)
def test_scripted_error_shapes_are_checked(error: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ScriptedTurn.model_validate({"error": error})


def test_the_original_error_form_still_validates() -> None:
    turn = ScriptedTurn.model_validate({"error": {"message": "boom"}})
    assert turn.error is not None and turn.error.kind == "fatal"


def test_scripted_is_chosen_only_explicitly_and_when_enabled() -> None:
    turns = _turns({"content": "x"})
    client = get_client("scripted", scripted_turns=turns, scripted_enabled=True)
    assert isinstance(client, ScriptedClient)
    with pytest.raises(ModelRequestError, match="disabled"):
        get_client("scripted", scripted_turns=turns, scripted_enabled=False)
    with pytest.raises(ModelRequestError, match="unknown model provider 'acme'"):
        get_client("acme:big-model", scripted_enabled=True)


def _plan_request() -> LLMRequest:
    return LLMRequest(model="scripted", purpose="plan",
                      messages=[Message(role="user", content="plan the goal")])


def test_a_plan_turn_answers_the_planning_call_and_the_turns_follow() -> None:
    client = ScriptedClient(_turns({"plan": ["Look up", "Answer"],
                                    "usage": {"input_tokens": 9, "output_tokens": 3}},
                                   {"content": "done"}))
    planned = client.complete(_plan_request())
    assert planned.message.content == '{"steps": ["Look up", "Answer"]}'
    assert planned.usage == Usage(input_tokens=9, output_tokens=3, model_calls=1)
    # Turn 1 is the script's first turn after the plan.
    assert client.complete(LLMRequest(model="scripted", messages=[], turn=1)
                           ).message.content == "done"


def test_without_a_plan_turn_the_planning_call_gets_no_steps() -> None:
    client = ScriptedClient(_turns({"content": "done"}))
    assert client.complete(_plan_request()).message.content == '{"steps": []}'
    assert client.complete(LLMRequest(model="scripted", messages=[], turn=1)
                           ).message.content == "done"


def test_a_plan_turn_is_only_a_plan() -> None:
    with pytest.raises(ValidationError, match="no content or tool_calls"):
        ScriptedTurn.model_validate({"plan": ["a"], "content": "b"})
    with pytest.raises(ValidationError, match="at most 10"):
        ScriptedTurn.model_validate({"plan": [f"step {n}" for n in range(11)]})
