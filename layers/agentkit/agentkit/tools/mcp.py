"""MCP servers as tool sources: the dynamic proxy.

Servers are configured per deployment in the env var `MCP_SERVERS`, a JSON list of
`McpServerConfig` objects, e.g.

    [{"name": "docs", "transport": "streamable_http", "url": "https://mcp.example.com/mcp",
      "auth_header": "Authorization", "auth_scheme": "Bearer", "auth_secret": "DOCS_MCP_TOKEN"},
     {"name": "time", "transport": "stdio", "command": "mcp-server-time"}]

Each tool `t` of server `s` appears to the agent as `s__t`, with the server's own
input schema and description; calling it forwards the call to the server. The agent
sees one tool surface; the tool Lambda does the forwarding.

* A session is opened per operation (spawn or connect, `initialize`, one request,
  close): a Lambda keeps no connection between invocations. Starting the server (spawn
  or connect) and `initialize` run under `connect_timeout_s`; the request itself, and
  closing the session, under `timeout_s` (the limit the model is told about). One budget
  for both let a slow start (a stdio server spawned on a busy host) eat the request's.
  A call is `initialize` + `tools/call` and nothing else: the SDK's
  `ClientSession.call_tool` would send `tools/list` first in every fresh session (to
  validate the result), so the request is sent with `send_request` and the result is
  checked here against the `outputSchema` of the cached listing.
* A result that does not match the tool's own `outputSchema` (or lacks the
  `structuredContent` it promises) is an error result naming the field, not a transport
  failure: "tool '<s>__<t>' returned a result that does not match its output schema: ...".
* `tools/list` results are cached per server for `list_ttl_s` (in-process, monotonic
  clock, injectable), so a warm function lists a server at most once per TTL.
* Nothing raises into the agent: a timeout, an MCP error, a result with
  `is_error`, a transport failure all become error tool results (via the registry).
* Cold start: this module imports neither `mcp`, `anyio` nor `asyncio`; they are imported inside
  the functions that talk to a server.
* The auth secret is resolved with `agentkit.secrets.provider_key` at connect time and
  sent as `auth_header`; its value never appears in logs, errors or `repr`s.
"""

from __future__ import annotations

import base64
import concurrent.futures
import functools
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import EllipsisType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from agentkit.observability.tracing import traced_call
from agentkit.tools.registry import Tool, ToolError, ToolRegistry, describe_schema_error

if TYPE_CHECKING:
    from mcp.client.session import ClientSession
    from mcp.types import CallToolResult

logger = logging.getLogger(__name__)

T = TypeVar("T")

ENV_VAR = "MCP_SERVERS"
SEPARATOR = "__"
SERVER_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,30}$"
# What every provider accepts as a function name (and models.api.TOOL_NAME_PATTERN).
_EXPOSED_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]")
# Time a timed-out session gets to stop its server process before the registry gives up.
STOP_GRACE_S = 5.0
MAX_LIST_PAGES = 20
# A failed listing is answered from memory this long (a dead server is not retried by
# every lookup of one plan step), capped by the server's list_ttl_s.
FAILED_LIST_TTL_S = 10.0
MAX_REASON_CHARS = 300
_CONNECTION_CLOSED = -32000  # mcp_types.CONNECTION_CLOSED (the SDK's code for a dropped link)


class McpConfigError(ValueError):
    """`MCP_SERVERS` is not a valid server list; the message names the bad field."""


