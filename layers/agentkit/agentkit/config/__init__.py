"""Deployment settings: the only package of the layer that reads the environment (its
`environment` module does the reading).

Each function has one settings model (`SubmitSettings`, `CallModelSettings`, ...), composed
of shared parts (the store, the state machine, task defaults, tenant limits, provider
limits, the security policy, provider endpoints, the tool surface). The tool surface and
the models of the functions that have tools are in `agentkit.config.tools`, so the other
functions never import the tools; likewise the provider limits and the models of the
functions that call models (`agentkit.config.model_calls`: the rate limiter), and long-term
memory's (`agentkit.config.memory`). `load(Model)` reads and validates a model once per cold
start (cached); a bad value stops the function with an error naming the variable and the
field. The handler builds its dependencies from the model and passes values down: logic
never reads the environment.

Provider and MCP secrets are the one thing read later, when used (`environment.variable`): they
are resolved lazily by `agentkit.secrets` (cached there, never logged) and never held by a
settings model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit.config import environment
from agentkit.models.domain import PlanMode
from agentkit.security.policy import SecurityConfig

Environ = Mapping[str, str]


class ConfigError(RuntimeError):
    """The function's configuration is missing or invalid; names the variable (and field)."""


def _text(env: Environ, name: str) -> str | None:
    """A variable's value, stripped; unset or blank: None (the default applies)."""
    return (env.get(name) or "").strip() or None


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _number(env: Environ, name: str, *, whole: bool) -> float | int | None:
    """A number variable; unset or blank: None (the default applies)."""
    raw = _text(env, name)
    if raw is None:
        return None
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    return value


def _positive(env: Environ, name: str, *, whole: bool = False) -> float | None:
    """A positive (`whole`: integral) number; unset or blank: None (the default applies)."""
    raw = _text(env, name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < math.inf or (whole and not value.is_integer()):
        kind = "a positive whole number" if whole else "a positive number of seconds"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}")
    return value


# --- the parts


class SettingsPart(BaseModel):
    """A group of settings read from the environment. A part declares the variable each of
    its fields is read from (`VARIABLES`, for error messages) and reads them in `_read`;
    a model composed of parts (by inheritance) reads every part's variables.

    `defer_build`: a model's validator is built when it is first used, so a function's
    cold start builds the one settings model it loads, not every function's (about a
    third of the import of this package)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    VARIABLES: ClassVar[dict[str, str]] = {}

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        return {}

    @classmethod
    def from_env(cls, environ: Environ | None = None) -> Self:
        """The model read from `environ` (default: the process environment), validated."""
        env = environment.environ() if environ is None else environ
        values: dict[str, Any] = {}
        variables: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            read = vars(klass).get("_read")
            if isinstance(read, classmethod):
                values.update(read.__func__(cls, env))
            variables.update(vars(klass).get("VARIABLES", {}))
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = []
            for item in error.errors(include_url=False):
                field = ".".join(str(part) for part in item["loc"])
                variable = variables.get(str(item["loc"][0]) if item["loc"] else "", "")
                where = f"{variable} ({field})" if variable else field
                problems.append(f"{where}: {item['msg']}")
            raise ConfigError(f"{cls.__name__} is invalid: {'; '.join(problems)}") from None


class StoreSettings(SettingsPart):
    """The table (TABLE_NAME) and the claim-check bucket for items too large for it
    (ARTIFACTS_BUCKET; unset: such items are refused)."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "table_name": "TABLE_NAME",
        "artifacts_bucket": "ARTIFACTS_BUCKET",
    }

    table_name: str = Field(min_length=1)
    artifacts_bucket: str | None = None

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        table = _text(env, "TABLE_NAME")
        if not table:
            raise ConfigError("TABLE_NAME is not set: the function is missing its configuration")
        return {"table_name": table, "artifacts_bucket": _text(env, "ARTIFACTS_BUCKET")}


class StateMachineSettings(SettingsPart):
    """The agent state machine (STATE_MACHINE_ARN): where tasks are started."""

    VARIABLES: ClassVar[dict[str, str]] = {"state_machine_arn": "STATE_MACHINE_ARN"}

    state_machine_arn: str | None = None

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        return {"state_machine_arn": _text(env, "STATE_MACHINE_ARN")}


