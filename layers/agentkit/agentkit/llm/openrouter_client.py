"""OpenRouter through the official `openai` SDK: OpenRouter speaks Chat Completions, so
this is `OpenAIClient` with OpenRouter's base URL, key and attribution headers.

Everything else (request body, tool calls, finish reasons, usage, error mapping, secret
scrubbing) is the OpenAI client's; see `openai_client` for those decisions. Here:

* **Model names** keep OpenRouter's `vendor/model` form: `openrouter:meta-llama/llama-3.3-
  70b-instruct` reaches the API as `meta-llama/llama-3.3-70b-instruct`.
* **Configuration**: `OPENROUTER_API_KEY` (required), `OPENROUTER_BASE_URL` (default
  https://openrouter.ai/api/v1), `OPENROUTER_TIMEOUT_S` (default 60),
  `OPENROUTER_SITE_URL` (the `HTTP-Referer` OpenRouter attributes usage to; default the
  project's repository). `X-Title` is always "Opspawn".
* **Tool schemas** are shaped by `tool_schema.openrouter_parameters`: OpenRouter takes
  OpenAI's tool format and passes it on as-is to OpenAI-style upstreams.
* **Errors** are prefixed `openrouter:`. OpenRouter's error `code` is the numeric HTTP
  status, so the message carries the API's text alone.
* **Errors inside an HTTP 200**: once a model has started on a request OpenRouter
  answers 200 and reports a failure in the body: `{"error": {"code": 429, "message",
  "metadata"}}` instead of a completion, or a choice with `finish_reason: "error"` (and
  its own `error`). Both are errors classified by their `code` as if it were the HTTP
  status (`wire.error_for_status`, with the response's Retry-After), never an empty
  final answer; an error without a usable code is an upstream failure mid-answer
  (`ProviderOutageError`, as a 502 would be).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from agentkit.llm.base import ModelError
from agentkit.llm.openai_client import DEFAULT_TIMEOUT_S, OpenAIClient
from agentkit.llm.tool_schema import openrouter_parameters
from agentkit.llm.wire import error_for_status

if TYPE_CHECKING:
    from agentkit.config import ProviderConfig

# A reported error without a usable code: the upstream model failed mid-answer.
UPSTREAM_FAILURE_STATUS = 502

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
DEFAULT_SITE_URL = "https://github.com/opspawn/opspawn"
APP_TITLE = "Opspawn"


class OpenRouterClient(OpenAIClient):
    provider = "openrouter"
    env_prefix = "OPENROUTER"
    default_base_url = DEFAULT_BASE_URL

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http_client: Any = None,
        site_url: str | None = None,
    ) -> None:
        """`site_url`: the `HTTP-Referer` header (default: the project's repository)."""
        super().__init__(
            api_key,
            base_url=base_url,
            timeout_s=timeout_s,
            http_client=http_client,
            default_headers={"HTTP-Referer": site_url or DEFAULT_SITE_URL, "X-Title": APP_TITLE},
        )

    def tool_parameters(self, schema: dict[str, Any]) -> dict[str, Any]:
        return openrouter_parameters(schema)

    def error_in_body(self, completion: Any, headers: Any) -> ModelError | None:
        """The error of a 200 whose body is `{"error": {...}}`, or whose first choice
        finished with `finish_reason: "error"`; None for a real completion."""
        extra = getattr(completion, "model_extra", None) or {}
        reported = extra.get("error")
        choices = getattr(completion, "choices", None) or []
        if reported is None and choices and choices[0].finish_reason == "error":
            choice_extra = getattr(choices[0], "model_extra", None) or {}
            reported = choice_extra.get("error") or {}
        if reported is None:
            return None
        detail = reported if isinstance(reported, dict) else {"message": str(reported)}
        code = detail.get("code")
        if isinstance(code, str) and code.strip().isdigit():
            code = int(code)
        status = code if isinstance(code, int) and 400 <= code <= 599 else None
        message = str(detail.get("message") or "the model reported an error")
        label = f"HTTP 200, error {code}" if status is not None else "HTTP 200, error"
        return error_for_status(
            self._scrub(f"{self.provider}: {label}: {message}"),
            status if status is not None else UPSTREAM_FAILURE_STATUS,
            headers,
            body={"error": detail},
        )

    @classmethod
    def from_config(
        cls, config: ProviderConfig, *, http_client: Any = None, **options: Any
    ) -> Self:
        """`config.openrouter` (with its `site_url`) and `OPENROUTER_API_KEY` (required)."""
        options.setdefault("site_url", config.openrouter.site_url)
        return super().from_config(config, http_client=http_client, **options)