class McpServerConfig(BaseModel):
    """One MCP server of the deployment."""

    # defer_build: built when a server list is first parsed: most deployments have none.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str = Field(
        pattern=SERVER_NAME_PATTERN,
        description="Prefix of the server's tools (`<name>__<tool>`): lowercase letters, "
        "digits and single underscores, at most 31 characters.",
    )
    transport: Literal["streamable_http", "stdio"]
    # streamable_http
    url: str | None = Field(default=None, description="The MCP endpoint, e.g. https://h/mcp.")
    headers: dict[str, str] = Field(default={}, repr=False)
    auth_header: str | None = Field(
        default=None, description="Header that carries the secret, e.g. Authorization."
    )
    auth_scheme: str | None = Field(
        default=None, description="Put before the secret in the header, e.g. Bearer."
    )
    auth_secret: str | None = Field(
        default=None,
        description="Name of the secret (agentkit.secrets.provider_key: env, Secrets Manager "
        "or SSM) whose value is sent in auth_header.",
    )
    # stdio
    command: str | None = None
    args: list[str] = Field(default=[])
    env: dict[str, str] = Field(default={}, repr=False)
    cwd: str | None = None
    # both
    timeout_s: float = Field(
        default=20.0, gt=0, le=900,
        description="seconds for one request (tools/list or tools/call) once initialized",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, le=300,
        description="seconds to spawn or connect to the server and finish initialize",
    )
    list_ttl_s: float = Field(default=300.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> McpServerConfig:
        if SEPARATOR in self.name or self.name.endswith("_"):
            raise ValueError(
                f"name '{self.name}' must not contain '__' nor end with '_' "
                "(tools are named <server>__<tool>)"
            )
        if self.transport == "streamable_http":
            if not self.url or not re.match(r"^https?://[^/\s]+", self.url):
                raise ValueError("url: a streamable_http server needs an http(s):// url")
            if self.command:
                raise ValueError("command: only for stdio servers")
            if (self.auth_header is None) != (self.auth_secret is None):
                raise ValueError("auth_header and auth_secret go together")
        else:
            if not self.command:
                raise ValueError("command: a stdio server needs a command")
            if self.url or self.headers or self.auth_header or self.auth_secret:
                raise ValueError("url/headers/auth_*: only for streamable_http servers")
        return self

    @property
    def prefix(self) -> str:
        return self.name + SEPARATOR


@functools.cache
def _config_list() -> TypeAdapter[list[McpServerConfig]]:
    # Built when a server list is first parsed: most deployments configure none.
    return TypeAdapter(list[McpServerConfig])


def parse_mcp_config(raw: str | list[Any] | None) -> list[McpServerConfig]:
    """Validate a server list (JSON text or already parsed); errors name the bad field."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise McpConfigError(f"{ENV_VAR} is not valid JSON: {error}") from None
    if not isinstance(raw, list):
        raise McpConfigError(f"{ENV_VAR} must be a JSON list of server objects")
    try:
        servers = _config_list().validate_python(raw)
    except ValidationError as error:
        problems = []
        for item in error.errors(include_url=False):
            location = list(item["loc"])
            where = ENV_VAR
            first = location[0] if location else None
            if isinstance(first, int):
                index = first
                location.pop(0)
                where += f"[{index}]"
                entry = raw[index] if index < len(raw) else None
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    where += f" (server '{entry['name'][:40]}')"
            field = ".".join(str(part) for part in location)
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{where}{'.' + field if field else ''}: {message}")
        raise McpConfigError("; ".join(problems)) from None
    seen: set[str] = set()
    for index, server in enumerate(servers):
        if server.name in seen:
            raise McpConfigError(f"{ENV_VAR}[{index}].name: duplicate server name '{server.name}'")
        seen.add(server.name)
    return servers


@dataclass(frozen=True)
class McpToolInfo:
    """A server's tool: `name` on the server, `exposed_name` as the agent sees it."""

    name: str
    exposed_name: str
    description: str
    input_schema: dict[str, Any]
    # The tool's `outputSchema`: its results are checked against it (None: not checked).
    output_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class McpCallOutcome:
    text: str
    is_error: bool


def run_sync(func: Callable[[], Awaitable[T]]) -> T:
    """Run async code from sync code (Lambda handlers are sync). From a thread that
    already runs an event loop, the work runs on a fresh thread with its own loop."""
    import asyncio  # only a call to a server needs it: kept off the cold start

    import anyio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(func)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mcp") as pool:
        return pool.submit(anyio.run, func).result()


class _ConnectTimeout(Exception):
    """The server did not start and answer `initialize` within `connect_timeout_s`."""


class McpClient:
    """Talks to one server: cached `list_tools`, `call_tool`; sync API, a session per call.

    Raises `ToolError("MCP server '<name>' unreachable: ...")` when the server cannot
    be reached or dies, `ToolError("MCP server '<name>' error: ...")` for an MCP error
    response, and `TimeoutError` when the request outlives `timeout_s` (a server that does
    not start and initialize within `connect_timeout_s` is unreachable).
    """

    def __init__(
        self,
        config: McpServerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        secret_resolver: Callable[[str], str] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._secret_resolver = secret_resolver
        self._lock = threading.Lock()
        self._listing: list[McpToolInfo] | None = None
        self._listed_at = 0.0
        self._failure: tuple[float, ToolError] | None = None
        # Counters for tests and metrics: sessions opened, tools/list and tools/call sent.
        self.sessions_opened = 0
        self.listings = 0
        self.calls = 0

    def __repr__(self) -> str:
        return f"McpClient({self.config.name!r}, {self.config.transport})"

    # --- public sync API

    @traced_call("mcp tools/list", lambda self, **_: {"mcp_server": self.config.name})
    def list_tools(self, *, refresh: bool = False) -> list[McpToolInfo]:
        """The server's tools, from the cache while younger than `list_ttl_s`."""
        with self._lock:
            now = self._clock()
            if (
                not refresh
                and self._listing is not None
                and now - self._listed_at < self.config.list_ttl_s
            ):
                return self._listing
            if not refresh and self._failure is not None:
                failed_at, failure = self._failure
                if now - failed_at < min(FAILED_LIST_TTL_S, self.config.list_ttl_s):
                    raise ToolError(str(failure))
            try:
                listing = run_sync(lambda: self._session(self._list))
            except TimeoutError:
                failure = self._unreachable(
                    f"no tools/list answer within {self.config.timeout_s:g} s"
                )
                self._failure = (self._clock(), failure)
                raise failure from None
            except _ConnectTimeout:
                failure = self._unreachable(self._connect_timeout_reason())
                self._failure = (self._clock(), failure)
                raise failure from None
            except ToolError as error:
                self._failure = (self._clock(), error)
                raise
            self._listing, self._listed_at, self._failure = listing, self._clock(), None
            return listing

    def invalidate(self) -> None:
        with self._lock:
            self._listing = self._failure = None

    @traced_call("mcp tools/call", lambda self, name, *_, **__: {"mcp_server": self.config.name, "mcp_tool": name})  # noqa: E501
    def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        output_schema: dict[str, Any] | EllipsisType | None = ...,
    ) -> McpCallOutcome:
        """One session: `initialize` and `tools/call`. The result is checked against
        `output_schema` (default: the tool's in the cached listing, if any; the server is
        not listed for it). Raises `ToolError` for a result that does not match it."""
        if output_schema is ...:
            listed = {tool.name: tool for tool in self._listing or []}.get(name)
            output_schema = listed.output_schema if listed else None

        async def call(session: ClientSession) -> CallToolResult:
            from mcp import types

            self.calls += 1
            request = types.CallToolRequest(
                params=types.CallToolRequestParams(name=name, arguments=arguments)
            )
            return await session.send_request(request, types.CallToolResult)

        try:
            result = run_sync(lambda: self._session(call))
        except _ConnectTimeout:
            raise self._unreachable(self._connect_timeout_reason()) from None
        if output_schema is not None and not result.is_error:
            self._check_output(name, output_schema, result.structured_content)
        return render_result(result)

    def _check_output(self, name: str, schema: dict[str, Any], structured: Any) -> None:
        exposed = self.config.prefix + _UNSAFE_CHARS.sub("_", name)
        mismatch = f"tool '{exposed}' returned a result that does not match its output schema"
        if structured is None:
            raise ToolError(f"{mismatch}: it has no structuredContent")
        import fastjsonschema

        try:
            validate = _output_validator(json.dumps(schema, sort_keys=True))
        except Exception as error:  # JsonSchemaDefinitionException, or not a schema at all
            raise ToolError(
                f"tool '{exposed}' has an output schema that cannot be checked: "
                f"{_redact(str(error), None)}"
            ) from None
        try:
            validate(structured)
        except fastjsonschema.JsonSchemaValueException as error:
            detail = _redact(describe_schema_error(error, structured), None)
            raise ToolError(f"{mismatch}: {detail}") from None

    # --- async core

    async def _list(self, session: ClientSession) -> list[McpToolInfo]:
        from mcp import types

        self.listings += 1
        tools: list[McpToolInfo] = []
        exposed: set[str] = set()
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            for tool in page.tools:
                info = self._tool_info(
                    tool.name, tool.description, tool.input_schema, tool.output_schema
                )
                if info is None or info.exposed_name in exposed:
                    logger.warning(
                        "MCP server '%s': tool '%s' skipped (name not usable or clashing)",
                        self.config.name, tool.name[:100],
                    )
                    continue
                exposed.add(info.exposed_name)
                tools.append(info)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    def _tool_info(
        self,
        name: str,
        description: str | None,
        schema: dict[str, Any] | None,
        output_schema: dict[str, Any] | None = None,
    ) -> McpToolInfo | None:
        exposed = self.config.prefix + _UNSAFE_CHARS.sub("_", name)
        if not name or not _EXPOSED_NAME.match(exposed):
            return None
        schema = dict(schema or {})
        schema.setdefault("type", "object")
        return McpToolInfo(
            name=name,
            exposed_name=exposed,
            description=(description or f"Tool '{name}' of MCP server '{self.config.name}'."),
            input_schema=schema,
            output_schema=output_schema if isinstance(output_schema, dict) else None,
        )

    def _connect_timeout_reason(self) -> str:
        return (
            f"not started and initialized within {self.config.connect_timeout_s:g} s "
            "(connect_timeout_s)"
        )

    async def _session(self, action: Callable[[ClientSession], Awaitable[T]]) -> T:
        """Open a session and initialize under `connect_timeout_s`, then run `action` and
        close under `timeout_s`. Raises `_ConnectTimeout` or `TimeoutError`."""
        import anyio
        from mcp.client.session import ClientSession
        from mcp.shared.exceptions import MCPError

        ready = False
        failure: list[Exception] = []

        async def on_message(message: Any) -> None:
            # Transport failures arrive here as exceptions; remember the first one so a
            # request that then dies can say why.
            if isinstance(message, Exception) and not failure:
                failure.append(message)

        secret = None
        try:
            with anyio.fail_after(self.config.connect_timeout_s) as scope:
                transport, secret = self._transport()
                async with transport as (read, write):
                    self.sessions_opened += 1
                    async with ClientSession(read, write, message_handler=on_message) as session:
                        await session.initialize()
                        ready = True
                        # the request's own budget starts once the server is ready
                        scope.deadline = anyio.current_time() + self.config.timeout_s
                        return await action(session)
        except TimeoutError:
            if not ready:
                raise _ConnectTimeout from None
            raise
        except ToolError:
            raise
        except BaseException as raised:  # classified below; re-raised when not ours
            error = _first_error(raised)
            if error is None:
                raise
            if isinstance(error, TimeoutError):
                raise (TimeoutError if ready else _ConnectTimeout) from None
            closed = isinstance(error, MCPError) and error.error.code == _CONNECTION_CLOSED
            if isinstance(error, MCPError) and ready and not closed and not failure:
                message = _redact(error.error.message, secret)
                raise ToolError(f"MCP server '{self.config.name}' error: {message}") from None
            cause = failure[0] if failure and isinstance(error, MCPError) else error
            raise self._unreachable(_reason(cause, secret)) from None

    def _transport(self) -> tuple[Any, str | None]:
        config = self.config
        if config.transport == "stdio":
            import sys

            from mcp.client.stdio import StdioServerParameters, stdio_client

            parameters = StdioServerParameters(
                command=config.command or "", args=config.args, env=config.env or None,
                cwd=config.cwd,
            )
            return stdio_client(parameters, errlog=sys.stderr), None

        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        headers = dict(config.headers)
        secret = None
        if config.auth_header and config.auth_secret:
            secret = self._secret(config.auth_secret)
            headers[config.auth_header] = (
                f"{config.auth_scheme} {secret}" if config.auth_scheme else secret
            )
        http_client = httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(config.timeout_s, connect=config.connect_timeout_s),
        )
        transport = streamable_http_client(config.url or "", http_client=http_client)
        return _closing(transport, http_client), secret

    def _secret(self, name: str) -> str:
        resolver = self._secret_resolver
        if resolver is None:
            from agentkit.secrets import provider_key

            resolver = provider_key
        try:
            return resolver(name)
        except LookupError as error:  # SecretNotFoundError: names places, never a value
            raise self._unreachable(f"auth secret: {error}") from None
        except Exception as error:
            raise self._unreachable(
                f"auth secret {name} could not be read ({type(error).__name__})"
            ) from None

    def _unreachable(self, reason: str) -> ToolError:
        return ToolError(f"MCP server '{self.config.name}' unreachable: {reason}")


