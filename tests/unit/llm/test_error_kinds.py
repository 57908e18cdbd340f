"""Provider errors are classified (rate-limited, overloaded, outage, fatal) the same way
for every provider: the table in `agentkit.llm.wire`, reached through each real SDK
talking to the loopback fakes (tests/support/fake_providers.py), which answer with the bodies and
headers the real APIs send. Also: the fakes' rate limits, outage windows and request
validation, which later tests (router, loop, e2e) rely on."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from agentkit.llm.base import (
    LLMRequest,
    ModelError,
    ModelRequestError,
    OverloadedError,
    ProviderOutageError,
    RateLimitedError,
    RetryableModelError,
)
from agentkit.llm.wire import (
    error_for_status,
    go_duration_seconds,
    provider_rate,
    rate_limit_wait,
    retry_info_delay,
)
from agentkit.models.domain import Message, ToolCall
from tests.support.clock import Clock
from tests.support.fake_providers import (
    PROVIDERS,
    FakeProviders,
    Reply,
    estimate_tokens,
    go_duration,
)
from tests.support.providers import CALCULATOR, CURRENT_TIME, client_for, published_tools

MODEL = {"openai": "gpt-4o-mini", "openrouter": "openai/gpt-4o-mini",
         "anthropic": "claude-haiku-4-5", "google": "gemini-2.5-flash"}


@pytest.fixture
def clock() -> Clock:
    return Clock(1_000.0)  # the fake's clock, moved by hand: windows pass without sleeping


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeProviders]:
    with FakeProviders(clock=clock) as server:
        yield server


def ask(provider: str, text: str = "What is 2 + 2?") -> LLMRequest:
    return LLMRequest(model=MODEL[provider], messages=[Message(role="user", content=text)])


def call(fake: FakeProviders, provider: str, request: LLMRequest | None = None) -> Any:
    return client_for(provider, fake.base_urls[provider]).complete(request or ask(provider))


def fails_with(fake: FakeProviders, provider: str, reply: Reply) -> Any:
    fake.script(provider, reply)
    with pytest.raises(Exception) as caught:
        call(fake, provider)
    return caught.value


# --- the table (wire.error_for_status)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, RateLimitedError),
        (503, OverloadedError),
        (529, OverloadedError),
        (409, OverloadedError),
        (408, ProviderOutageError),
        (500, ProviderOutageError),
        (502, ProviderOutageError),
        (504, ProviderOutageError),
        (400, ModelRequestError),
        (401, ModelRequestError),
        (402, ModelRequestError),
        (403, ModelRequestError),
        (404, ModelRequestError),
        (413, ModelRequestError),
        (422, ModelRequestError),
    ],
)
def test_each_status_has_one_kind(status: int, kind: type[ModelError]) -> None:
    error = error_for_status("x", status)
    assert type(error) is kind
    assert error.status_code == status
    assert error.retryable is (kind is not ModelRequestError)


def test_a_402_with_retry_after_is_a_rate_limit() -> None:
    """OpenRouter's in-flight spending budget: a 402 that says when to come back."""
    error = error_for_status("x", 402, {"retry-after": "4"})
    assert type(error) is RateLimitedError and error.retry_after_s == 4.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0s", 0.0),
     ("17.28s", 17.28), ("", None), ("soon", None), ("5", None), ("1s junk", None)],
)
def test_openai_reset_durations(text: str, seconds: float | None) -> None:
    assert go_duration_seconds(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_the_fake_writes_durations_the_client_reads() -> None:
    for seconds in (0.02, 0.5, 1.0, 6.5, 59.999, 360.0, 3723.5):
        assert go_duration_seconds(go_duration(seconds)) == pytest.approx(seconds, abs=1e-3)


def test_openai_reset_of_the_limit_that_ran_out() -> None:
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s",
               "x-ratelimit-remaining-tokens": "150000", "x-ratelimit-reset-tokens": "20ms"}
    assert rate_limit_wait(headers) == 360.0
    headers |= {"x-ratelimit-remaining-requests": "12", "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "7s"}
    assert rate_limit_wait(headers) == 7.0
    # None ran out: the request was bigger than the tokens left; the token reset says when.
    headers |= {"x-ratelimit-remaining-tokens": "900"}
    assert rate_limit_wait(headers) == 7.0


def test_anthropic_reset_times_are_rfc3339() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    headers = {"anthropic-ratelimit-requests-remaining": "0",
               "anthropic-ratelimit-requests-reset": "2026-03-01T12:00:42Z",
               "anthropic-ratelimit-tokens-remaining": "5000",
               "anthropic-ratelimit-tokens-reset": "2026-03-01T12:00:01Z"}
    assert rate_limit_wait(headers, now=now) == 42.0
    headers["anthropic-ratelimit-requests-reset"] = "2026-03-01T11:59:00Z"  # already past
    assert rate_limit_wait(headers, now=now) == 0.0


def test_retry_after_wins_over_reset_headers_and_retry_info() -> None:
    body = {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                   "retryDelay": "30s"}]}}
    headers = {"retry-after": "3", "x-ratelimit-remaining-requests": "0",
               "x-ratelimit-reset-requests": "1m0s"}
    assert rate_limit_wait(headers, body) == 3.0
    assert rate_limit_wait({"retry-after-ms": "250"}, body) == 0.25
    assert rate_limit_wait({}, body) == 30.0 == retry_info_delay(body)
    assert rate_limit_wait({}, {"error": {"details": []}}) is None


