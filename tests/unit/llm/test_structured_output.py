"""Tool choice and structured output (`LLMRequest.tool_choice`, `.response_format`) through
each provider's real SDK (or wire code) against the loopback fakes
(tests/support/fake_providers.py), which check every body against the SDKs' own request
types: a field a provider would refuse gets its 400, so a passing call means the API would
take the body. The JSON reply comes back as the message's text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from agentkit.llm.base import LLMRequest, ResponseFormat, ToolChoice
from agentkit.models.domain import Message
from tests.support.fake_providers import PROVIDERS, FakeProviders, Reply, validate_body
from tests.support.providers import CALCULATOR, CURRENT_TIME, client_for

MODEL = {"openai": "gpt-4o-mini", "openrouter": "openai/gpt-4o-mini",
         "anthropic": "claude-haiku-4-5", "google": "gemini-2.5-flash"}

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city"],
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviders]:
    for provider in PROVIDERS:  # build the SDK request types once, outside any call's timeout
        validate_body(provider, {})
    with FakeProviders() as server:
        yield server


def call(fake: FakeProviders, provider: str, **fields: Any) -> tuple[Any, dict[str, Any]]:
    fake.reset()
    fake.script(provider, Reply(text=fields.pop("reply_text", "ok")))
    request = LLMRequest(model=MODEL[provider],
                         messages=[Message(role="user", content="Which city?")], **fields)
    response = client_for(provider, fake.base_urls[provider]).complete(request)
    [received] = fake.requests_for(provider)
    assert received.status == 200, received
    return response, received.body


def wire_tool_choice(provider: str, body: dict[str, Any]) -> Any:
    if provider == "google":
        return body["toolConfig"]["functionCallingConfig"]
    return body.get("tool_choice")


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (ToolChoice(mode="auto"), {"openai": "auto", "anthropic": {"type": "auto"},
                                   "google": {"mode": "AUTO"}}),
        (ToolChoice(mode="required"), {"openai": "required", "anthropic": {"type": "any"},
                                       "google": {"mode": "ANY"}}),
        (ToolChoice(mode="none"), {"openai": "none", "anthropic": {"type": "none"},
                                   "google": {"mode": "NONE"}}),
        (ToolChoice(mode="tool", name="calculator"),
         {"openai": {"type": "function", "function": {"name": "calculator"}},
          "anthropic": {"type": "tool", "name": "calculator"},
          "google": {"mode": "ANY", "allowedFunctionNames": ["calculator"]}}),
    ],
)
def test_tool_choice_in_each_providers_words(fake, provider, choice, expected):
    _, body = call(fake, provider, tools=[CALCULATOR, CURRENT_TIME], tool_choice=choice)
    wording = expected["openai" if provider == "openrouter" else provider]
    assert wire_tool_choice(provider, body) == wording


@pytest.mark.parametrize("provider", ["openai", "openrouter", "anthropic"])
def test_no_tool_choice_without_tools(fake, provider):
    # The APIs refuse a tool_choice with no tools; a request without tools sends none.
    _, body = call(fake, provider, tool_choice=ToolChoice(mode="none"))
    assert "tool_choice" not in body and "tools" not in body


def test_default_tool_choice_is_the_providers_own(fake):
    for provider in ("openai", "anthropic"):
        _, body = call(fake, provider, tools=[CALCULATOR])
        assert "tool_choice" not in body
    _, body = call(fake, "google", tools=[CALCULATOR])
    assert body["toolConfig"]["functionCallingConfig"] == {"mode": "AUTO"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_response_format_is_the_providers_native_structured_output(fake, provider):
    answer = json.dumps({"city": "Paris", "population": 2102650})
    response, body = call(
        fake, provider, reply_text=answer, tools=[CALCULATOR],
        response_format=ResponseFormat(name="answer", json_schema=CITY),
    )
    assert json.loads(response.message.content) == {"city": "Paris", "population": 2102650}
    if provider in ("openai", "openrouter"):
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": CITY, "strict": False},
        }
    elif provider == "anthropic":
        # Structured outputs want every object closed; the caller's schema is otherwise sent.
        assert body["output_config"] == {"format": {
            "type": "json_schema", "schema": {**CITY, "additionalProperties": False}}}
    else:
        # gemini-2.5 with tools that may be called: no response schema (it refuses both).
        assert "responseJsonSchema" not in body.get("generationConfig", {})


@pytest.mark.parametrize(
    ("model", "fields"),
    [("gemini-2.5-flash", {}),
     ("gemini-2.5-flash", {"tools": [CALCULATOR], "tool_choice": ToolChoice(mode="none")}),
     ("gemini-3-flash-preview", {"tools": [CALCULATOR]})],
)
def test_google_gets_a_response_schema_where_the_model_takes_it(fake, model, fields):
    fake.reset()
    fake.script("google", Reply(text='{"city": "Paris"}'))
    request = LLMRequest(model=model, messages=[Message(role="user", content="Which city?")],
                         response_format=ResponseFormat(json_schema=CITY), **fields)
    client_for("google", fake.base_urls["google"]).complete(request)
    [received] = fake.requests_for("google")
    assert received.status == 200
    config = received.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == CITY


def test_strict_response_format_for_openai(fake):
    schema = {"type": "object", "properties": {"steps": {"type": "array",
              "items": {"type": "string"}}}, "required": ["steps"],
              "additionalProperties": False}
    _, body = call(fake, "openai", reply_text='{"steps": []}',
                   response_format=ResponseFormat(name="plan", json_schema=schema, strict=True))
    assert body["response_format"]["json_schema"]["strict"] is True


def test_schemas_are_made_self_contained_for_anthropic_and_google(fake):
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "array",
        "items": {"$ref": "#/definitions/city"},
        "definitions": {"city": {"type": "object", "properties": {"name": {"type": "string"}},
                                 "required": ["name"], "default": {"name": "x"}}},
    }
    _, body = call(fake, "anthropic", reply_text="[]",
                   response_format=ResponseFormat(json_schema=schema))
    sent = body["output_config"]["format"]["schema"]
    # An array stays an array at the top (unlike a tool's input schema); refs inlined.
    assert sent["type"] == "array"
    assert sent["items"]["properties"] == {"name": {"type": "string"}}
    assert sent["items"]["additionalProperties"] is False
    assert "definitions" not in sent and "$schema" not in sent
    _, body = call(fake, "google", reply_text="[]",
                   response_format=ResponseFormat(json_schema=schema))
    sent = body["generationConfig"]["responseJsonSchema"]
    assert sent["type"] == "array"
    assert sent["items"]["required"] == ["name"]
    assert "default" not in sent["items"] and "Default" in sent["items"]["description"]


def test_a_tool_choice_names_its_tool_only_with_mode_tool():
    with pytest.raises(ValueError, match="tool name"):
        ToolChoice(mode="auto", name="calculator")
    with pytest.raises(ValueError, match="tool name"):
        ToolChoice(mode="tool")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_takes_the_planning_call(fake, provider):
    from agentkit.models.domain import Task
    from agentkit.planner.planning import plan_from_reply, planning_request

    task = Task(task_id="tsk_1", goal="Compare two cities.", model=f"{provider}:x",
                max_turns=5, plan="auto")
    fake.reset()
    fake.script(provider, Reply(text='{"steps": ["Look up both", "Compare"]}'))
    request = planning_request(task, [CALCULATOR], model=MODEL[provider])
    response = client_for(provider, fake.base_urls[provider]).complete(request)
    [received] = fake.requests_for(provider)
    assert received.status == 200, received
    assert [step.title for step in plan_from_reply(task, response)] == ["Look up both",
                                                                        "Compare"]