class _closing:
    """Enter a transport, and close the httpx client it was given on the way out."""

    def __init__(self, transport: Any, http_client: Any) -> None:
        self._transport = transport
        self._client = http_client

    async def __aenter__(self) -> Any:
        await self._client.__aenter__()
        try:
            return await self._transport.__aenter__()
        except BaseException:
            await self._client.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: Any) -> bool | None:
        try:
            return await self._transport.__aexit__(*exc)
        finally:
            await self._client.__aexit__(None, None, None)


def _no_remote_ref(uri: str) -> Any:
    raise ValueError(f"$ref {uri[:200]} is outside the schema (not fetched)")


@functools.lru_cache(maxsize=64)
def _output_validator(schema_json: str) -> Callable[[Any], Any]:
    """A compiled validator for an output schema (given as JSON text, so it can be cached:
    a warm function checks each tool's results without compiling again). As the SDK's own
    check: `format` is an annotation, and a `$ref` that leaves the schema is never fetched
    (the server's schema must not make the tool function open URLs or files)."""
    import fastjsonschema

    validator: Callable[[Any], Any] = fastjsonschema.compile(
        json.loads(schema_json),
        handlers=dict.fromkeys(("http", "https", "ftp", "file", "data"), _no_remote_ref),
        use_default=False,
        use_formats=False,
    )
    return validator