class BudgetCeiling(BaseModel):
    """The most a tenant's task may ask for; None: no ceiling on that budget."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int | None = Field(default=None, ge=1, le=50)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)


class TaskDefaultSettings(SettingsPart):
    """What a task gets when its request does not say, and the most it may ask for."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "default_model": "DEFAULT_MODEL",
        "scripted_model_enabled": "SCRIPTED_MODEL_ENABLED",
        "default_max_turns": "DEFAULT_MAX_TURNS",
        "default_max_tokens": "DEFAULT_MAX_TOKENS",
        "default_max_cost_usd": "DEFAULT_MAX_COST_USD",
        "default_max_wait_seconds": "DEFAULT_MAX_WAIT_SECONDS",
        "default_plan": "DEFAULT_PLAN",
        "default_ceiling": "BUDGET_CEILINGS",
        "tenant_ceilings": "BUDGET_CEILINGS",
    }

    default_model: str = "openai:gpt-4o-mini"
    scripted_model_enabled: bool = False
    default_max_turns: int = Field(default=10, ge=1, le=50)
    # Budgets applied when a request sets none; None: no limit beyond max_turns.
    default_max_tokens: int | None = Field(default=None, ge=1)
    default_max_cost_usd: float | None = Field(default=None, gt=0)
    # Patience: how long in all a task may wait for its providers (DEFAULT_MAX_WAIT_SECONDS).
    default_max_wait_seconds: int = Field(default=3600, ge=0)
    # Whether a task is planned when its request does not say (DEFAULT_PLAN).
    default_plan: PlanMode = "never"
    # BUDGET_CEILINGS: {"default": {...}, "tenants": {"<tenant>": {...}}}; a tenant's own
    # entry replaces the default one.
    default_ceiling: BudgetCeiling = Field(default_factory=BudgetCeiling)
    tenant_ceilings: dict[str, BudgetCeiling] = Field(default={})

    def ceiling_for(self, tenant_id: str) -> BudgetCeiling:
        return self.tenant_ceilings.get(tenant_id, self.default_ceiling)

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        values: dict[str, Any] = {
            "default_model": _text(env, "DEFAULT_MODEL"),
            "scripted_model_enabled": _flag(env.get("SCRIPTED_MODEL_ENABLED")),
            "default_max_turns": _number(env, "DEFAULT_MAX_TURNS", whole=True),
            "default_max_wait_seconds": _number(env, "DEFAULT_MAX_WAIT_SECONDS", whole=True),
            "default_plan": _text(env, "DEFAULT_PLAN"),
        }
        values = {name: value for name, value in values.items() if value is not None}
        # Unset, blank or 0: no default budget beyond max_turns.
        values["default_max_tokens"] = _number(env, "DEFAULT_MAX_TOKENS", whole=True) or None
        values["default_max_cost_usd"] = (
            _number(env, "DEFAULT_MAX_COST_USD", whole=False) or None
        )
        return {**values, **_ceilings(env.get("BUDGET_CEILINGS") or "{}")}


