"""Fitting the conversation to the model's window: counting, the plan, cutting, chunking."""

from __future__ import annotations

import pytest

from agentkit.llm.base import LLMRequest, ModelRequestError
from agentkit.llm.scripted import ScriptedClient
from agentkit.llm.windows import context_window
from agentkit.memory.context import (
    MESSAGE_OVERHEAD_TOKENS,
    MIN_HARDER_WINDOW,
    SUMMARY_INSTRUCTIONS,
    ContextSummary,
    ContextTooSmallError,
    FittedContext,
    Turn,
    TurnCount,
    chunk_turns,
    context_overflow,
    count_turns,
    cut_message,
    estimate_message_tokens,
    estimate_text_tokens,
    fill_shares,
    harder_window,
    plan_context,
    split_turns,
    summary_request,
)
from agentkit.models.domain import Message, ToolCall, Usage


def _reply(turn: int, *, usage: Usage | None = None, model: str = "openai:gpt-4o-mini",
           calls: int = 1) -> Message:
    return Message(role="assistant", model=model, usage=usage,
                   tool_calls=[ToolCall(id=f"c{turn}_{i}", name="dump", arguments={"n": i})
                               for i in range(calls)])


def _result(turn: int, size: int, index: int = 0) -> Message:
    return Message(role="tool", tool_call_id=f"c{turn}_{index}", name="dump", content="x" * size)


OPENING = [Message(role="system", content="You are an agent."),
           Message(role="user", content="Do the thing.")]


# --- the estimate


def test_the_estimate_is_three_bytes_a_token_rounded_up() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("abc") == 1 and estimate_text_tokens("abcd") == 2
    # non-Latin text takes more bytes a character, so more tokens
    assert estimate_text_tokens("数据库") == 3


def test_the_estimate_errs_high_on_english_text() -> None:
    prose = "The quick brown fox jumps over the lazy dog. " * 100
    # ~4 characters a token is what BPE tokenizers average on English prose
    assert estimate_text_tokens(prose) > len(prose) / 4


def test_a_claim_checked_output_counts_with_its_real_size() -> None:
    preview = Message(role="tool", tool_call_id="c", content="x" * 2000 + "\n[… stored]",
                      content_ref="s3://b/k", content_bytes=60_000)
    assert estimate_message_tokens(preview) >= 20_000
    # beyond what is ever sent (100,000 characters), it is capped
    huge = preview.model_copy(update={"content_bytes": 50_000_000})
    assert estimate_message_tokens(huge) <= 400_200 // 3 + MESSAGE_OVERHEAD_TOKENS + 1
    # up to 100,000 bytes it is sent whole: counted exactly
    assert estimate_message_tokens(preview) == MESSAGE_OVERHEAD_TOKENS + 20_000


def test_tool_calls_count() -> None:
    bare = Message(role="assistant", content="hi")
    assert estimate_message_tokens(_reply(1)) > estimate_message_tokens(bare) - 1


# --- turns and their counts


def test_turns_keep_each_reply_with_its_results() -> None:
    messages = [*OPENING, _reply(1, calls=2), _result(1, 10), _result(1, 10, 1), _reply(2)]
    turns = split_turns(messages)
    assert [t.number for t in turns] == [0, 1, 2]
    assert [m.role for m in turns[1].messages] == ["assistant", "tool", "tool"]
    assert turns[0].messages == OPENING


def test_the_providers_count_of_a_turn_is_the_growth_of_the_next_request() -> None:
    turns = split_turns([
        *OPENING,
        _reply(1, usage=Usage(input_tokens=5_000, output_tokens=30)),
        _result(1, 300),  # ~100 tokens by the estimate
        _reply(2, usage=Usage(input_tokens=7_000, output_tokens=20)),
    ])
    counts = count_turns(turns, tools_tokens=10)
    # request 1 was the opening and the tools: the provider counted 5,000
    assert counts[0].tokens == 5_000 and counts[0].measured
    # request 2 = request 1 + turn 1: 2,000 more
    assert counts[1].tokens == 2_000 and counts[1].measured
    assert sum(counts[1].messages) == 2_000
    # the latest turn: its reply's output tokens, or the estimate if larger
    assert counts[2].tokens == max(20, estimate_message_tokens(turns[2].messages[0]))


def test_a_provider_count_below_the_estimate_never_lowers_it() -> None:
    turns = split_turns([*OPENING, _reply(1, usage=Usage(input_tokens=1)), _result(1, 30_000),
                         _reply(2, usage=Usage(input_tokens=2))])
    counts = count_turns(turns, tools_tokens=0)
    estimate = sum(estimate_message_tokens(m) for m in turns[1].messages)
    assert counts[1].tokens == estimate and not counts[1].measured


