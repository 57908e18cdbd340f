"""Provider pressure on the deployed stack: a rate-limited provider, an outage and patience
used up. Tasks wait in the state machine (WaitForProvider) and go on; none fails for a
reason that could wait. The fake provider (loopback, OpenRouter's wire format) enforces its
own limit and plays the outage; the rest is the real stack."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import pytest

from agentkit.models.domain import TaskStatus
from opspawn.client import OpspawnClient
from opspawn.offline.stack import StackOutputs
from tests.support.fake_providers import FakeProviders, Reply

PROVIDER = "openrouter"
#: How long after the first 429 a request may still arrive that was sent before the hold
#: was written (the 429's answer reaching its Lambda, and that Lambda's write).
IN_FLIGHT_S = 1.0
MODEL = "openrouter:openai/gpt-4o-mini"


@pytest.fixture
def fake(fake_providers: FakeProviders, offline_stack: StackOutputs) -> Iterator[FakeProviders]:
    """The session's fake providers, with this provider's limit, outage and the stack's
    shared provider state (hold, breaker) cleared afterwards for the tests that follow."""
    yield fake_providers
    fake_providers.reset()  # limits, outages, unplayed replies
    table = offline_stack.outputs["TableName"]
    dynamodb: Any = offline_stack.client("dynamodb")
    for pk, sk in ((f"PROVIDER#{PROVIDER}", "HOLD"), (f"PROVIDER#{PROVIDER}", "BREAKER"),
                   (f"PROVIDER#{PROVIDER}", "PACE"), (f"LIMIT#{PROVIDER}", "WINDOW")):
        dynamodb.delete_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})


def _run_all(api: OpspawnClient, count: int, timeout_s: float, **extra: Any) -> list[Any]:
    tasks = [api.submit({"goal": f"task {n}", "model": MODEL, "tools": [], **extra})
             for n in range(count)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda t: api.wait(t.task_id, timeout_s=timeout_s, poll_s=0.5),
                             tasks))


def test_a_rate_limited_provider_makes_tasks_wait_and_all_succeed(
    api: OpspawnClient, fake: FakeProviders
) -> None:
    count = 30
    # Far below the burst: most calls meet a 429. A window of 10 s leaves paced calls 1 s of
    # arrival jitter (the pacer's 10 % margin over the window) on a loaded machine.
    fake.limit(PROVIDER, rpm=5, window_s=10)
    fake.script(PROVIDER, *[Reply(text="done") for _ in range(count)])
    # Mixed in: tasks on a model that never meets an error, submitted in the same burst.
    calm = [api.submit({"goal": f"calm {n}", "model": "scripted", "tools": [],
                        "scripted_turns": [{"content": "fine"}]}) for n in range(4)]
    views = _run_all(api, count, timeout_s=240)
    assert [v.status for v in views] == [TaskStatus.SUCCEEDED] * count, [v.error for v in views]
    calm_views = [api.wait(t.task_id, timeout_s=120, poll_s=0.5) for t in calm]
    assert [v.status for v in calm_views] == [TaskStatus.SUCCEEDED] * 4
    assert all(v.waited_seconds == 0 for v in calm_views)  # never held by another provider
    received = fake.requests_for(PROVIDER)
    assert sum(r.above_limit for r in received) >= 1, "the limit was never reached"
    assert sum(r.status == 200 for r in received) == count  # one model call per task
    # After the first 429 the provider is held until its limit is replenished, then paced
    # at the rate its headers state: nothing goes above the limit again. Requests already
    # on their way when the first 429 was answered (sent before the hold was written) are
    # the only ones allowed to meet it.
    first_429 = min(r.at for r in received if r.above_limit)
    late = [round(r.at - first_429, 2) for r in received
            if r.above_limit and r.at > first_429 + IN_FLIGHT_S]
    assert late == [], f"requests above the limit after the first 429 (s after it): {late}"
    # The waits are on the tasks' timelines, and no task waits any more.
    assert all(v.waiting is None for v in views)
    waited = [v for v in views if v.waited_seconds > 0]
    assert waited, "no task waited"
    events = api.events(waited[0].task_id)
    waits = [e for e in events if e.kind == "wait"]
    assert waits and waits[0].name == PROVIDER and waits[0].detail["reason"] == "rate_limited"


def test_an_outage_of_the_only_provider_ends_and_tasks_succeed(
    api: OpspawnClient, fake: FakeProviders
) -> None:
    count = 4
    fake.outage(PROVIDER, seconds=15, status=500)
    fake.script(PROVIDER, *[Reply(text="after the outage") for _ in range(count)])
    views = _run_all(api, count, timeout_s=240)
    assert [v.status for v in views] == [TaskStatus.SUCCEEDED] * count, [v.error for v in views]
    assert all(v.answer == "after the outage" for v in views)
    assert any(r.status == 500 for r in fake.requests_for(PROVIDER))


def test_patience_used_up_fails_the_task_naming_the_provider(
    api: OpspawnClient, fake: FakeProviders
) -> None:
    fake.outage(PROVIDER, seconds=600, status=503)
    task = api.submit({"goal": "never answered", "model": MODEL, "tools": [],
                       "max_wait_seconds": 5})
    view = api.wait(task.task_id, timeout_s=180, poll_s=0.5)
    assert view.status == TaskStatus.FAILED
    assert view.error is not None and view.error.startswith(f"gave up waiting for {PROVIDER} (")
    assert "max_wait_seconds 5" in view.error