def _first_error(raised: BaseException) -> Exception | None:
    """The first real exception in (possibly nested) exception groups; None for a pure
    cancellation or a BaseException that is not ours to handle."""
    if isinstance(raised, BaseExceptionGroup):
        for inner in raised.exceptions:
            found = _first_error(inner)
            if found is not None:
                return found
        return None
    return raised if isinstance(raised, Exception) else None


def _reason(error: BaseException, secret: str | None) -> str:
    text = str(error).strip()
    cause = error.__cause__ or error.__context__
    if not text and cause is not None:
        text = str(cause).strip()
    reason = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return _redact(reason, secret)


def _redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    if len(text) > MAX_REASON_CHARS:
        text = text[:MAX_REASON_CHARS] + "..."
    return text


def render_result(result: Any) -> McpCallOutcome:
    """A `CallToolResult` as text: text blocks joined, other blocks described briefly,
    `structured_content` as JSON when there is no text."""
    parts: list[str] = []
    has_text = False
    for block in result.content or []:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
            has_text = True
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {block.mime_type}, {_decoded_size(block.data)} bytes]")
        elif kind == "resource_link":
            mime = f" {block.mime_type}" if getattr(block, "mime_type", None) else ""
            parts.append(f"[resource link {block.uri}{mime}: {block.name}]")
        elif kind == "resource":
            resource = block.resource
            mime = f" {resource.mime_type}" if getattr(resource, "mime_type", None) else ""
            text = getattr(resource, "text", None)
            if text is not None:
                parts.append(f"[resource {resource.uri}{mime}]\n{text}")
                has_text = True
            else:
                size = _decoded_size(getattr(resource, "blob", "") or "")
                parts.append(f"[resource {resource.uri}{mime}, {size} bytes]")
        else:
            parts.append(f"[{kind or 'unknown'} content]")
    structured = getattr(result, "structured_content", None)
    if structured is not None and not has_text:
        parts.insert(0, json.dumps(structured, ensure_ascii=False, default=str))
    return McpCallOutcome(text="\n".join(parts), is_error=bool(result.is_error))


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (ValueError, TypeError):
        return len(data)