@pytest.mark.parametrize("case", ["other model", "new summary", "above the window"])
def test_growth_is_not_a_count_when_the_requests_differ_otherwise(case: str) -> None:
    second = _reply(2, usage=Usage(input_tokens=90_000),
                    model="anthropic:claude-sonnet-4-5" if case == "other model"
                    else "openai:gpt-4o-mini")
    turns = split_turns([*OPENING, _reply(1, usage=Usage(input_tokens=100)), _result(1, 30),
                         second])
    counts = count_turns(turns, tools_tokens=0,
                         new_summary_turns=frozenset({2} if case == "new summary" else ()),
                         window=50_000 if case == "above the window" else None)
    estimate = sum(estimate_message_tokens(m) for m in turns[1].messages)
    assert counts[1].tokens == estimate


# --- the plan


def _counts(*sizes: int, first: int = 1) -> list[TurnCount]:
    return [TurnCount(first + i, size, [size], False) for i, size in enumerate(sizes)]


def test_a_conversation_that_fits_is_sent_whole() -> None:
    plan = plan_context(fixed=1_000, live=_counts(3_000, 3_000), summary_tokens=0,
                        budget=7_000, summary_max=1_000)
    assert plan.fold == [] and plan.keep == [1, 2] and plan.squeeze is None
    assert plan.tokens == 7_000  # exactly the budget still fits


def test_one_token_over_folds_the_older_turns_and_keeps_the_latest() -> None:
    plan = plan_context(fixed=1_001, live=_counts(3_000, 3_000), summary_tokens=0,
                        budget=7_000, summary_max=1_000)
    assert plan.fold == [1] and plan.keep == [2] and plan.squeeze is None
    assert plan.tokens <= 7_000


def test_the_kept_turns_fill_at_most_the_keep_share_of_the_room() -> None:
    # room after the opening and a summary: 10,000 - 1,000 - 1,000 = 8,000; half: 4,000
    plan = plan_context(fixed=1_000, live=_counts(*[1_000] * 10), summary_tokens=0,
                        budget=10_000, summary_max=1_000)
    assert plan.keep == [7, 8, 9, 10] and plan.fold == [1, 2, 3, 4, 5, 6]


def test_turns_after_the_current_summary_are_the_ones_folded() -> None:
    plan = plan_context(fixed=1_000, live=_counts(3_000, 3_000, 3_000, first=5),
                        summary_tokens=800, budget=10_000, summary_max=1_000)
    assert plan.fold == [5, 6] and plan.keep == [7]


def test_the_latest_turn_alone_too_large_is_squeezed_not_folded() -> None:
    plan = plan_context(fixed=1_000, live=_counts(20_000), summary_tokens=500,
                        budget=10_000, summary_max=1_000)
    assert plan.fold == [] and plan.keep == [1] and plan.squeeze == 8_500
    plan = plan_context(fixed=1_000, live=_counts(2_000, 20_000), summary_tokens=0,
                        budget=10_000, summary_max=1_000)
    assert plan.fold == [1] and plan.keep == [2] and plan.squeeze == 8_000


def test_an_opening_that_leaves_no_room_is_an_error() -> None:
    with pytest.raises(ContextTooSmallError, match="system prompt, the goal"):
        plan_context(fixed=9_500, live=_counts(1_000), summary_tokens=0, budget=10_000,
                     summary_max=1_000)


def test_fill_shares_keeps_small_parts_whole_and_cuts_the_large_equally() -> None:
    assert fill_shares([100, 5_000, 9_000], 4_100) == [100, 2_000, 2_000]
    assert fill_shares([10, 20], 100) == [10, 20]
    assert sum(fill_shares([7, 7, 7], 10)) <= 10


def test_a_cut_message_counts_at_most_its_allowance_and_says_where_the_rest_is() -> None:
    message = Message(role="tool", tool_call_id="c", content="é" * 50_000,
                      content_ref="s3://bucket/key")
    cut = cut_message(message, 1_000, why="to fit")
    assert estimate_message_tokens(cut) <= 1_000
    assert (cut.content or "").startswith("éé")
    assert "50000 characters in all" in (cut.content or "") and "s3://bucket/key" in (
        cut.content or "")
    assert cut_message(_result(1, 10), 1_000, why="x") == _result(1, 10)


# --- the summary call


def _big_turn(number: int, size: int) -> Turn:
    return Turn(number, [_reply(number), _result(number, size)])


