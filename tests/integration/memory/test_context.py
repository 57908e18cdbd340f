"""The conversation fitted to a small window, through CallModel on moto: summaries stored
as their own items, requests within the window, usage and timeline."""

from __future__ import annotations

import pytest

from agentkit.api.tasks import get_task_view
from agentkit.llm import LLMRequest, LLMResponse, ModelRequestError
from agentkit.llm.base import BaseLLMClient
from agentkit.llm.scripted import ScriptedClient
from agentkit.loop.call_model import call_model
from agentkit.loop.plan import plan_task
from agentkit.memory.context import (
    ContextSummary,
    estimate_request_tokens,
    load_summaries,
)
from agentkit.models.domain import Message, Task, TaskStatus, ToolSpec, Usage
from agentkit.models.payloads import TaskRef, TurnRef
from agentkit.models.scripted import ScriptedToolCall, ScriptedTurn
from agentkit.store import TaskStore
from agentkit.tools import ToolRegistry

WINDOW = 16_000
WINDOWS = {"scripted": WINDOW}
RESERVE = WINDOW // 4  # the reply's room: 4096, at most a quarter of the window


def _output(turn: int, size: int = 20_000) -> str:
    """`size` characters of numbered lines, different each turn."""
    line = f"turn {turn:03d} line "
    return "".join(f"{line}{i:06d}\n" for i in range(size // (len(line) + 7) + 1))[:size]


class Recording(BaseLLMClient):
    """The scripted client, keeping every request it is sent."""

    provider = "scripted"

    def __init__(self, turns: list[ScriptedTurn]) -> None:
        self.inner = ScriptedClient(turns)
        self.turns = turns
        self.requests: list[LLMRequest] = []
        self.tools: list[ToolSpec] = []

    def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        return self.inner.complete(request)


def _task(store: TaskStore, registry: ToolRegistry, turns: int, task_id: str = "tsk_ctx"
          ) -> tuple[str, Recording]:
    script = [ScriptedTurn(tool_calls=[ScriptedToolCall(name="calculator",
                                                        arguments={"expression": f"{n} + 1"})])
              for n in range(1, turns)]
    script.append(ScriptedTurn(content="All done."))
    store.create_task(Task(task_id=task_id, goal="Read every dump and report.",
                           model="scripted", tools=["calculator"], max_turns=50,
                           status=TaskStatus.RUNNING, scripted_turns=script))
    plan_task(TaskRef(task_id=task_id), store=store, registry=registry)
    return task_id, Recording(script)


def _drive(store: TaskStore, task_id: str, client: BaseLLMClient, *, size: int = 20_000,
           windows: dict[str, int] | None = None) -> int:
    """CallModel turn after turn; each tool call answered with a `size`-character output
    (as RunTools would store it). The last turn made."""
    turn = 0
    while True:
        output = call_model(TurnRef(task_id=task_id, turn=turn), store=store,
                            client_for=lambda *_: client, context_windows=windows or WINDOWS)
        if output.action != "tool_calls":
            assert output.action == "final", output
            return output.turn
        for ref in output.tool_calls:
            store.put_message(task_id, ref.turn, ref.index + 1, Message(
                role="tool", tool_call_id=ref.call_id, name="calculator",
                content=_output(ref.turn, size)))
        turn = output.turn


def _pairs_whole(messages: list[Message]) -> bool:
    """Every tool result follows the reply that called it, every call has its result."""
    open_calls: set[str] = set()
    for message in messages:
        if message.role == "assistant":
            if open_calls:
                return False
            open_calls = {call.id for call in message.tool_calls}
        elif message.role == "tool":
            if message.tool_call_id not in open_calls:
                return False
            open_calls.discard(message.tool_call_id)
    return True


def test_a_long_task_with_large_outputs_fits_a_16k_window(
    store: TaskStore, registry: ToolRegistry
) -> None:
    task_id, client = _task(store, registry, turns=12)
    assert _drive(store, task_id, client) == 12

    tools = store.get_tool_specs(task_id) or []
    turns = [r for r in client.requests if r.purpose == "turn"]
    summaries = [r for r in client.requests if r.purpose == "summary"]
    assert len(turns) == 12 and summaries
    for request in client.requests:
        sent_tools = tools if request.purpose == "turn" else []
        reserve = request.max_tokens or RESERVE
        assert estimate_request_tokens(request.messages, sent_tools) + reserve <= WINDOW
        assert _pairs_whole(request.messages)
    # Every turn request keeps the system prompt and the goal first, and the latest turn.
    for request in turns:
        assert [m.role for m in request.messages[:2]] == ["system", "user"]
        assert request.messages[1].content == "Read every dump and report."
    last = turns[-1].messages
    assert last[2].role == "user" and (last[2].content or "").startswith("[Summary of turns 1-")
    assert last[-1].role == "tool" and last[-1].content == _output(11)

    # The summaries are their own items, chained: each folds the one before.
    stored = load_summaries(store, task_id)
    assert len(stored) >= 3
    throughs = [s.through_turn for s in stored]
    assert throughs == sorted(throughs) and throughs[-1] >= 9
    assert "[turn 1] assistant called calculator" in stored[-1].text

    # The full history stays: GET /tasks/{id} shows every message.
    view = get_task_view(task_id, store=store, tenant_id="default")
    assert len(view.messages) == 2 + 11 * 2 + 1
    assert view.messages[3].content == _output(1)
    assert view.messages[2].usage is not None  # each reply keeps its call's usage

    # The timeline shows each compaction, and its usage is the task's too.
    events = store.list_events(task_id)
    compactions = [e for e in events if e.kind == "compaction"]
    assert len(compactions) == len({s.for_turn for s in stored})
    first = compactions[0]
    assert first.usage is not None and first.usage.model_calls >= 1
    assert first.detail["window"] == WINDOW and first.detail["tokens_after"] <= WINDOW - RESERVE
    assert first.detail["tokens_before"] > WINDOW - RESERVE
    calls = [e for e in events if e.kind == "model_call"]
    assert all(e.detail["context"]["tokens"] <= WINDOW - RESERVE for e in calls)
    total = Usage()
    for event in calls + compactions:
        assert event.usage is not None
        total = total + event.usage
    assert view.usage.model_calls == len(client.requests) == total.model_calls
    assert view.usage.input_tokens == total.input_tokens


def test_a_short_task_is_never_compacted(store: TaskStore, registry: ToolRegistry) -> None:
    task_id, client = _task(store, registry, turns=3)
    _drive(store, task_id, client, size=2_000)
    assert all(r.purpose == "turn" for r in client.requests)
    assert load_summaries(store, task_id) == []
    assert not [e for e in store.list_events(task_id) if e.kind == "compaction"]


def test_a_single_output_too_large_for_the_window_is_cut_for_the_request(
    store: TaskStore, registry: ToolRegistry
) -> None:
    task_id, client = _task(store, registry, turns=2)
    _drive(store, task_id, client, size=150_000)
    request = client.requests[-1]
    tools = store.get_tool_specs(task_id) or []
    assert estimate_request_tokens(request.messages, tools) + RESERVE <= WINDOW
    cut = request.messages[-1].content or ""
    assert cut.startswith(_output(1)[:1000]) and "150000 characters in all" in cut
    assert "kept in the task's history" in cut
    # ...while the history keeps it whole
    assert store.list_messages(task_id, 1)[1].content == _output(1, 150_000)
    [call] = [e for e in store.list_events(task_id) if e.kind == "model_call" and e.turn == 2]
    assert call.detail["context"]["cut"] == ["turn 1 #1"]


def test_an_opening_too_large_for_the_window_fails_the_call_clearly(
    store: TaskStore, registry: ToolRegistry
) -> None:
    task_id, client = _task(store, registry, turns=2)
    with pytest.raises(ModelRequestError, match="leave no room in the model's window"):
        call_model(TurnRef(task_id=task_id, turn=0), store=store, client_for=lambda *_: client,
                   context_windows={"scripted": 200})
    [event] = [e for e in store.list_events(task_id) if e.kind == "model_call"]
    assert event.detail["error_type"] == "ContextTooSmallError"


# --- the summary item


def _running(store: TaskStore, task_id: str = "tsk_s") -> str:
    store.create_task(Task(task_id=task_id, goal="g", model="scripted", max_turns=5,
                           status=TaskStatus.RUNNING,
                           usage=Usage(input_tokens=10, output_tokens=1, model_calls=1)))
    return task_id


def _summary(through: int, text: str = "s") -> ContextSummary:
    return ContextSummary(through_turn=through, for_turn=through + 2, text=text,
                          model="scripted", usage=Usage(input_tokens=100, output_tokens=20,
                                                        model_calls=1))


def test_a_summary_is_stored_once_with_its_usage_added_to_the_task(store: TaskStore) -> None:
    task_id = _running(store)
    summary = _summary(3)
    assert store.put_summary(task_id, 3, summary.model_dump_json(), summary.usage)
    task = store.require_task(task_id)
    assert task.usage.input_tokens == 110 and task.usage.model_calls == 2
    # A twin step's summary of the same turns is dropped, its usage not counted twice.
    assert not store.put_summary(task_id, 3, _summary(3, "other").model_dump_json(),
                                 summary.usage)
    assert store.require_task(task_id).usage == task.usage
    assert [s.text for s in load_summaries(store, task_id)] == ["s"]


def test_summaries_list_oldest_first_and_leave_the_messages_alone(store: TaskStore) -> None:
    task_id = _running(store)
    store.put_message(task_id, 0, 1, Message(role="user", content="g"))
    for through in (12, 3, 7):
        store.put_summary(task_id, through, _summary(through).model_dump_json(), Usage())
    assert [s.through_turn for s in load_summaries(store, task_id)] == [3, 7, 12]
    assert [m.content for m in store.list_messages(task_id)] == ["g"]


def test_the_summarys_usage_counts_even_after_a_cancel(store: TaskStore) -> None:
    task_id = _running(store)
    store.finish_task(task_id, TaskStatus.CANCELLED)
    summary = _summary(2)
    assert store.put_summary(task_id, 2, summary.model_dump_json(), summary.usage)
    assert store.require_task(task_id).usage.model_calls == 2




@pytest.fixture
def big_store(store: TaskStore) -> TaskStore:
    """A store whose claim-check bucket exists (outputs past 200 KiB go to S3)."""
    import boto3

    boto3.client("s3").create_bucket(Bucket="opspawn-test-context")
    return TaskStore(store.table_name, artifacts_bucket="opspawn-test-context")


def test_claim_checked_outputs_count_with_what_is_sent_of_them(
    big_store: TaskStore, registry: ToolRegistry
) -> None:
    # 1 MB outputs: each sent as its first 100,000 characters (~33k tokens); in a 128k
    # window three of them fit beside the opening, the fourth makes the first fold.
    task_id, client = _task(big_store, registry, turns=6)
    _drive(big_store, task_id, client, size=1_000_000, windows={"scripted": 128_000})
    [tool] = [m for m in big_store.list_messages(task_id, 1) if m.role == "tool"]
    assert tool.content_ref and tool.content_bytes == 1_000_000
    summaries = load_summaries(big_store, task_id)
    assert summaries and summaries[0].for_turn == 5 and summaries[0].through_turn >= 1
    tools = big_store.get_tool_specs(task_id) or []
    for request in client.requests:
        reserve = request.max_tokens or 4096
        sent_tools = tools if request.purpose == "turn" else []
        assert estimate_request_tokens(request.messages, sent_tools) + reserve <= 128_000
    # the model saw the output from S3 (capped), never the inline preview
    fourth = [r for r in client.requests if r.purpose == "turn"][3]
    assert all(len(m.content or "") > 99_000 for m in fourth.messages if m.role == "tool")


class HeavyTokenizer(Recording):
    """A provider whose tokenizer counts 1.6 times the estimate (dense data)."""

    def complete(self, request: LLMRequest) -> LLMResponse:
        response = super().complete(request)
        tools = self.tools if request.purpose == "turn" else []
        heavy = int(estimate_request_tokens(request.messages, tools) * 1.6)
        return response.model_copy(update={"usage": Usage(input_tokens=heavy, output_tokens=10,
                                                          model_calls=1)})


def test_the_providers_counts_fold_earlier_when_it_counts_more(
    store: TaskStore, registry: ToolRegistry
) -> None:
    plain_id, plain = _task(store, registry, turns=6, task_id="tsk_plain")
    _drive(store, plain_id, plain, size=6_000)
    heavy_id, recording = _task(store, registry, turns=6, task_id="tsk_heavy")
    heavy = HeavyTokenizer(recording.turns)
    heavy.tools = store.get_tool_specs(heavy_id) or []
    _drive(store, heavy_id, heavy, size=6_000)

    def first_fold(task_id: str) -> int:
        return min((s.for_turn for s in load_summaries(store, task_id)), default=99)

    assert first_fold("tsk_heavy") < first_fold("tsk_plain")
    # ...and each request it was sent, by the provider's own count of the turns it had seen
    # already, left the reply its room.
    calls = [e for e in store.list_events(heavy_id) if e.kind == "model_call"]
    for event in calls:
        assert event.detail["context"]["tokens"] <= WINDOW - RESERVE


# --- a request the provider refuses as too long


class Overflowing(Recording):
    """The scripted client behind a provider whose real window is smaller than the table
    says: a request estimated above `limit` tokens is refused as OpenAI refuses it."""

    def __init__(self, turns: list[ScriptedTurn], limit: int) -> None:
        super().__init__(turns)
        self.limit = limit
        self.refused: list[LLMRequest] = []

    def complete(self, request: LLMRequest) -> LLMResponse:
        tools = self.tools if request.purpose == "turn" else []
        if estimate_request_tokens(request.messages, tools) > self.limit:
            self.refused.append(request)
            raise ModelRequestError(
                "openai: 400 This model's maximum context length is 12000 tokens. However, "
                "your messages resulted in 15000 tokens. (context_length_exceeded)",
                status_code=400)
        return super().complete(request)


def test_a_request_refused_as_too_long_is_compacted_harder_and_sent_again(
    store: TaskStore, registry: ToolRegistry
) -> None:
    task_id, recording = _task(store, registry, turns=6)
    client = Overflowing(recording.turns, limit=12_000)
    client.tools = store.get_tool_specs(task_id) or []
    # The table says 64k: only the provider's refusals show the window is smaller.
    assert _drive(store, task_id, client, windows={"scripted": 64_000}) == 6

    assert client.refused, "the provider refused nothing: the test proves nothing"
    turns = [r for r in client.requests if r.purpose == "turn"]
    assert [r.turn for r in turns] == [1, 2, 3, 4, 5, 6]  # each turn answered, once
    for refused in client.refused:
        # The same turn went out again, smaller, right after its summary.
        again = next(r for r in turns if r.turn == refused.turn)
        assert estimate_request_tokens(again.messages, client.tools) <= client.limit
        assert (again.messages[2].content or "").startswith("[Summary of turns 1-")
    compactions = [e for e in store.list_events(task_id) if e.kind == "compaction"]
    harder = [e for e in compactions if "refused" in e.detail]
    assert len(harder) == len(client.refused)
    assert "context_length_exceeded" in harder[0].detail["refused"]
    assert harder[0].detail["window"] < 64_000
    assert store.require_task(task_id).status == TaskStatus.RUNNING  # Finalize ends it


def test_a_request_refused_again_after_the_harder_fit_fails_the_call(
    store: TaskStore, registry: ToolRegistry
) -> None:
    task_id, recording = _task(store, registry, turns=3)
    client = Overflowing(recording.turns, limit=100)  # nothing fits: even the opening
    with pytest.raises(ModelRequestError, match="context_length_exceeded"):
        _drive(store, task_id, client, size=2_000, windows={"scripted": 64_000})
    assert len(client.refused) == 2  # the call and its one retry
    [event] = [e for e in store.list_events(task_id) if e.kind == "model_call"]
    assert "context_length_exceeded" in (event.error or "")


def test_a_refusal_for_another_reason_is_not_retried(
    store: TaskStore, registry: ToolRegistry
) -> None:
    task_id, recording = _task(store, registry, turns=2)

    class Refusing(Recording):
        def complete(self, request: LLMRequest) -> LLMResponse:
            self.requests.append(request)
            raise ModelRequestError("openai: 401 invalid api key", status_code=401)

    client = Refusing(recording.turns)
    with pytest.raises(ModelRequestError, match="invalid api key"):
        _drive(store, task_id, client)
    assert len(client.requests) == 1
