"""A model call observed: a trace span carrying the OpenTelemetry GenAI semantic
conventions' attributes, and its EMF metrics (`metrics.model_call`).

X-Ray annotation keys cannot hold dots, so each `gen_ai.*` attribute is an annotation with
underscores (`gen_ai_request_model`: searchable, `annotation.gen_ai_system = "openai"`) and
the exact OpenTelemetry names are the span's metadata under the `gen_ai` namespace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from agentkit.observability import metrics
from agentkit.observability.tracing import invocation, span

#: Our provider names → OpenTelemetry's `gen_ai.system` values.
GEN_AI_SYSTEMS = {"openai": "openai", "anthropic": "anthropic", "google": "gcp.gemini",
                  "openrouter": "openrouter", "scripted": "scripted"}
OPERATION = "chat"


@dataclass
class ModelCall:
    """What the caller learns of the call: set `reply` once the model answered."""

    provider: str
    model: str
    tenant_id: str
    task_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    finish_reason: str | None = None
    error_type: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def reply(self, *, input_tokens: int, output_tokens: int, cost_usd: float,
              finish_reason: str) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cost_usd = cost_usd
        self.finish_reason = finish_reason

    def attributes(self) -> dict[str, Any]:
        """The OpenTelemetry GenAI attributes of this call."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.system": GEN_AI_SYSTEMS.get(self.provider, self.provider),
            "gen_ai.request.model": self.model,
        }
        if self.error_type is None:
            attributes.update({
                "gen_ai.usage.input_tokens": self.input_tokens,
                "gen_ai.usage.output_tokens": self.output_tokens,
                "gen_ai.response.finish_reasons": [self.finish_reason or "unknown"],
            })
        else:
            attributes["error.type"] = self.error_type
        return attributes


def annotations_of(attributes: dict[str, Any]) -> dict[str, str | int | float | bool]:
    """X-Ray annotations for the attributes: dots → underscores, lists joined."""
    found: dict[str, str | int | float | bool] = {}
    for key, value in attributes.items():
        name = key.replace(".", "_")
        found[name] = ",".join(map(str, value)) if isinstance(value, list) else value
    return found


@contextmanager
def observe_model_call(
    provider: str, model: str, *, tenant_id: str, task_id: str | None = None
) -> Iterator[ModelCall]:
    """Around one request to a provider: `call.reply(...)` with the answer's usage; an
    exception leaving the block is the call's error (recorded, then re-raised)."""
    call = ModelCall(provider, model, tenant_id, task_id or invocation().get("task_id"))
    with span(f"{OPERATION} {model}", namespace="gen_ai") as subsegment:
        try:
            yield call
        except BaseException as error:
            call.error_type = type(error).__name__
            raise
        finally:
            latency_ms = (time.perf_counter() - call.started) * 1000
            if subsegment is not None:
                attributes = call.attributes()
                for key, value in annotations_of(attributes).items():
                    subsegment.put_annotation(key, value)
                subsegment.put_annotation("tenant_id", tenant_id)
                subsegment.put_metadata("attributes", attributes, "gen_ai")
            metrics.model_call(
                provider=provider, model=model, tenant_id=tenant_id, task_id=call.task_id,
                latency_ms=latency_ms, input_tokens=call.input_tokens,
                output_tokens=call.output_tokens, cost_usd=call.cost_usd,
                finish_reason=call.finish_reason, error_type=call.error_type,
            )
