"""The shared provider state on the template's table: the rate limiter is exact under
concurrency and corrected from real usage; holds are never shortened."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from agentkit.store.provider_state import (
    WINDOW_S,
    ProviderStateStore,
    RateDenied,
    RateGrant,
    WindowLimit,
)
from tests.conftest import TABLE
from tests.support.aws import AtomicRequests

MINUTE = 60.0 * 28_333_334  # the start of a window (epoch seconds)


@pytest.fixture
def state(aws: None) -> ProviderStateStore:
    return ProviderStateStore(AtomicRequests(boto3.client("dynamodb")), TABLE)


def _race(threads: int, take: Callable[[], RateGrant | RateDenied]) -> list[Any]:
    barrier = threading.Barrier(threads)

    def one() -> RateGrant | RateDenied:
        barrier.wait()
        return take()

    with ThreadPoolExecutor(threads) as pool:
        return [future.result() for future in [pool.submit(one) for _ in range(threads)]]


def test_twenty_concurrent_takes_from_rpm_5_grant_exactly_5(state: ProviderStateStore) -> None:
    limit = WindowLimit("openai", rpm=5)
    results = _race(20, lambda: state.take([limit], 100, now=MINUTE + 15))
    grants = [r for r in results if isinstance(r, RateGrant)]
    denials = [r for r in results if isinstance(r, RateDenied)]
    assert len(grants) == 5 and len(denials) == 15
    assert all(d.scope == "openai" and d.wait_seconds == 45 for d in denials)
    assert state.window("openai")["requests"] == 5


def test_concurrent_takes_never_exceed_tpm_across_two_scopes(state: ProviderStateStore) -> None:
    """A model with its provider's limit and its own: both are taken in one transaction."""
    limits = [WindowLimit("openai", rpm=100, tpm=10_000), WindowLimit("openai:gpt-4o", tpm=3_000)]
    results = _race(12, lambda: state.take(limits, 1_000, now=MINUTE + 1))
    assert sum(isinstance(r, RateGrant) for r in results) == 3
    assert state.window("openai:gpt-4o")["tokens"] == 3_000
    assert (state.window("openai")["requests"], state.window("openai")["tokens"]) == (3, 3_000)


def test_all_or_nothing_across_scopes(state: ProviderStateStore) -> None:
    limits = [WindowLimit("anthropic", rpm=10), WindowLimit("anthropic:claude", rpm=1)]
    assert isinstance(state.take(limits, 10, now=MINUTE), RateGrant)
    assert isinstance(state.take(limits, 10, now=MINUTE), RateDenied)
    assert state.window("anthropic")["requests"] == 1  # the denied take took nothing


def test_a_new_window_starts_fresh(state: ProviderStateStore) -> None:
    limit = WindowLimit("openai", rpm=1)
    assert isinstance(state.take([limit], 1, now=MINUTE + 59), RateGrant)
    denied = state.take([limit], 1, now=MINUTE + 59.5)
    assert isinstance(denied, RateDenied) and denied.wait_seconds == 0.5
    assert isinstance(state.take([limit], 1, now=MINUTE + WINDOW_S), RateGrant)


def test_a_caller_whose_clock_is_behind_joins_the_newer_window(
    state: ProviderStateStore,
) -> None:
    limit = WindowLimit("openai", rpm=1)
    assert isinstance(state.take([limit], 1, now=MINUTE + WINDOW_S + 1), RateGrant)
    late = state.take([limit], 1, now=MINUTE + WINDOW_S - 1)  # never resets the window back
    assert isinstance(late, RateDenied)


def test_reservations_are_corrected_to_the_real_usage(state: ProviderStateStore) -> None:
    limit = WindowLimit("openai", tpm=1_000)
    grant = state.take([limit], 600, now=MINUTE)
    assert isinstance(grant, RateGrant)
    assert isinstance(state.take([limit], 600, now=MINUTE), RateDenied)  # 1,200 > 1,000
    state.settle(grant, used_tokens=200)
    assert state.window("openai")["tokens"] == 200
    second = state.take([limit], 600, now=MINUTE)
    assert isinstance(second, RateGrant)
    state.settle(second, used_tokens=900)  # the reply used more than estimated
    assert state.window("openai")["tokens"] == 1_100
    assert isinstance(state.take([limit], 1, now=MINUTE), RateDenied)


def test_a_correction_never_lands_in_a_later_window(state: ProviderStateStore) -> None:
    limit = WindowLimit("openai", tpm=1_000)
    grant = state.take([limit], 500, now=MINUTE)
    assert isinstance(grant, RateGrant)
    assert isinstance(state.take([limit], 100, now=MINUTE + WINDOW_S), RateGrant)
    state.settle(grant, used_tokens=900)
    assert state.window("openai")["tokens"] == 100


def test_release_gives_a_grant_back(state: ProviderStateStore) -> None:
    limit = WindowLimit("openai", rpm=1, tpm=1_000)
    grant = state.take([limit], 700, now=MINUTE)
    assert isinstance(grant, RateGrant)
    state.release(grant)
    assert (state.window("openai")["requests"], state.window("openai")["tokens"]) == (0, 0)
    assert isinstance(state.take([limit], 700, now=MINUTE), RateGrant)


def test_a_request_bigger_than_the_whole_tpm_runs_alone_in_a_window(
    state: ProviderStateStore,
) -> None:
    limit = WindowLimit("openai", tpm=1_000)
    assert isinstance(state.take([limit], 5_000, now=MINUTE), RateGrant)
    assert state.window("openai")["tokens"] == 1_000
    assert isinstance(state.take([limit], 1, now=MINUTE), RateDenied)


def test_no_limits_take_nothing_and_write_nothing(state: ProviderStateStore) -> None:
    assert state.take([WindowLimit("openai")], 10**9, now=MINUTE) == RateGrant()
    assert state.window("openai") == {}


def test_a_hold_is_never_shortened(state: ProviderStateStore) -> None:
    assert state.snapshot("openai").hold_until is None
    assert state.hold("openai", MINUTE + 60, "429 (a)", now=MINUTE)
    assert not state.hold("openai", MINUTE + 20, "429 (b)", now=MINUTE + 1)
    snapshot = state.snapshot("openai")
    assert (snapshot.hold_until, snapshot.hold_reason) == (MINUTE + 60, "429 (a)")
    assert state.hold("openai", MINUTE + 90, "429 (c)", now=MINUTE + 2)
    assert state.snapshot("openai").hold_until == MINUTE + 90
    assert state.snapshot("anthropic").hold_until is None


def test_concurrent_holds_keep_the_longest(state: ProviderStateStore) -> None:
    ends = [MINUTE + seconds for seconds in (30, 90, 10, 60, 45, 20)]
    with ThreadPoolExecutor(len(ends)) as pool:
        list(pool.map(lambda end: state.hold("openai", end, "429", now=MINUTE), ends))
    assert state.snapshot("openai").hold_until == MINUTE + 90
