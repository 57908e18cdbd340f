"""The deployment's security policy: which tools a task may use, with which arguments,
and which calls need a human's approval.

Loaded from env `SECURITY_POLICY` (JSON; the template's `SecurityPolicy` parameter):

    {"allowed_tools": ["calculator", "current_time", "http_fetch", "github__*"],
     "approval_required": ["http_fetch"],
     "constraints": {"http_fetch": {"url_hosts": ["api.example.com", "*.example.org"]},
                     "read_file": {"path_prefixes": ["/tmp/shared"]}},
     "tenants": {"acme": {"allowed_tools": ["calculator"]}}}

* `allowed_tools`: names, `prefix*` patterns (an MCP server's `server__*`) or `*`;
  unset = every tool the deployment registers.
* `approval_required`: same syntax; a matching call waits for POST /tasks/{id}/approvals/{id}.
* `constraints[tool]`: `url_hosts` (allow-list for the URL arguments named by `url_fields`,
  default `["url"]`; an entry is a host name or `*.domain` for its subdomains) and
  `path_prefixes` (for the path arguments named by `path_fields`, default `["path"]`).
* `tenants[tenant_id]`: overrides, field by field, of the fields it sets.

Fail closed: a tool listed in `REQUIRED_CONSTRAINTS` (e.g. `http_fetch`) is not usable
until its allow-list is configured, and an unparsable policy fails the cold start.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_VAR = "SECURITY_POLICY"
DEFAULT_TENANT = "default"

#: Tools that must not run without an allow-list: tool → the constraint it needs.
REQUIRED_CONSTRAINTS: dict[str, str] = {"http_fetch": "url_hosts", "read_file": "path_prefixes"}

_PATTERN = re.compile(r"^(\*|[A-Za-z][A-Za-z0-9_-]{0,63}\*?)$")
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$|^\[[0-9a-f:.]+\]$")


class PolicyError(ValueError):
    """The configured policy cannot be parsed; raised at cold start."""


def _check_patterns(values: list[str] | None) -> list[str] | None:
    for value in values or []:
        if not _PATTERN.match(value):
            raise ValueError(f"'{value}' is not a tool name, a 'prefix*' pattern or '*'")
    return values


def matches(name: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == name:
            return True
        if pattern.endswith("*") and name.startswith(pattern[:-1]):
            return True
    return False


class ToolConstraints(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url_hosts: list[str] | None = Field(
        default=None, description="Allowed hosts for URL arguments ('host' or '*.domain')."
    )
    url_fields: list[str] = Field(default_factory=lambda: ["url"])
    path_prefixes: list[str] | None = Field(
        default=None, description="Allowed absolute path prefixes for path arguments."
    )
    path_fields: list[str] = Field(default_factory=lambda: ["path"])

    @field_validator("url_hosts")
    @classmethod
    def _hosts(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        hosts = [host.strip().lower().rstrip(".") for host in value]
        for host in hosts:
            if not _HOST.match(host):
                raise ValueError(f"'{host}' is not a host name or '*.domain'")
        return hosts

    @field_validator("path_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for prefix in value:
            if not prefix.startswith("/"):
                raise ValueError(f"path prefix '{prefix}' must be absolute")
        return [posixpath.normpath(prefix) for prefix in value]


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_tools: list[str] | None = Field(
        default=None, description="Tool names / 'prefix*' patterns; unset: every registered tool."
    )
    approval_required: list[str] = Field(default=[])
    constraints: dict[str, ToolConstraints] = Field(default={})

    @field_validator("allowed_tools", "approval_required")
    @classmethod
    def _patterns(cls, value: list[str] | None) -> list[str] | None:
        return _check_patterns(value)

    def allows(self, name: str) -> bool:
        if self.allowed_tools is not None and not matches(name, self.allowed_tools):
            return False
        return self.missing_constraint(name) is None

    def missing_constraint(self, name: str) -> str | None:
        """The constraint a fail-closed tool needs and lacks, or None."""
        needed = REQUIRED_CONSTRAINTS.get(name)
        if needed is None:
            return None
        constraints = self.constraints.get(name)
        return needed if constraints is None or not getattr(constraints, needed) else None

    def needs_approval(self, name: str) -> bool:
        return matches(name, self.approval_required)

    def violation(self, name: str, arguments: dict[str, Any]) -> str | None:
        """Why these arguments break the tool's constraints, or None."""
        constraints = self.constraints.get(name)
        if constraints is None:
            return None
        if constraints.url_hosts is not None:
            for field in constraints.url_fields:
                if field in arguments:
                    problem = url_problem(arguments[field], constraints.url_hosts)
                    if problem:
                        return f"argument '{field}': {problem}"
        if constraints.path_prefixes is not None:
            for field in constraints.path_fields:
                if field in arguments:
                    problem = path_problem(arguments[field], constraints.path_prefixes)
                    if problem:
                        return f"argument '{field}': {problem}"
        return None


