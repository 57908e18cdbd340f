"""What a submit body makes in this deployment: checked by POST /tasks, by a schedule when
it is created and when it fires. Kept apart from the submit module so the schedules
function does not load the idempotency machinery it never uses."""

from __future__ import annotations

from typing import Any

from agentkit.config import Settings
from agentkit.errors import InputError
from agentkit.ids import new_task_id
from agentkit.model_names import known_providers, parse_model
from agentkit.models.api import SubmitTaskRequest
from agentkit.models.domain import Task
from agentkit.output_schema import check_output_schema
from agentkit.security import SecurityManager
from agentkit.tools import ToolRegistry
from agentkit.tools.delegate import OPT_IN_TOOLS
from agentkit.tools.memory import MEMORY_TOOLS


def _budgets(request: SubmitTaskRequest, settings: Settings, tenant_id: str) -> dict[str, Any]:
    """The task's budgets: the request's, else the defaults, within the tenant's ceiling.

    Asking for more than the ceiling is refused (naming the field); a default above the
    ceiling is lowered to it.
    """
    ceiling = settings.ceiling_for(tenant_id)
    defaults = {"max_turns": settings.default_max_turns,
                "max_tokens": settings.default_max_tokens,
                "max_cost_usd": settings.default_max_cost_usd}
    budgets: dict[str, Any] = {}
    for field, default in defaults.items():
        asked, limit = getattr(request, field), getattr(ceiling, field)
        if asked is not None and limit is not None and asked > limit:
            raise InputError(field, f"at most {limit:g} for this tenant, got {asked:g}")
        value = asked if asked is not None else default
        if limit is not None:
            value = limit if value is None else min(value, limit)
        budgets[field] = value
    return budgets


def check_request(
    request: SubmitTaskRequest,
    *,
    registry: ToolRegistry,
    settings: Settings,
    tenant_id: str = "default",
    security: SecurityManager | None = None,
) -> Task:
    """The task a request makes in this deployment (its script, for model `scripted`, is
    stored beside it by submit, not part of it), or InputError naming the field: its
    model and fallbacks, tools (and the security policy's bounds), budgets and patience.
    Used at submit, and when a schedule is created, so a schedule that could never start a
    task is refused at once instead of failing at every firing."""
    model = request.model or settings.default_model
    fallbacks = request.fallback_models or []
    providers = known_providers()
    for field, candidate in [("model", model), *(("fallback_models", m) for m in fallbacks)]:
        provider = parse_model(candidate)[0]
        if provider not in providers:
            raise InputError(field, f"unknown provider '{provider}'; known: {', '.join(providers)}")
        if provider == "scripted" and not settings.scripted_model_enabled:
            raise InputError(field, "model 'scripted' is disabled in this deployment")
    tools = ([n for n in registry.names if n not in OPT_IN_TOOLS] if request.tools is None
             else list(dict.fromkeys(request.tools)))
    if request.memory == "off":
        # A task with memory off neither reads nor writes long-term memory: not by default,
        # and not by asking for the tools either.
        if request.tools is None:
            tools = [name for name in tools if name not in MEMORY_TOOLS]
        elif asked := [name for name in tools if name in MEMORY_TOOLS]:
            raise InputError("tools", f"{', '.join(asked)}: not with memory 'off'")
    # MCP tool names are checked against the deployment's servers by their shape
    # (`<server>__<tool>`), not by listing the servers: the API needs neither the MCP SDK nor
    # the servers to be up. The Plan step, which lists them, refuses a name none offers.
    unknown = registry.unknown(tools, resolve_sources=False)
    if unknown:
        raise InputError(
            "tools",
            f"unknown tool(s): {', '.join(unknown)}; available: {registry.describe_available()}",
        )
    # The deployment's (tenant's) security policy bounds what a task may use: by default a
    # task gets the tools the policy allows; asking for another one is refused.
    security = security or SecurityManager()  # the functions pass their SECURITY_POLICY
    disallowed = security.disallowed(tools, tenant_id)
    if request.tools is None:
        tools = [name for name in tools if name not in disallowed]
    elif disallowed:
        raise InputError(
            "tools",
            "not allowed by the security policy: "
            + "; ".join(security.explain(name, tenant_id) for name in disallowed),
        )
    if request.output_schema is not None:
        try:
            check_output_schema(request.output_schema)
        except ValueError as error:
            raise InputError("output_schema", str(error)) from None
    return Task(
        task_id=new_task_id(),
        tenant_id=tenant_id,
        goal=request.goal,
        model=model,
        fallback_models=fallbacks,
        tools=tools,
        memory_scope=request.memory_scope,
        memory=request.memory,
        plan=request.plan or settings.default_plan,
        output_schema=request.output_schema,
        **_budgets(request, settings, tenant_id),
        max_wait_seconds=(
            request.max_wait_seconds
            if request.max_wait_seconds is not None
            else settings.default_max_wait_seconds
        ),
    )
