"""The one real tool-call round trip every live provider test makes: the model is asked
for 1234 * 5678, must call the calculator, gets its result back and must answer
7006652. Each `test_<provider>_live.py` builds its client from the environment (and
skips without a key) and calls `tool_call_round_trip`. pytest does not rewrite the asserts
of this module (it is no test module), so each one names what it looked at."""

from __future__ import annotations

from agentkit.llm.base import BaseLLMClient, LLMRequest
from agentkit.models.domain import INVALID_ARGUMENTS_KEY, Message
from agentkit.tools import default_registry

SYSTEM_PROMPT = (
    "Use the calculator tool for every arithmetic question; never compute "
    "in your head. Reply with the number only once you have the tool's result."
)


def tool_call_round_trip(
    client: BaseLLMClient,
    model: str,
    *,
    max_tokens: int | None = None,
    call_id_prefix: str | None = None,
) -> None:
    """Two real requests: the first must end in a calculator call (ids starting with
    `call_id_prefix`, if given), the second, after the tool results, in the product.
    `max_tokens`: the output limit of both requests (None: the client's default)."""
    registry = default_registry()
    messages = [
        Message(role="system", content=SYSTEM_PROMPT),
        Message(role="user", content="What is 1234 * 5678?"),
    ]
    tools = registry.specs(["calculator"])

    first = client.complete(
        LLMRequest(model=model, messages=messages, tools=tools, max_tokens=max_tokens)
    )

    assert first.finish_reason == "tool_calls", first
    assert first.message.tool_calls, first
    call = first.message.tool_calls[0]
    assert call.name == "calculator", call
    if call_id_prefix is not None:
        assert call.id.startswith(call_id_prefix), call.id
    assert INVALID_ARGUMENTS_KEY not in call.arguments, call
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0, first.usage
    assert first.usage.model_calls == 1, first.usage

    results = [registry.run(c, allowed=["calculator"]) for c in first.message.tool_calls]
    assert not any(r.is_error for r in results), results
    messages += [first.message, *(r.to_message() for r in results)]

    # The replayed call goes back as each provider requires (Anthropic: tool_result blocks
    # in one user message; Gemini: without its real thought signature, which agentkit has
    # nowhere to keep): this second request proves the provider accepts it.
    second = client.complete(
        LLMRequest(model=model, messages=messages, tools=tools, max_tokens=max_tokens)
    )

    assert second.finish_reason == "stop", second
    assert second.message.content is not None, second
    assert "7006652" in second.message.content.replace(",", "").replace(" ", ""), second