def test_the_stated_limits_per_minute_and_the_full_replenish() -> None:
    openai = provider_rate({"x-ratelimit-limit-requests": "500",
                            "x-ratelimit-remaining-requests": "0",
                            "x-ratelimit-reset-requests": "12s",
                            "x-ratelimit-limit-tokens": "200000",
                            "x-ratelimit-remaining-tokens": "150000",
                            "x-ratelimit-reset-tokens": "20ms"})
    assert (openai.requests_per_minute, openai.tokens_per_minute) == (500, 200_000)
    assert openai.replenished_s == 12.0
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    anthropic = provider_rate({"anthropic-ratelimit-requests-limit": "50",
                               "anthropic-ratelimit-requests-remaining": "0",
                               "anthropic-ratelimit-requests-reset": "2026-03-01T12:00:30Z",
                               "anthropic-ratelimit-tokens-limit": "40000"}, now=now)
    assert (anthropic.requests_per_minute, anthropic.tokens_per_minute) == (50, 40_000)
    assert anthropic.replenished_s == 30.0
    nothing = provider_rate({"x-ratelimit-limit-requests": "many"})
    assert nothing.requests_per_minute is None and nothing.replenished_s is None


def test_a_429_carries_what_its_headers_state() -> None:
    error = error_for_status("limited", 429, {"retry-after": "2",
                                              "x-ratelimit-limit-requests": "60",
                                              "x-ratelimit-remaining-requests": "0",
                                              "x-ratelimit-reset-requests": "45s"})
    assert isinstance(error, RateLimitedError)
    assert error.retry_after_s == 2.0
    assert (error.rate.requests_per_minute, error.rate.replenished_s) == (60, 45.0)


# --- through each SDK, against the fakes


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_with_retry_after_is_rate_limited(fake: FakeProviders, provider: str) -> None:
    error = fails_with(fake, provider, Reply(error_status=429, retry_after_s=13))
    assert type(error) is RateLimitedError
    assert error.status_code == 429 and error.retry_after_s == 13.0
    assert str(error).startswith(f"{provider}: HTTP 429")


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
def test_429_wait_from_the_provider_s_own_reset_signal(fake: FakeProviders, provider: str
                                                       ) -> None:
    """No Retry-After: OpenAI's `x-ratelimit-reset-*`, Anthropic's `anthropic-ratelimit-*-
    reset`, Google's RetryInfo."""
    error = fails_with(fake, provider, Reply(error_status=429, retry_after_s=6.5,
                                             headers={"retry-after": None}))
    assert type(error) is RateLimitedError
    if provider == "anthropic":  # RFC 3339 in whole seconds, rounded up by the API
        assert error.retry_after_s is not None and 5.5 <= error.retry_after_s <= 8.0
    else:
        assert error.retry_after_s == pytest.approx(6.5)
    sent = fake.requests_for(provider)[-1]
    assert sent.status == 429


def test_openai_token_limit_429_waits_for_the_token_reset(fake: FakeProviders) -> None:
    error = fails_with(fake, "openai", Reply(error_status=429, error_type="tokens",
                                             retry_after_s=2.5, headers={"retry-after": None}))
    assert type(error) is RateLimitedError and error.retry_after_s == pytest.approx(2.5)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_without_any_wait_is_rate_limited_with_none(fake: FakeProviders, provider: str
                                                        ) -> None:
    error = fails_with(fake, provider, Reply(error_status=429))
    assert type(error) is RateLimitedError and error.retry_after_s is None


