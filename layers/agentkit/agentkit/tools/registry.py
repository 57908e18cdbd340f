"""Tools: a name, a description, an argument schema, a function.

Two kinds of tool share one registry:
* pydantic tools (the built-ins): `args_model` is the single source of the JSON
  schema the providers see and of the validation applied to what the model sends
  back; `func` receives the validated model;
* JSON-schema tools (MCP tools): `input_schema` is a JSON schema given by someone
  else (an MCP server); arguments are validated against it with `fastjsonschema`
  (compiled once per tool) and `func` receives the validated `dict`.
Either way arguments are validated BEFORE the function runs, and validation and
execution errors become error tool results for the model to read, never exceptions
that fail the task.

Tools can also come from *sources* (`ToolRegistry.add_source`): a source owns every
name starting with its prefix (`<server>__` for an MCP server) and is asked for its
tools only when such a name is looked up, so a function that never touches them
never lists a server (nor imports its client library). `default_registry()` adds
one source per server configured in the env var `MCP_SERVERS` (see
`agentkit.tools.mcp`); without it, the registry holds only the built-ins.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from agentkit.models.domain import INVALID_ARGUMENTS_KEY, ToolCall, ToolResult, ToolSpec

DEFAULT_TOOL_TIMEOUT_S = 20.0
# A hard cap that protects the function's memory; outputs over 200 KB are stored in S3
# by the store (claim check), so large outputs are kept whole up to this size.
MAX_TOOL_OUTPUT_CHARS = 5_000_000

logger = logging.getLogger(__name__)


class ToolError(Exception):
    """Raised by a tool to answer `error: <message>` verbatim (no exception class name)."""


class InvalidSchemaError(ValueError):
    """A JSON-schema tool's schema cannot be compiled into a validator."""


class SchemaValidationError(ValueError):
    """Arguments that do not match a JSON-schema tool's schema; the message names the field."""