def test_turns_are_chunked_so_each_summary_call_fits() -> None:
    turns = [_big_turn(n, 9_000) for n in range(1, 7)]  # ~3,000 tokens each
    chunks = chunk_turns(turns, 7_000)
    assert [[turn.number for turn, _ in chunk] for chunk in chunks] == [[1, 2], [3, 4], [5, 6]]
    for chunk in chunks:
        assert sum(estimate_text_tokens(text) + MESSAGE_OVERHEAD_TOKENS
                   for _, text in chunk) <= 7_000


def test_a_turn_too_large_for_one_summary_call_shows_its_outputs_cut() -> None:
    [[(turn, text)]] = chunk_turns([_big_turn(3, 300_000)], 5_000)
    assert turn.number == 3 and estimate_text_tokens(text) + MESSAGE_OVERHEAD_TOKENS <= 5_000
    assert "[turn 3] assistant called dump" in text and "cut for the summary" in text


def test_the_summary_request_carries_the_goal_the_summary_so_far_and_the_turns() -> None:
    previous = ContextSummary(through_turn=4, for_turn=6, text="found A=1", model="scripted")
    request = summary_request("scripted", goal="Find A and B.", previous=previous,
                              transcript="[turn 5] assistant: B is 2", first_turn=5,
                              last_turn=5, max_tokens=500)
    assert request.purpose == "summary" and request.max_tokens == 500 and not request.tools
    assert request.messages[0].content == SUMMARY_INSTRUCTIONS
    prompt = request.messages[1].content or ""
    assert "Find A and B." in prompt and "found A=1" in prompt and "B is 2" in prompt


def test_the_scripted_model_plays_summaries_and_chains_them() -> None:
    client = ScriptedClient([])
    first = client.complete(summary_request(
        "scripted", goal="g", previous=None, first_turn=1, last_turn=1, max_tokens=500,
        transcript="[turn 1] assistant called dump {}\n[turn 1] result of dump (c):\nxxxx"))
    text = first.message.content or ""
    assert text.splitlines() == ["[turn 1] assistant called dump {}",
                                 "[turn 1] result of dump (c):"]
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    previous = ContextSummary(through_turn=1, for_turn=3, text=text, model="scripted")
    second = client.complete(summary_request(
        "scripted", goal="g", previous=previous, first_turn=2, last_turn=2, max_tokens=500,
        transcript="[turn 2] assistant: done"))
    assert (second.message.content or "").splitlines() == [*text.splitlines(),
                                                           "[turn 2] assistant: done"]


def test_the_scripted_model_plays_the_turn_the_loop_asks_for() -> None:
    from agentkit.models.scripted import ScriptedTurn

    client = ScriptedClient([ScriptedTurn(content="one"), ScriptedTurn(content="two")])
    # a compacted conversation shows no earlier reply: the request's turn decides
    request = LLMRequest(model="scripted", messages=OPENING, turn=2)
    assert client.complete(request).message.content == "two"


def test_context_windows_come_from_the_table_with_overrides() -> None:
    assert context_window("openai:gpt-4o-mini") == 128_000
    assert context_window("openai:gpt-3.5-turbo") == 16_385
    assert context_window("anthropic:claude-sonnet-4-5-20250929") == 200_000
    assert context_window("openai:some-new-model") == 32_768  # the default
    assert context_window("scripted", {"scripted": 16_000}) == 16_000


# --- a request the provider refused as too long


@pytest.mark.parametrize("message", [
    "openai: 400 This model's maximum context length is 128000 tokens (context_length_exceeded)",
    "anthropic: 400 prompt is too long: 210000 tokens > 200000 maximum",
    "anthropic: 400 input length and `max_tokens` exceed context limit: 190000 + 20000 > 200000",
    "google: 400 INVALID_ARGUMENT The input token count (1200000) exceeds the maximum number "
    "of tokens allowed (1048576).",
    "embeddings: 400 the request exceeds the context window of this model",
])
def test_the_providers_wordings_of_a_prompt_too_long(message: str) -> None:
    assert context_overflow(ModelRequestError(message))


@pytest.mark.parametrize("message", ["openai: 401 invalid api key",
                                     "openai: 404 model not found", "google: 400 bad schema"])
def test_other_refusals_are_not_overflows(message: str) -> None:
    assert not context_overflow(ModelRequestError(message))


def test_a_harder_window_is_two_thirds_of_the_refused_request() -> None:
    fitted = FittedContext(messages=[], tokens=11_000, window=64_000, reserve=4_000, summary=None)
    assert harder_window(fitted) == 10_000
    small = FittedContext(messages=[], tokens=500, window=64_000, reserve=100, summary=None)
    assert harder_window(small) == MIN_HARDER_WINDOW
    full = FittedContext(messages=[], tokens=60_000, window=64_000, reserve=4_000, summary=None)
    assert harder_window(full) == 42_666  # never more than the window it was fitted to