def test_openai_insufficient_quota_is_fatal(fake: FakeProviders) -> None:
    error = fails_with(fake, "openai", Reply(error_status=429, error_type="insufficient_quota"))
    assert type(error) is ModelRequestError and "insufficient_quota" in str(error)


@pytest.mark.parametrize(
    ("provider", "status", "kind"),
    [(provider, status, kind) for provider in PROVIDERS
     for status, kind in [(503, OverloadedError), (500, ProviderOutageError),
                          (502, ProviderOutageError), (401, ModelRequestError),
                          (400, ModelRequestError), (404, ModelRequestError)]]
    + [("anthropic", 529, OverloadedError)],
)
def test_statuses_through_each_sdk(fake: FakeProviders, provider: str, status: int,
                                   kind: type[ModelError]) -> None:
    error = fails_with(fake, provider, Reply(error_status=status, error_message="said no"))
    assert type(error) is kind
    assert error.status_code == status and "said no" in str(error)
    assert len(fake.requests_for(provider)) == 1  # no SDK retry behind our back


@pytest.mark.parametrize("provider", PROVIDERS)
def test_connection_refused_is_an_outage(provider: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = {"openai": f"http://127.0.0.1:{port}/v1", "openrouter": f"http://127.0.0.1:{port}/v1",
            "anthropic": f"http://127.0.0.1:{port}", "google": f"http://127.0.0.1:{port}/"}
    with pytest.raises(ProviderOutageError, match="connection error") as caught:
        client_for(provider, base[provider]).complete(ask(provider))
    assert caught.value.status_code is None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_timeout_is_an_outage(provider: str) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        client = client_for(provider, url, timeout_s=0.3)
        with pytest.raises(ProviderOutageError, match="timed out"):
            client.complete(ask(provider))


# --- OpenRouter: errors inside an HTTP 200


@pytest.mark.parametrize(
    ("code", "in_body", "kind"),
    [(429, "error", RateLimitedError), (503, "error", OverloadedError),
     (502, "choice", ProviderOutageError), (400, "choice", ModelRequestError),
     (429, "choice", RateLimitedError)],
)
def test_openrouter_errors_inside_a_200_are_classified(
    fake: FakeProviders, code: int, in_body: Any, kind: type[ModelError]
) -> None:
    error = fails_with(fake, "openrouter", Reply(error_status=code, in_body=in_body,
                                                 error_message="Upstream said no",
                                                 retry_after_s=5 if code == 429 else None))
    assert fake.requests_for("openrouter")[-1].status == 200
    assert type(error) is kind
    assert error.status_code == code and "Upstream said no" in str(error)
    if code == 429:
        assert error.retry_after_s == 5.0


def test_openrouter_choice_error_without_a_code_is_an_outage(fake: FakeProviders) -> None:
    client = client_for("openrouter", fake.base_urls["openrouter"])

    class Choice:
        finish_reason = "error"
        model_extra = {"error": {"message": "stream died"}}

    class Completion:
        model_extra: dict[str, Any] = {}
        choices = [Choice()]

    error = client.error_in_body(Completion(), {})
    assert type(error) is ProviderOutageError and "stream died" in str(error)


def test_openrouter_a_normal_answer_is_not_an_error(fake: FakeProviders) -> None:
    fake.script("openrouter", Reply(text="4"))
    assert call(fake, "openrouter").message.content == "4"


# --- the fakes: rate limits, outages, validation


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rpm_limit_answers_429_until_a_slot_frees(fake: FakeProviders, clock: Clock,
                                                  provider: str) -> None:
    fake.limit(provider, rpm=2, window_s=10)
    fake.script(provider, Reply(text="a"), Reply(text="b"), Reply(text="c"))
    assert call(fake, provider).message.content == "a"
    clock.now += 4
    assert call(fake, provider).message.content == "b"
    with pytest.raises(RateLimitedError) as caught:
        call(fake, provider)
    # The first request leaves the window 6 s from now; Anthropic's reset headers are
    # whole seconds, and Retry-After too.
    wait = caught.value.retry_after_s
    assert wait is not None and 6.0 <= wait <= 7.0
    assert fake.pending(provider) == 1  # the refused request consumed no reply
    clock.now += 6
    assert call(fake, provider).message.content == "c"
    seen = fake.requests_for(provider)
    assert [r.above_limit for r in seen] == [False, False, True, False]
    assert [r.status for r in seen] == [200, 200, 429, 200]


def test_rpm_limit_headers_on_answers(fake: FakeProviders) -> None:
    fake.limit("openai", rpm=3)
    fake.script("openai", Reply(text="a"))
    call(fake, "openai")
    client = httpx.Client()
    fake.script("openai", Reply(text="b"))
    response = client.post(f"{fake.base_urls['openai']}/chat/completions",
                           json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    assert response.headers["x-ratelimit-limit-requests"] == "3"
    assert response.headers["x-ratelimit-remaining-requests"] == "1"
    client.close()


def test_tpm_limit_counts_the_request_tokens(fake: FakeProviders, clock: Clock) -> None:
    request = ask("anthropic", "x" * 400)
    fake.script("anthropic", Reply(text="a"), Reply(text="b"))
    call(fake, "anthropic", request)
    tokens = fake.requests_for("anthropic")[0].tokens
    assert tokens == estimate_tokens(fake.requests_for("anthropic")[0].body) > 100
    fake.limit("anthropic", tpm=tokens + tokens // 2, window_s=30)
    clock.now += 31  # the first request is out of the window
    call(fake, "anthropic", request)
    clock.now += 1
    with pytest.raises(RateLimitedError) as caught:
        call(fake, "anthropic", request)
    wait = caught.value.retry_after_s
    assert wait is not None and 29.0 <= wait <= 30.0
    assert [r.above_limit for r in fake.requests_for("anthropic")] == [False, False, True]
    small = ask("anthropic", "hi")  # what is left of the window's tokens still fits
    fake.script("anthropic", Reply(text="c"))
    assert call(fake, "anthropic", small).message.content == "c"


def test_no_limit_once_cleared(fake: FakeProviders) -> None:
    fake.limit("google", rpm=1)
    fake.limit("google")
    fake.script("google", Reply(text="a"), Reply(text="b"))
    assert [call(fake, "google").message.content for _ in range(2)] == ["a", "b"]


@pytest.mark.parametrize(("status", "kind"), [(503, OverloadedError), (500, ProviderOutageError)])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_outage_window(fake: FakeProviders, clock: Clock, provider: str, status: int,
                       kind: type[ModelError]) -> None:
    fake.outage(provider, seconds=30, status=status)
    fake.script(provider, Reply(text="back"))
    for _ in range(2):
        with pytest.raises(kind):
            call(fake, provider)
        clock.now += 14
    assert fake.pending(provider) == 1
    clock.now += 3  # 31 s in: over
    assert call(fake, provider).message.content == "back"
    assert [r.status for r in fake.requests_for(provider)] == [status, status, 200]


def test_an_outage_can_end_early(fake: FakeProviders) -> None:
    fake.outage("openai", seconds=600)
    fake.end_outage("openai")
    fake.script("openai", Reply(text="ok"))
    assert call(fake, "openai").message.content == "ok"


# --- request validation


def test_every_client_s_full_conversation_passes_validation(fake: FakeProviders) -> None:
    """What the clients send (system, tools, tool calls, tool results incl. an error) is
    what the SDK request types accept; the fake would answer 400 otherwise."""
    request = LLMRequest(
        model="m",
        messages=[
            Message(role="system", content="Be terse."),
            Message(role="user", content="Sum and time?"),
            Message(role="assistant", content="On it.", tool_calls=[
                ToolCall(id="c1", name="calculator", arguments={"expression": "1+1"}),
                ToolCall(id="c2", name="current_time", arguments={})]),
            Message(role="tool", content="2", tool_call_id="c1", name="calculator"),
            Message(role="tool", content="no clock", tool_call_id="c2", is_error=True,
                    name="current_time"),
        ],
        tools=[CALCULATOR, CURRENT_TIME], temperature=0.2, max_tokens=64)
    for provider in PROVIDERS:
        fake.script(provider, Reply(text="2, and no clock."))
        assert call(fake, provider, request).message.content == "2, and no clock."


@pytest.mark.parametrize(
    ("provider", "body", "named"),
    [
        ("openai", {"model": "m", "messages": [{"role": "user", "content": 5}]},
         "messages[0].content"),
        ("openai", {"model": "m", "messages": [], "max_tokenz": 5}, "max_tokenz"),
        ("openrouter", {"messages": [{"role": "user", "content": "x"}]}, "model"),
        ("anthropic", {"model": "m", "max_tokens": 5, "temperature": 0.5,
                       "messages": [{"role": "user", "content": "x"}]}, "temperature"),
        ("anthropic", {"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                          "content": "r", "bogus": 1}]}]},
         "messages.0.content.0.bogus"),
        ("google", {"contents": [{"role": "user", "parts": [{"text": "x", "bogus": 1}]}]},
         "contents[0].parts[0].bogus"),
        ("google", {"contents": [], "generationConfig": {"maxOutputTokens": "many"}},
         "generationConfig.maxOutputTokens"),
    ],
)
def test_a_bad_body_gets_the_provider_s_400_naming_the_field(
    fake: FakeProviders, provider: str, body: dict[str, Any], named: str
) -> None:
    path = {"openai": "/chat/completions", "openrouter": "/chat/completions",
            "anthropic": "/v1/messages", "google": "/v1beta/models/m:generateContent"}
    fake.script(provider, Reply(text="never"))
    response = httpx.post(fake.base_urls[provider] + path[provider], json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    if provider == "openai":
        assert error["param"] == named and error["type"] == "invalid_request_error"
    elif provider == "openrouter":  # OpenRouter's own shape: the status as `code`
        assert error["code"] == 400 and f"'{named}'" in error["message"]
    elif provider == "anthropic":
        assert response.json()["type"] == "error"
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith(f"{named}: ")
    else:
        assert error["status"] == "INVALID_ARGUMENT"
        assert error["details"][0]["fieldViolations"][0]["field"] == named
    assert fake.pending(provider) == 1


def test_the_sdk_reads_the_fake_s_400_as_the_real_one(fake: FakeProviders) -> None:
    import openai

    sdk = openai.OpenAI(api_key="sk-test", base_url=fake.base_urls["openai"], max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                    extra_body={"bogus": True})
    assert caught.value.param == "bogus" and caught.value.code == "unknown_parameter"


# --- error bodies as the APIs write them


@pytest.mark.parametrize(
    ("provider", "status", "expected"),
    [("anthropic", 429, "rate_limit_error"), ("anthropic", 529, "overloaded_error"),
     ("anthropic", 500, "api_error"), ("anthropic", 401, "authentication_error"),
     ("google", 429, "RESOURCE_EXHAUSTED"), ("google", 503, "UNAVAILABLE"),
     ("google", 401, "UNAUTHENTICATED"), ("openai", 429, "requests"),
     ("openai", 500, "server_error"), ("openai", 401, "invalid_request_error")],
)
def test_error_bodies_carry_the_provider_s_type(fake: FakeProviders, provider: str,
                                                status: int, expected: str) -> None:
    fake.script(provider, Reply(error_status=status))
    path = {"openai": "/chat/completions", "anthropic": "/v1/messages",
            "google": "/v1beta/models/m:generateContent"}
    body = {"openai": {"model": "m", "messages": [{"role": "user", "content": "x"}]},
            "anthropic": {"model": "m", "max_tokens": 5,
                          "messages": [{"role": "user", "content": "x"}]},
            "google": {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}}
    response = httpx.post(fake.base_urls[provider] + path[provider], json=body[provider])
    assert response.status_code == status
    error = response.json()["error"]
    assert (error.get("status") if provider == "google" else error["type"]) == expected


@pytest.mark.parametrize("kind", [OverloadedError, ProviderOutageError, RateLimitedError])
def test_every_retryable_kind_is_still_a_retryable_model_error(kind: type[ModelError]) -> None:
    assert issubclass(kind, RetryableModelError)


def test_published_mcp_tool_schemas_pass_validation(fake: FakeProviders) -> None:
    """Tool schemas as real MCP servers publish them, shaped by each client, are bodies
    the SDK request types accept (the fake is strict, not stricter than the API)."""
    request = LLMRequest(model="m", messages=[Message(role="user", content="hi")],
                         tools=published_tools())
    for provider in PROVIDERS:
        fake.script(provider, Reply(text="fine"))
        assert call(fake, provider, request).message.content == "fine", provider
