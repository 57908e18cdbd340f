"""The settings of the functions that have tools (plan, run_tools, submit, schedules,
start_scheduled_task): apart from agentkit.config so the others never import the tools."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from agentkit.config import (
    ConfigError,
    Environ,
    SecretSources,
    SecuritySettings,
    Settings,
    StoreSettings,
    _text,
)
from agentkit.config.memory import MemorySettings, MemorySwitch
from agentkit.tools.mcp import McpServerConfig, parse_mcp_config

__all__ = [
    "ConfigError",
    "PlanSettings",
    "RunToolsSettings",
    "SchedulesSettings",
    "StartScheduledTaskSettings",
    "SubmitSettings",
    "ToolSettings",
]


class ToolSettings(SecuritySettings, MemorySwitch):
    """The tool surface: the built-ins (whose own allow-lists come from the security policy;
    `remember` / `recall` where the deployment has long-term memory, EMBEDDING_MODEL) and
    the MCP servers of MCP_SERVERS (a bad value raises `McpConfigError` naming the field;
    no server is contacted at cold start)."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "mcp_servers": "MCP_SERVERS",
        "secret_sources": "PROVIDER_KEYS_SECRET_ARN",
    }

    mcp_servers: list[McpServerConfig] = Field(default=[])
    secret_sources: SecretSources = Field(default_factory=SecretSources)

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        return {
            "mcp_servers": parse_mcp_config(env.get("MCP_SERVERS")),
            "secret_sources": SecretSources.from_env(env),
        }


class PlanSettings(StoreSettings, ToolSettings, MemorySettings):
    """Plan recalls the memories nearest a task's goal (MEMORY_RECALL_MIN_SCORE)."""


class RunToolsSettings(StoreSettings, ToolSettings, MemorySettings):
    """RunTools runs `remember` / `recall` for the task whose calls it runs."""

    VARIABLES: ClassVar[dict[str, str]] = {"tool_max_receives": "TOOL_MAX_RECEIVES"}

    #: Matches the queue's redrive maxReceiveCount: on the last delivery the function tells
    #: the state machine.
    tool_max_receives: int = Field(default=3, ge=1)

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        raw = _text(env, "TOOL_MAX_RECEIVES")
        return {"tool_max_receives": raw} if raw is not None else {}


class SchedulesSettings(Settings, ToolSettings):
    """A schedule's task is checked as POST /tasks checks it, when it is created."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "schedule_target_arn": "SCHEDULE_TARGET_ARN",
        "scheduler_role_arn": "SCHEDULER_ROLE_ARN",
    }

    schedule_target_arn: str = ""
    scheduler_role_arn: str = ""

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        return {
            "schedule_target_arn": env.get("SCHEDULE_TARGET_ARN", ""),
            "scheduler_role_arn": env.get("SCHEDULER_ROLE_ARN", ""),
        }


class StartScheduledTaskSettings(Settings, ToolSettings):
    pass


class SubmitSettings(Settings, ToolSettings):
    VARIABLES: ClassVar[dict[str, str]] = {"idempotency_table_name": "IDEMPOTENCY_TABLE_NAME"}

    idempotency_table_name: str = ""

    @classmethod
    def _read(cls, env: Environ) -> dict[str, Any]:
        return {"idempotency_table_name": env.get("IDEMPOTENCY_TABLE_NAME", "")}
