"""PROVIDER_LIMITS parsing (a bad value names its field), the scopes a model takes from, and
the token estimate reserved before a call."""

from __future__ import annotations

import pytest

from agentkit.config.model_calls import ProviderLimitSettings
from agentkit.llm.base import LLMRequest
from agentkit.llm.limiter import (
    DEFAULT_OUTPUT_TOKENS,
    Limiter,
    ProviderLimits,
    estimate_tokens,
)
from agentkit.models.domain import Message, ToolCall, ToolSpec
from agentkit.store.provider_state import RateGrant, WindowLimit

EXAMPLE = ('{"openai": {"rpm": 500, "tpm": 200000}, "anthropic": {"rpm": 50}, '
           '"openai:gpt-4o-mini": {"tpm": 100000}}')


def test_the_documented_example_parses_into_scopes() -> None:
    limits = ProviderLimits.parse(EXAMPLE)
    assert limits.for_model("openai:gpt-4o-mini") == [
        WindowLimit("openai", 500, 200_000), WindowLimit("openai:gpt-4o-mini", None, 100_000)]
    assert limits.for_model("openai:gpt-4o") == [WindowLimit("openai", 500, 200_000)]
    assert limits.for_model("anthropic:claude-haiku-4-5") == [WindowLimit("anthropic", 50, None)]
    assert limits.for_model("google:gemini-2.5-flash") == []


@pytest.mark.parametrize("raw", [None, "", "  ", "{}"])
def test_empty_or_absent_means_no_limits(raw: str | None) -> None:
    assert ProviderLimits.parse(raw).for_model("openai:gpt-4o") == []


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ('{"openai": {"rpm": 0}}', "openai.rpm"),
        ('{"openai": {"tpm": -5}}', "openai.tpm"),
        ('{"openai": {"rpm": "many"}}', "openai.rpm"),
        ('{"anthropic": {"rqm": 5}}', "anthropic.rqm"),
        ('{"openai:": {"rpm": 5}}', "'openai:'"),
        ('[{"rpm": 5}]', "PROVIDER_LIMITS"),
        ("{openai", "PROVIDER_LIMITS is not JSON"),
    ],
)
def test_a_bad_value_raises_naming_the_field(raw: str, named: str) -> None:
    with pytest.raises(ValueError, match="PROVIDER_LIMITS") as caught:
        ProviderLimits.parse(raw)
    assert named in str(caught.value)


def test_settings_read_the_limits_and_refuse_a_bad_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", "t")
    monkeypatch.setenv("PROVIDER_LIMITS", EXAMPLE)
    assert ProviderLimitSettings.from_env().provider_limits == ProviderLimits.parse(EXAMPLE)
    monkeypatch.setenv("PROVIDER_LIMITS", '{"openai": {"rpm": 0}}')
    with pytest.raises(RuntimeError, match=r"openai\.rpm"):
        ProviderLimitSettings.from_env()
    monkeypatch.delenv("PROVIDER_LIMITS")
    assert ProviderLimitSettings.from_env().provider_limits.for_model("openai:x") == []


def test_estimate_counts_messages_tools_and_the_output_allowance() -> None:
    bare = LLMRequest(model="m", messages=[Message(role="user", content="x" * 400)])
    assert estimate_tokens(bare) == 100 + 4 + DEFAULT_OUTPUT_TOKENS
    capped = bare.model_copy(update={"max_tokens": 50})
    assert estimate_tokens(capped) == 100 + 4 + 50
    tool = ToolSpec(name="calc", description="d" * 200, parameters={"type": "object"})
    call = ToolCall(id="1", name="calc", arguments={"expression": "1+1" * 100})
    richer = capped.model_copy(update={
        "tools": [tool],
        "messages": [*bare.messages, Message(role="assistant", tool_calls=[call])],
    })
    assert estimate_tokens(richer) > estimate_tokens(capped) + 50 + 4 + 75


def test_a_limiter_without_a_store_or_limits_grants_without_writing() -> None:
    assert Limiter(ProviderLimits.parse(EXAMPLE)).take("openai:gpt-4o", 10**9) == RateGrant()
    assert Limiter().take("openai:gpt-4o", 10**9) == RateGrant()