def _ceilings(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or set(data) - {"default", "tenants"}:
            raise ValueError('expected {"default": {...}, "tenants": {"<tenant>": {...}}}')
        return {
            "default_ceiling": BudgetCeiling.model_validate(data.get("default") or {}),
            "tenant_ceilings": {
                tenant: BudgetCeiling.model_validate(ceiling)
                for tenant, ceiling in (data.get("tenants") or {}).items()
            },
        }
    except ValueError as error:  # includes pydantic's ValidationError
        # A broken ceiling must stop the function, never silently lift every limit.
        raise ConfigError(f"BUDGET_CEILINGS is invalid: {error}") from None


#: Running tasks per tenant when TENANT_LIMITS does not say.
DEFAULT_MAX_RUNNING = 10


class TenantLimit(BaseModel):
    """How many of a tenant's tasks may run at once (the rest wait QUEUED, in order), and
    its share of a provider that is paced after a 429 (by weight against the other tenants
    calling it)."""

    model_config = ConfigDict(extra="forbid")

    max_running: int = Field(default=DEFAULT_MAX_RUNNING, ge=1, le=100_000)
    weight: float = Field(default=1.0, gt=0, le=1000)


class _TenantLimitsDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: TenantLimit = Field(default_factory=TenantLimit)
    tenants: dict[str, TenantLimit] = Field(default={})


class TenantLimitSettings(SettingsPart):
    """TENANT_LIMITS: {"default": {"max_running": n}, "tenants": {"<tenant>": {...}}}; a
    tenant's own entry replaces the default one."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "default_tenant_limit": "TENANT_LIMITS",
        "tenant_limits": "TENANT_LIMITS",
    }

    default_tenant_limit: TenantLimit = Field(default_factory=TenantLimit)
    tenant_limits: dict[str, TenantLimit] = Field(default={})

    def max_running_for(self, tenant_id: str) -> int:
        return self.tenant_limits.get(tenant_id, self.default_tenant_limit).max_running

    def weight_for(self, tenant_id: str) -> float:
        return self.tenant_limits.get(tenant_id, self.default_tenant_limit).weight

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        raw = env.get("TENANT_LIMITS") or "{}"
        try:
            data = json.loads(raw)
        except ValueError as error:
            raise ConfigError(f"TENANT_LIMITS is invalid: not JSON ({error})") from None
        try:
            document = _TenantLimitsDocument.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}"
                for item in error.errors()
            )
            raise ConfigError(
                f'TENANT_LIMITS is invalid: {problems} (expected {{"default": {{"max_running": '
                f'n}}, "tenants": {{"<tenant>": {{"max_running": n}}}}}})'
            ) from None
        return {"default_tenant_limit": document.default, "tenant_limits": document.tenants}


class ContextWindowSettings(SettingsPart):
    """CONTEXT_WINDOWS: context windows (tokens) per `provider:model` or `prefix*`, JSON,
    over the table of agentkit/llm/context_windows.json (models it lacks, a smaller limit
    of ours, the scripted model's window in tests); empty: the table alone."""

    VARIABLES: ClassVar[dict[str, str]] = {"context_windows": "CONTEXT_WINDOWS"}

    context_windows: dict[str, Annotated[int, Field(ge=1024, le=100_000_000)]] = Field(
        default={}
    )

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        raw = _text(env, "CONTEXT_WINDOWS")
        if raw is None:
            return {}
        try:
            return {"context_windows": json.loads(raw)}
        except ValueError as error:
            raise ConfigError(f"CONTEXT_WINDOWS is not JSON: {error}") from None


class SecuritySettings(SettingsPart):
    """SECURITY_POLICY (agentkit.security.policy): a policy that does not parse stops the
    function at cold start, never a silently permissive default."""

    VARIABLES: ClassVar[dict[str, str]] = {"security_policy": "SECURITY_POLICY"}

    security_policy: SecurityConfig = Field(default_factory=SecurityConfig)

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        return {"security_policy": SecurityConfig.parse(env.get("SECURITY_POLICY"))}


class SecretSources(SettingsPart):
    """Where a named secret (a provider key, an MCP server's auth secret) is looked for,
    besides its own variable and `<name>_PARAMETER` (agentkit.secrets): the JSON secret
    PROVIDER_KEYS_SECRET_ARN."""

    VARIABLES: ClassVar[dict[str, str]] = {"secret_arn": "PROVIDER_KEYS_SECRET_ARN"}

    secret_arn: str | None = None

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        return {"secret_arn": _text(env, "PROVIDER_KEYS_SECRET_ARN")}


DEFAULT_TIMEOUT_S = 60.0
DEFAULT_ANTHROPIC_MAX_TOKENS = 4096


class ProviderEndpoint(BaseModel):
    """Where a provider's API is and how long a call may take. `base_url` None: the
    provider's own (the client always passes one: the SDKs would read the environment)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, allow_inf_nan=False)


class AnthropicEndpoint(ProviderEndpoint):
    #: The output limit when a request sets none (ANTHROPIC_MAX_TOKENS).
    max_tokens: int = Field(default=DEFAULT_ANTHROPIC_MAX_TOKENS, ge=1)


class OpenRouterEndpoint(ProviderEndpoint):
    #: The `HTTP-Referer` header (OPENROUTER_SITE_URL; None: the project's repository).
    site_url: str | None = None


class ProviderConfig(SettingsPart):
    """The providers' endpoints (`<PROVIDER>_BASE_URL`, `<PROVIDER>_TIMEOUT_S`,
    ANTHROPIC_MAX_TOKENS, OPENROUTER_SITE_URL; blank: the default) and where their keys are
    looked for. The keys themselves are resolved when a client is made (agentkit.secrets)."""

    VARIABLES: ClassVar[dict[str, str]] = {"secret_sources": "PROVIDER_KEYS_SECRET_ARN"}

    openai: ProviderEndpoint = Field(default_factory=ProviderEndpoint)
    anthropic: AnthropicEndpoint = Field(default_factory=AnthropicEndpoint)
    google: ProviderEndpoint = Field(default_factory=ProviderEndpoint)
    openrouter: OpenRouterEndpoint = Field(default_factory=OpenRouterEndpoint)
    secret_sources: SecretSources = Field(default_factory=SecretSources)

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        def endpoint(prefix: str) -> dict[str, Any]:
            values: dict[str, Any] = {"base_url": _text(env, f"{prefix}_BASE_URL")}
            timeout = _positive(env, f"{prefix}_TIMEOUT_S")
            if timeout is not None:
                values["timeout_s"] = timeout
            return values

        anthropic = endpoint("ANTHROPIC")
        max_tokens = _positive(env, "ANTHROPIC_MAX_TOKENS", whole=True)
        if max_tokens is not None:
            anthropic["max_tokens"] = int(max_tokens)
        return {
            "openai": endpoint("OPENAI"),
            "anthropic": anthropic,
            "google": endpoint("GOOGLE"),
            "openrouter": {**endpoint("OPENROUTER"),
                           "site_url": _text(env, "OPENROUTER_SITE_URL")},
            "secret_sources": SecretSources.from_env(env),
        }


class ProviderSettings(SettingsPart):
    """The part of a function that calls models: `providers` (ProviderConfig)."""

    VARIABLES: ClassVar[dict[str, str]] = {"providers": "<PROVIDER>_*"}

    providers: ProviderConfig = Field(default_factory=ProviderConfig)

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        return {"providers": ProviderConfig.from_env(env)}


class Settings(
    StoreSettings,
    StateMachineSettings,
    TaskDefaultSettings,
    TenantLimitSettings,
):
    """What the task operations need (agentkit.api: checking and submitting a request,
    admission): the store, the state machine, task defaults and ceilings, tenant limits."""


# --- one model per function (functions/<name>/app.py)


class ApiKeyAuthorizerSettings(StoreSettings):
    pass


class ApprovalsSettings(StoreSettings):
    pass


class ConsoleSettings(StoreSettings):
    pass


class IdempotencySettings(SettingsPart):
    """The Idempotency-Key records' table (IDEMPOTENCY_TABLE_NAME)."""

    VARIABLES: ClassVar[dict[str, str]] = {"idempotency_table_name": "IDEMPOTENCY_TABLE_NAME"}

    idempotency_table_name: str = ""

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        return {"idempotency_table_name": env.get("IDEMPOTENCY_TABLE_NAME", "")}


class TasksSettings(StoreSettings, StateMachineSettings, TenantLimitSettings,
                    IdempotencySettings):
    pass


class WaitForApprovalSettings(StoreSettings, SecuritySettings):
    pass


class DelegationSettings(SettingsPart):
    """Sub-tasks (the `delegate` tool): how deep they may nest (MAX_DELEGATION_DEPTH; a
    caller's task is depth 0) and how many one turn may start (MAX_DELEGATION_FANOUT).
    The defaults (2 and 10) are agentkit.tools.delegate's."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "max_delegation_depth": "MAX_DELEGATION_DEPTH",
        "max_delegation_fanout": "MAX_DELEGATION_FANOUT",
    }

    max_delegation_depth: int = Field(default=2, ge=0, le=10)
    max_delegation_fanout: int = Field(default=10, ge=1, le=100)

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field, variable in DelegationSettings.VARIABLES.items():
            value = _number(env, variable, whole=True)
            if value is not None:
                values[field] = value
        return values


class WaitForChildrenSettings(StoreSettings, SecuritySettings, StateMachineSettings,
                              DelegationSettings):
    pass


PartT = TypeVar("PartT", bound=SettingsPart)


@cache
def _load(model: type[SettingsPart]) -> SettingsPart:
    return model.from_env()


def load(model: type[PartT]) -> PartT:
    """The function's settings, read and validated once per cold start (cached)."""
    settings = _load(model)
    assert isinstance(settings, model)
    return settings


def clear_cache() -> None:
    """Forget loaded settings (tests that change the environment)."""
    _load.cache_clear()