@dataclass(frozen=True)
class Tool:
    """One tool. Give `args_model` (pydantic) or `input_schema` (JSON schema), not both.

    `timeout_s` is the limit the model is told about (`timed out after N s`); the
    registry waits `timeout_s + timeout_grace_s` for the function, so a function that
    enforces `timeout_s` itself (the MCP proxy: it cancels the session and stops the
    server process) gets the time to clean up before being abandoned.
    """

    name: str
    description: str
    args_model: type[BaseModel] | None
    func: Callable[[Any], Any]
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S
    input_schema: dict[str, Any] | None = field(default=None, compare=False)
    timeout_grace_s: float = 0.0
    _validator: list[Callable[[Any], Any]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if (self.args_model is None) == (self.input_schema is None):
            raise ValueError(f"tool '{self.name}' needs exactly one of args_model, input_schema")

    def spec(self) -> ToolSpec:
        if self.input_schema is not None:
            return ToolSpec(
                name=self.name, description=self.description, parameters=self.input_schema
            )
        assert self.args_model is not None
        schema = self.args_model.model_json_schema()
        schema.pop("title", None)
        return ToolSpec(name=self.name, description=self.description, parameters=schema)

    def validate(self, arguments: dict[str, Any]) -> Any:
        """The validated arguments `func` receives. Raises `ValidationError` (pydantic
        tools), `SchemaValidationError` or `InvalidSchemaError` (JSON-schema tools)."""
        if self.args_model is not None:
            return self.args_model.model_validate(arguments)
        import fastjsonschema  # only JSON-schema tools need it

        if not self._validator:
            self._validator.append(_compile_schema(self.name, self.input_schema or {}))
        try:
            self._validator[0](arguments)
        except fastjsonschema.JsonSchemaValueException as error:
            raise SchemaValidationError(describe_schema_error(error, arguments)) from None
        # Forwarded as the model sent them: no defaults filled in (the server applies its own).
        return arguments


def _compile_schema(name: str, schema: dict[str, Any]) -> Callable[[Any], Any]:
    import fastjsonschema

    try:
        # use_default=False: validation never mutates the arguments it checks.
        validator: Callable[[Any], Any] = fastjsonschema.compile(schema, use_default=False)
    except Exception as error:  # JsonSchemaDefinitionException, or a schema that is not one
        raise InvalidSchemaError(
            f"tool '{name}' has an input schema that cannot be checked: {error}"
        ) from None
    return validator


def describe_validation_error(error: ValidationError) -> str:
    """`field 'a.b': message; field 'c': message` — names every bad field."""
    parts = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "(arguments)"
        parts.append(f"field '{location}': {item['msg']}")
    return "; ".join(parts)


def describe_schema_error(error: Exception, arguments: Any) -> str:
    """The JSON-schema twin of `describe_validation_error`: `field 'a.b': message`."""
    path = [part for part in getattr(error, "path", None) or [] if part != "data"]
    rule = getattr(error, "rule", None)
    definition = getattr(error, "rule_definition", None)
    if rule == "required" and isinstance(definition, list):
        target: Any = arguments
        for part in path:
            try:
                target = target[part]
            except (KeyError, IndexError, TypeError):
                target = None
                break
        if isinstance(target, dict):
            missing = [key for key in definition if key not in target]
            if missing:
                prefix = "".join(f"{part}." for part in path)
                return "; ".join(f"field '{prefix}{key}': Field required" for key in missing)
    location = ".".join(str(part) for part in path) or "(arguments)"
    message = str(getattr(error, "message", error))
    name = str(getattr(error, "name", ""))
    if name and message.startswith(name + " "):
        message = message[len(name) + 1 :]  # "data.x must be string" -> "must be string"
    return f"field '{location}': {message}"


@dataclass
class ResolvedTools:
    """`ToolRegistry.resolve`: the tools found, and why the others were not."""

    tools: list[Tool] = field(default_factory=list)
    #: name -> what is offered instead (the name is no tool)
    unknown: dict[str, str] = field(default_factory=dict)
    #: name -> why its source could not be listed (it may work later)
    unreachable: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class ToolSource(Protocol):
    """Tools listed on demand, e.g. an MCP server's. Owns every name starting with `prefix`."""

    prefix: str

    def tools(self) -> list[Tool]:
        """The source's current tools (cached by the source as it sees fit).
        Raises `ToolError` when they cannot be listed; the message is shown as is."""
        ...


class ToolRegistry:
    """Built-in tools plus lazily listed sources.

    `names` and `specs()` without names cover the registered tools only (no source is
    listed). `get`, `unknown`, `specs(names)` and `run` resolve a `<prefix>...` name
    through its source, which lists its tools then (cached by the source).
    `discover()` lists every source.
    """

    def __init__(self, tools: Iterable[Tool] = (), sources: Iterable[ToolSource] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._sources: list[ToolSource] = []
        for tool in tools:
            self.register(tool)
        for source in sources:
            self.add_source(source)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool '{tool.name}' is already registered")
        if self._source_for(tool.name) is not None:
            raise ValueError(f"tool '{tool.name}' is in the namespace of a tool source")
        self._tools[tool.name] = tool

    def with_tools(self, tools: Iterable[Tool]) -> ToolRegistry:
        """A registry like this one (the same sources, shared) where `tools` replace the
        registered tools of their names: tools bound to one task (its long-term memory)."""
        replacing = {tool.name: tool for tool in tools}
        missing = sorted(set(replacing) - set(self._tools))
        if missing:
            raise ValueError(f"tool(s) {', '.join(missing)}: not registered, nothing to replace")
        bound = ToolRegistry()
        bound._tools = {**self._tools, **replacing}
        bound._sources = list(self._sources)
        return bound

    def add_source(self, source: ToolSource) -> None:
        """Add tools listed lazily; `source.tools()` is called only for `<prefix>*` names."""
        for other in self._sources:
            if source.prefix.startswith(other.prefix) or other.prefix.startswith(source.prefix):
                raise ValueError(f"tool source prefix '{source.prefix}' overlaps '{other.prefix}'")
        taken = [name for name in self._tools if name.startswith(source.prefix)]
        if taken:
            raise ValueError(f"tool source prefix '{source.prefix}' covers tool '{taken[0]}'")
        self._sources.append(source)

    @property
    def sources(self) -> list[ToolSource]:
        return list(self._sources)

    @property
    def names(self) -> list[str]:
        """The registered tools' names; tools from sources are not listed here (see discover)."""
        return sorted(self._tools)

    def _source_for(self, name: str) -> ToolSource | None:
        for source in self._sources:
            if name.startswith(source.prefix):
                return source
        return None

    def _resolve(self, name: str) -> tuple[Tool | None, str | None]:
        """(tool, None), or (None, why not) with why-not set when a source failed."""
        tool = self._tools.get(name)
        if tool is not None:
            return tool, None
        source = self._source_for(name)
        if source is None:
            return None, None
        try:
            listed = source.tools()
        except ToolError as error:
            return None, str(error)
        except Exception as error:
            return None, f"{type(error).__name__}: {error}"
        for candidate in listed:
            if candidate.name == name:
                return candidate, None
        return None, None

    def get(self, name: str) -> Tool | None:
        return self._resolve(name)[0]

    def problem(self, name: str) -> str | None:
        """Why `name` cannot be used (unknown tool, unreachable source), or None if it can."""
        tool, why = self._resolve(name)
        if tool is not None:
            return None
        return why or f"unknown tool '{name}'"

    def unknown(self, names: Iterable[str], *, resolve_sources: bool = True) -> list[str]:
        """The names that are no tool. With `resolve_sources=False` a name in a source's
        namespace (`<prefix><something>`) counts as known without listing the source (at
        submit time: the API needs neither the source's client library nor the server)."""
        names = list(names)
        if not resolve_sources:
            return [n for n in names if n not in self._tools and not self._in_namespace(n)]
        self._prefetch([self._source_for(name) for name in names if name not in self._tools])
        return [name for name in names if self.get(name) is None]

    def _in_namespace(self, name: str) -> bool:
        source = self._source_for(name)
        return source is not None and len(name) > len(source.prefix)

    def describe_available(self) -> str:
        """What a request may name, without listing any source: for error messages."""
        text = ", ".join(self.names)
        if self._sources:
            prefixes = ", ".join(f"{source.prefix}<tool>" for source in self._sources)
            text += f"; and the tools of each tool source: {prefixes}"
        return text

    def resolve(self, names: Iterable[str]) -> ResolvedTools:
        """Look every name up (listing the sources they need, in parallel): the tools found,
        in order, the names no tool answers to, and those whose source cannot be listed."""
        names = list(dict.fromkeys(names))
        self._prefetch([self._source_for(name) for name in names if name not in self._tools])
        resolved = ResolvedTools()
        for name in names:
            tool, why = self._resolve(name)
            if tool is not None:
                resolved.tools.append(tool)
            elif why:
                resolved.unreachable[name] = why
            else:
                resolved.unknown[name] = self._offered_instead(name)
        return resolved

    def _offered_instead(self, name: str) -> str:
        source = self._source_for(name)
        if source is None:
            return f"unknown tool '{name}'; available: {self.describe_available()}"
        try:
            offered = sorted(tool.name for tool in source.tools())
        except Exception:  # listed a moment ago; a failure now changes nothing useful
            offered = []
        return f"unknown tool '{name}'; {source.prefix}* offers: {', '.join(offered) or 'none'}"

    def specs(self, names: Iterable[str] | None = None) -> list[ToolSpec]:
        """Specs of the named tools that exist, in the given order. Tools of a source that
        cannot be listed right now are left out (and logged), not raised; `resolve` says
        which and why."""
        if names is None:
            return [self._tools[name].spec() for name in self.names]
        resolved = self.resolve(names)
        for name, why in resolved.unreachable.items():
            logger.warning("tool '%s' left out of the specs: %s", name, why)
        return [tool.spec() for tool in resolved.tools]

    def _prefetch(self, sources: Iterable[ToolSource | None]) -> None:
        """List several sources in parallel (each caches its listing; errors resurface
        on the lookups that follow), so a cold plan step pays the slowest server's
        listing, not the sum."""
        distinct = list({id(s): s for s in sources if s is not None}.values())
        if len(distinct) < 2:
            return
        with concurrent.futures.ThreadPoolExecutor(len(distinct)) as pool:
            for future in [pool.submit(source.tools) for source in distinct]:
                future.exception()

    def discover(self) -> tuple[list[ToolSpec], dict[str, str]]:
        """Every tool: the registered ones and every source's (listing each source).
        Returns (specs, {source prefix: error}) for the sources that could not be listed."""
        specs = [self._tools[name].spec() for name in self.names]
        errors: dict[str, str] = {}
        self._prefetch(self._sources)
        for source in self._sources:
            try:
                specs.extend(tool.spec() for tool in source.tools())
            except Exception as error:
                errors[source.prefix] = str(error)
        return specs, errors

    def run(self, call: ToolCall, *, allowed: Iterable[str] | None = None) -> ToolResult:
        """Validate and run one call; every failure comes back as an error result."""
        started = time.monotonic()

        def result(content: str, is_error: bool) -> ToolResult:
            return ToolResult(
                call_id=call.id,
                name=call.name,
                content=_truncate(content),
                is_error=is_error,
                duration_ms=int((time.monotonic() - started) * 1000),
            )

        if allowed is not None and call.name not in set(allowed):
            # Checked first: a disallowed name never makes a source list its tools.
            if self._tools.get(call.name) is None and self._source_for(call.name) is None:
                return result(f"error: unknown tool '{call.name}'", True)
            return result(f"error: tool '{call.name}' is not allowed for this task", True)
        tool, why = self._resolve(call.name)
        if tool is None:
            return result(f"error: {why}" if why else f"error: unknown tool '{call.name}'", True)
        if INVALID_ARGUMENTS_KEY in call.arguments:
            problem = call.arguments[INVALID_ARGUMENTS_KEY]
            return result(f"error: invalid arguments: {problem}", True)
        try:
            arguments = tool.validate(call.arguments)
        except ValidationError as error:
            return result(f"error: invalid arguments: {describe_validation_error(error)}", True)
        except SchemaValidationError as error:
            return result(f"error: invalid arguments: {error}", True)
        except InvalidSchemaError as error:
            return result(f"error: {error}", True)
        try:
            output = _call_with_timeout(
                tool.func, arguments, tool.timeout_s + max(tool.timeout_grace_s, 0.0)
            )
        except TimeoutError:
            return result(f"error: tool '{tool.name}' timed out after {tool.timeout_s:g} s", True)
        except ToolError as error:
            return result(f"error: {error}", True)
        except Exception as error:  # a tool's own failure is information for the model
            return result(f"error: {type(error).__name__}: {error}", True)
        return result(_as_text(output), False)


_executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="tool")


def _call_with_timeout(func: Callable[[Any], Any], arguments: Any, timeout_s: float) -> Any:
    # A thread cannot be killed; a hung tool is abandoned and the call answered as a timeout.
    future = _executor.submit(func, arguments)
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError as error:
        future.cancel()
        raise TimeoutError from error


def _as_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, BaseModel):
        return output.model_dump_json()
    return json.dumps(output, default=str, ensure_ascii=False)


def _truncate(text: str) -> str:
    if len(text) <= MAX_TOOL_OUTPUT_CHARS:
        return text
    dropped = len(text) - MAX_TOOL_OUTPUT_CHARS
    return text[:MAX_TOOL_OUTPUT_CHARS] + f"\n[truncated: {dropped} more characters]"