class SecurityConfig(Policy):
    """The deployment's policy plus per-tenant overrides."""

    tenants: dict[str, Policy] = Field(default={})

    def for_tenant(self, tenant_id: str = DEFAULT_TENANT) -> Policy:
        base = Policy.model_validate(self.model_dump(exclude={"tenants"}))
        override = self.tenants.get(tenant_id)
        if override is None:
            return base
        return base.model_copy(
            update={field: getattr(override, field) for field in override.model_fields_set}
        )

    def hosts_for(self, tool: str) -> list[str]:
        """Every host any policy (base or tenant) allows for `tool`: the tool's own
        last-line allow-list, independent of which tenant calls it."""
        hosts: list[str] = []
        for policy in [self, *self.tenants.values()]:
            constraints = policy.constraints.get(tool)
            if constraints and constraints.url_hosts:
                hosts.extend(constraints.url_hosts)
        return list(dict.fromkeys(hosts))

    def prefixes_for(self, tool: str) -> list[str]:
        prefixes: list[str] = []
        for policy in [self, *self.tenants.values()]:
            constraints = policy.constraints.get(tool)
            if constraints and constraints.path_prefixes:
                prefixes.extend(constraints.path_prefixes)
        return list(dict.fromkeys(prefixes))

    @classmethod
    def parse(cls, text: str | None) -> SecurityConfig:
        if not (text or "").strip():
            return cls()
        try:
            return cls.model_validate(json.loads(text or ""))
        except (ValueError, ValidationError) as error:
            raise PolicyError(f"{ENV_VAR} is not a valid security policy: {error}") from None


def host_allowed(host: str, allowed: list[str]) -> bool:
    host = host.lower().rstrip(".")
    for entry in allowed:
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and host != entry[2:]:
                return True
        elif host == entry:
            return True
    return False


def url_problem(value: Any, allowed_hosts: list[str]) -> str | None:
    if not isinstance(value, str):
        return "must be a URL string"
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname or ""
    except ValueError as error:
        return f"not a valid URL ({error})"
    if parts.scheme not in {"http", "https"}:
        return f"scheme '{parts.scheme}' is not allowed (http, https)"
    if parts.username or parts.password:
        return "credentials in the URL are not allowed"
    if not host:
        return "the URL has no host"
    if not host_allowed(host, allowed_hosts):
        return f"host '{host}' is not allowed (allowed: {', '.join(allowed_hosts) or 'none'})"
    return None


def path_allowed(path: str, prefixes: list[str]) -> bool:
    for prefix in prefixes:
        if prefix == "/" or path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return True
    return False


def path_problem(value: Any, prefixes: list[str]) -> str | None:
    if not isinstance(value, str):
        return "must be a path string"
    if not value.startswith("/") or "\x00" in value:
        return "must be an absolute path"
    normalized = posixpath.normpath(value)
    if not path_allowed(normalized, prefixes):
        return f"path '{normalized}' is outside the allowed prefixes ({', '.join(prefixes)})"
    return None