class McpToolSource:
    """A registry source: the tools of one server, as `<server>__<tool>` JSON-schema tools."""

    def __init__(self, client: McpClient) -> None:
        self.client = client
        self.prefix = client.config.prefix
        self._built_from: list[McpToolInfo] | None = None
        self._tools: list[Tool] = []

    def __repr__(self) -> str:
        return f"McpToolSource({self.client.config.name!r})"

    def tools(self) -> list[Tool]:
        listing = self.client.list_tools()
        if listing is not self._built_from:  # rebuilt per listing; validators kept within
            self._tools = [self._tool(info) for info in listing]
            self._built_from = listing
        return self._tools

    def _tool(self, info: McpToolInfo) -> Tool:
        client = self.client

        def forward(arguments: dict[str, Any]) -> str:
            outcome = client.call_tool(info.name, arguments, output_schema=info.output_schema)
            if outcome.is_error:
                raise ToolError(outcome.text or f"tool '{info.exposed_name}' failed (no detail)")
            return outcome.text

        return Tool(
            name=info.exposed_name,
            description=info.description,
            args_model=None,
            input_schema=info.input_schema,
            func=forward,
            timeout_s=client.config.timeout_s,
            # the proxy enforces both budgets itself; the registry waits for all of it
            timeout_grace_s=client.config.connect_timeout_s + STOP_GRACE_S,
        )


def mcp_sources(
    servers: Iterable[McpServerConfig],
    *,
    clock: Callable[[], float] = time.monotonic,
    secret_resolver: Callable[[str], str] | None = None,
) -> list[McpToolSource]:
    return [
        McpToolSource(McpClient(server, clock=clock, secret_resolver=secret_resolver))
        for server in servers
    ]


def registry_with_mcp(
    servers: Iterable[McpServerConfig],
    base: ToolRegistry | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    secret_resolver: Callable[[str], str] | None = None,
) -> ToolRegistry:
    """`base` (default: the built-ins) plus the tools of `servers`, listed lazily."""
    if base is None:
        from agentkit.tools.builtin import BUILTIN_TOOLS

        base = ToolRegistry(BUILTIN_TOOLS)
    for source in mcp_sources(servers, clock=clock, secret_resolver=secret_resolver):
        base.add_source(source)
    return base
