"""MCP tools against REAL servers: server-everything (stdio and streamable HTTP),
server-filesystem, server-memory and mcp-server-time (stdio), tests/mcp/slow_server.py
and tests/mcp/schema_server.py.

The npm servers are installed by tests/mcp/servers.py (`npm ci`) when missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentkit.llm.tool_schema import (
    anthropic_input_schema,
    gemini_parameters,
    openai_parameters,
    openrouter_parameters,
)
from agentkit.models.api import TOOL_NAME_PATTERN
from agentkit.models.domain import ToolCall
from agentkit.tools import ToolRegistry
from agentkit.tools.mcp import (
    STOP_GRACE_S,
    McpClient,
    McpConfigError,
    McpServerConfig,
    McpToolSource,
    parse_mcp_config,
    registry_with_mcp,
)
from tests.mcp import servers
from tests.mcp.capture_schemas import live_configs, published_schemas
from tests.support.clock import Clock
from tests.support.loopback import LoopbackServer, Reply
from tests.support.providers import (
    anthropic_problems,
    gemini_problems,
    openai_problems,
)
from tests.support.providers import published_schemas as captured_schemas

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[3]


def _call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id="c1", name=name, arguments=arguments)


@pytest.fixture(scope="module")
def node_bin() -> Path:
    """The npm MCP servers. Without them the MCP tests fail, never skip: a run that could
    not test MCP must not pass (`make setup` installs Node's servers)."""
    try:
        return servers.ensure_node_servers()
    except servers.ServerUnavailable as error:
        problem = str(error)
    pytest.fail(f"the MCP test servers are missing: {problem}", pytrace=False)


@pytest.fixture(scope="module")
def http_url(node_bin: Path) -> Iterator[str]:
    with servers.everything_http_server() as url:
        yield url


@pytest.fixture(scope="module")
def fs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fsroot")
    (root / "hello.txt").write_text("hello from the root\n")
    (tmp_path_factory.getbasetemp() / "secret.txt").write_text("outside the root\n")
    return root


@pytest.fixture(scope="module")
def registry(node_bin: Path, http_url: str, fs_root: Path) -> ToolRegistry:
    """Built-ins plus every real server; listings are cached for the module (TTL 300 s)."""
    return registry_with_mcp(
        [
            servers.everything_stdio(),
            servers.everything_http(http_url),
            servers.time_stdio(),
            servers.filesystem_stdio(fs_root),
        ]
    )


def _source(registry: ToolRegistry, prefix: str) -> McpToolSource:
    for source in registry.sources:
        if source.prefix == prefix:
            assert isinstance(source, McpToolSource)
            return source
    raise AssertionError(prefix)


# --- listing


def test_tools_of_every_server_appear_prefixed_with_their_own_schemas(
    registry: ToolRegistry,
) -> None:
    specs, errors = registry.discover()
    assert errors == {}
    by_name = {spec.name: spec for spec in specs}
    for name in ["everything__echo", "everything__get-sum", "everything_http__echo",
                 "time__get_current_time", "time__convert_time", "fs__read_text_file",
                 "calculator"]:
        assert name in by_name, name
    for spec in specs:
        assert re.match(TOOL_NAME_PATTERN, spec.name), spec.name
    echo = by_name["everything__echo"].parameters
    assert echo["properties"]["message"]["type"] == "string"
    assert echo["required"] == ["message"]
    assert by_name["everything_http__echo"].parameters == echo
    assert by_name["everything__echo"].description == "Echoes back the input string"
    assert set(by_name["everything__get-sum"].parameters["required"]) == {"a", "b"}
    assert "timezone" in by_name["time__get_current_time"].parameters["properties"]
    assert "path" in by_name["fs__read_text_file"].parameters["required"]


def test_names_and_default_specs_never_list_a_server(registry: ToolRegistry) -> None:
    fresh = registry_with_mcp([servers.everything_stdio()])
    client = _source(fresh, "everything__").client
    assert "calculator" in fresh.names
    assert not any("__" in name for name in fresh.names)
    assert {spec.name for spec in fresh.specs()} == set(fresh.names)
    # A disallowed MCP name is refused without listing the server.
    denied = fresh.run(_call("everything__echo", message="x"), allowed=["calculator"])
    assert denied.is_error and "not allowed" in denied.content
    # Submit-time check without listing: any name in a server's namespace is accepted.
    assert fresh.unknown(["everything__echo", "calculator", "nope", "other__x"],
                         resolve_sources=False) == ["nope", "other__x"]
    assert client.sessions_opened == 0


def test_specs_and_unknown_resolve_through_the_server(registry: ToolRegistry) -> None:
    specs = registry.specs(["everything__echo", "calculator", "everything__nope"])
    assert [spec.name for spec in specs] == ["everything__echo", "calculator"]
    assert registry.unknown(["everything__echo", "everything__nope", "nope"]) == [
        "everything__nope", "nope"]
    assert registry.problem("everything__echo") is None


# --- calls


@pytest.mark.parametrize("server", ["everything", "everything_http"])
def test_echo_and_sum_over_both_transports(registry: ToolRegistry, server: str) -> None:
    echo = registry.run(_call(f"{server}__echo", message="hello MCP"))
    assert not echo.is_error, echo.content
    assert echo.content == "Echo: hello MCP"
    total = registry.run(_call(f"{server}__get-sum", a=17, b=25))
    assert not total.is_error, total.content
    assert "42" in total.content


def test_non_text_and_structured_content_are_rendered(registry: ToolRegistry) -> None:
    image = registry.run(_call("everything_http__get-tiny-image"))
    assert not image.is_error
    assert re.search(r"\[image image/png, \d+ bytes\]", image.content), image.content
    structured = registry.run(_call("everything_http__get-structured-content", location="Chicago"))
    assert not structured.is_error, structured.content
    assert "temperature" in structured.content


def test_time_server(registry: ToolRegistry) -> None:
    result = registry.run(_call("time__get_current_time", timezone="Asia/Tokyo"))
    assert not result.is_error, result.content
    assert json.loads(result.content)["timezone"] == "Asia/Tokyo"


def test_filesystem_reads_inside_its_root_and_refuses_outside(
    registry: ToolRegistry, fs_root: Path
) -> None:
    inside = registry.run(_call("fs__read_text_file", path=str(fs_root / "hello.txt")))
    assert not inside.is_error, inside.content
    assert inside.content.strip() == "hello from the root"
    outside = registry.run(
        _call("fs__read_text_file", path=str(fs_root.parent / "secret.txt"))
    )
    assert outside.is_error
    assert outside.content.startswith("error: ")
    assert "outside the root" not in outside.content
    assert "denied" in outside.content.lower() or "outside" in outside.content.lower()


def test_invalid_arguments_are_rejected_before_any_call(registry: ToolRegistry) -> None:
    client = _source(registry, "everything__").client
    registry.specs(["everything__echo"])  # listed (cached) before counting
    before = (client.sessions_opened, client.calls)
    missing = registry.run(_call("everything__echo", mesage="typo"))
    assert missing.is_error
    assert missing.content == "error: invalid arguments: field 'message': Field required"
    wrong = registry.run(_call("everything__get-sum", a=1, b="two"))
    assert wrong.is_error
    assert wrong.content.startswith("error: invalid arguments: field 'b': ")
    assert "number" in wrong.content
    assert (client.sessions_opened, client.calls) == before


def test_unknown_tool_on_a_server_is_an_error_result(registry: ToolRegistry) -> None:
    result = registry.run(_call("everything__no-such-tool"))
    assert result.is_error and result.content == "error: unknown tool 'everything__no-such-tool'"
    # A tool the server does not have (listing out of date) is the server's error.
    client = _source(registry, "everything__").client
    with pytest.raises(Exception, match="MCP server 'everything'"):
        outcome = client.call_tool("no-such-tool", {})
        if outcome.is_error:  # some servers answer with an is_error result instead
            raise RuntimeError(f"MCP server 'everything' said: {outcome.text}")


def test_is_error_from_the_server_becomes_an_error_result() -> None:
    slow = registry_with_mcp([servers.slow_stdio()], base=ToolRegistry())
    result = slow.run(_call("slow__fail", message="the disk is on fire"))
    assert result.is_error
    assert result.content.startswith("error: ")
    assert "the disk is on fire" in result.content


def test_a_call_is_one_session_with_initialize_and_tools_call_only(tmp_path: Path) -> None:
    log = tmp_path / "methods.log"
    registry = registry_with_mcp([servers.schema_stdio(log=log)], base=ToolRegistry())
    client = _source(registry, "schema__").client
    assert registry.get("schema__weather") is not None  # listed once (own session), cached
    assert log.read_text().split() == ["initialize", "notifications/initialized", "tools/list"]
    log.write_text("")

    for city in ("Paris", "Oslo"):
        result = registry.run(_call("schema__weather", city=city))
        assert not result.is_error, result.content
        assert json.loads(result.content) == {"temperature": 21.5, "conditions": "sunny"}
    # Each call: a session of its own, and no tools/list inside it (the SDK's call_tool
    # would list the tools again to validate the result against the output schema).
    assert log.read_text().split() == [
        "initialize", "notifications/initialized", "tools/call"] * 2
    assert (client.sessions_opened, client.listings, client.calls) == (3, 1, 2)

    log.write_text("")
    fresh = McpClient(servers.schema_stdio(log=log))  # nothing listed, nothing cached
    assert fresh.call_tool("ping", {}).text == "pong"
    assert log.read_text().split() == ["initialize", "notifications/initialized", "tools/call"]


@pytest.mark.parametrize(("answer", "problem"), [
    ("wrong_type", "field 'temperature': must be number"),
    ("missing_field", "field 'conditions': Field required"),
    ("unstructured", "it has no structuredContent"),
])
def test_a_result_that_breaks_its_output_schema_reads_as_that(answer: str, problem: str) -> None:
    registry = registry_with_mcp([servers.schema_stdio()], base=ToolRegistry())
    result = registry.run(_call("schema__weather", city="Paris", answer=answer))
    assert result.is_error
    assert result.content == (
        "error: tool 'schema__weather' returned a result that does not match its output "
        f"schema: {problem}"
    )
    # The server is fine: the next call works, and an is_error result is not checked.
    assert not registry.run(_call("schema__weather", city="Paris")).is_error
    failed = registry.run(_call("schema__weather", city="Paris", answer="error"))
    assert failed.is_error and failed.content == "error: no weather today"


def test_every_live_schema_is_shaped_into_what_each_provider_accepts(
    node_bin: Path, tmp_path: Path
) -> None:
    live = published_schemas(live_configs(tmp_path))
    # The unit tests shape the captured copy; it must be what the servers publish now.
    assert live == captured_schemas(), "re-run: python -m tests.mcp.capture_schemas"
    providers: list[tuple[Callable[..., Any], Callable[..., list[str]]]] = [
        (openai_parameters, openai_problems),
        (openrouter_parameters, openai_problems),
        (anthropic_input_schema, anthropic_problems),
        (gemini_parameters, gemini_problems),
    ]
    shaped = 0
    for server, tools in live.items():
        for tool, schema in tools.items():
            for shape, problems in providers:
                assert problems(shape(schema)) == [], (server, tool, shape.__name__)
                shaped += 1
    assert shaped == 4 * sum(len(tools) for tools in live.values()) >= 4 * 40


# --- cache


def test_listing_is_cached_per_server_for_the_ttl() -> None:
    clock = Clock(1000.0)
    config = servers.everything_stdio(list_ttl_s=60)
    client = McpClient(config, clock=clock)
    first = client.list_tools()
    assert (client.listings, client.sessions_opened) == (1, 1)
    clock.advance(59)
    assert client.list_tools() is first
    assert (client.listings, client.sessions_opened) == (1, 1)  # not contacted again
    clock.advance(2)
    again = client.list_tools()
    assert (client.listings, client.sessions_opened) == (2, 2)
    assert [tool.exposed_name for tool in again] == [tool.exposed_name for tool in first]


def test_registry_lookups_share_the_cached_listing(http_url: str) -> None:
    registry = registry_with_mcp([servers.everything_http(http_url)], clock=Clock(1000.0))
    client = _source(registry, "everything_http__").client
    registry.specs(["everything_http__echo"])
    registry.unknown(["everything_http__echo", "everything_http__get-sum"])
    registry.get("everything_http__echo")
    assert client.listings == 1
    assert not registry.run(_call("everything_http__echo", message="x")).is_error
    assert client.listings == 1 and client.calls == 1


# --- failures


def test_a_hung_call_times_out_over_http(http_url: str) -> None:
    registry = registry_with_mcp([servers.everything_http(http_url, timeout_s=1.5)],
                                 base=ToolRegistry())
    registry.specs(["everything_http__trigger-long-running-operation"])  # list first
    started = time.monotonic()
    result = registry.run(
        _call("everything_http__trigger-long-running-operation", duration=20, steps=4)
    )
    elapsed = time.monotonic() - started
    assert result.is_error
    assert result.content == (
        "error: tool 'everything_http__trigger-long-running-operation' timed out after 1.5 s"
    )
    assert elapsed < 1.5 + STOP_GRACE_S


def test_a_slow_start_does_not_eat_the_request_budget() -> None:
    """Spawn + initialize have their own budget (connect_timeout_s): a server that takes
    longer to start than the request's timeout_s still answers."""
    config = servers.slow_stdio(
        timeout_s=1, connect_timeout_s=20, env={"SLOW_SERVER_START_DELAY_S": "1.5"}
    )
    registry = registry_with_mcp([config], base=ToolRegistry())
    result = registry.run(_call("slow__sleep", seconds=0.1))
    assert not result.is_error, result.content
    assert result.content == "slept"


def test_a_server_that_does_not_start_in_time_is_unreachable() -> None:
    config = servers.slow_stdio(
        timeout_s=5, connect_timeout_s=0.5, env={"SLOW_SERVER_START_DELAY_S": "30"}
    )
    registry = registry_with_mcp([config], base=ToolRegistry())
    started = time.monotonic()
    result = registry.run(_call("slow__sleep", seconds=0.1))
    assert result.is_error
    assert "MCP server 'slow' unreachable: not started and initialized within 0.5 s" in (
        result.content
    ), result.content
    assert time.monotonic() - started < 0.5 + STOP_GRACE_S


def test_a_hung_call_times_out_over_stdio_and_the_server_is_stopped(node_bin: Path) -> None:
    registry = registry_with_mcp([servers.everything_stdio(timeout_s=3)], base=ToolRegistry())
    assert registry.specs(["everything__trigger-long-running-operation"])
    started = time.monotonic()
    result = registry.run(_call("everything__trigger-long-running-operation", duration=60, steps=6))
    elapsed = time.monotonic() - started
    assert result.is_error
    assert result.content == (
        "error: tool 'everything__trigger-long-running-operation' timed out after 3 s"
    )
    assert elapsed < 3 + STOP_GRACE_S
    # The session stops the server process it started: wait for it to be gone (its exit is
    # the signal), within the grace a stop is given.
    deadline = time.monotonic() + STOP_GRACE_S
    while (stdio_servers := _our_stdio_servers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stdio_servers == []


def _our_stdio_servers() -> list[str]:
    """server-everything processes over stdio that this process started and that still run."""
    ps = subprocess.run(
        ["ps", "-ww", "-eo", "ppid=,stat=,args="], capture_output=True, text=True, check=True
    )
    ours = [line for line in ps.stdout.splitlines() if line.split()[0] == str(os.getpid())]
    return [p for p in ours if "mcp-server-everything" in p and "streamableHttp" not in p
            and not p.split()[1].startswith("Z")]  # a zombie has exited: only unreaped


def test_unreachable_http_server_is_an_error_result() -> None:
    port = servers.free_port()  # nothing listens there
    registry = registry_with_mcp(
        [McpServerConfig(name="down", transport="streamable_http",
                         url=f"http://127.0.0.1:{port}/mcp", timeout_s=5)],
        base=ToolRegistry(),
    )
    started = time.monotonic()
    result = registry.run(_call("down__anything", x=1))
    assert result.is_error
    assert result.content.startswith("error: MCP server 'down' unreachable: ")
    assert time.monotonic() - started < 5
    assert registry.specs(["down__anything"]) == []
    assert registry.unknown(["down__anything"]) == ["down__anything"]
    assert "unreachable" in (registry.problem("down__anything") or "")
    _, errors = registry.discover()
    assert list(errors) == ["down__"]


def test_a_stdio_command_that_does_not_exist_is_an_error_result(tmp_path: Path) -> None:
    registry = registry_with_mcp(
        [McpServerConfig(name="ghost", transport="stdio", command=str(tmp_path / "nope"))],
        base=ToolRegistry(),
    )
    result = registry.run(_call("ghost__x"))
    assert result.is_error
    assert result.content.startswith("error: MCP server 'ghost' unreachable: ")


def test_auth_secret_is_sent_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "tok-s3cret-value-123"
    monkeypatch.setenv("TEST_MCP_TOKEN", token)
    with LoopbackServer(lambda _: Reply(401, body="no")) as server:
        config = McpServerConfig(
            name="authd", transport="streamable_http", url=f"{server.url}/mcp",
            auth_header="Authorization", auth_scheme="Bearer", auth_secret="TEST_MCP_TOKEN",
            headers={"X-Team": "opspawn"}, timeout_s=5,
        )
        registry = registry_with_mcp([config], base=ToolRegistry())
        result = registry.run(_call("authd__x"))
    assert result.is_error
    assert result.content.startswith("error: MCP server 'authd' unreachable: ")
    assert token not in result.content and token not in repr(config)
    assert server.requests
    assert server.requests[0].headers["authorization"] == f"Bearer {token}"
    assert server.requests[0].headers["x-team"] == "opspawn"


def test_a_missing_auth_secret_is_named_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_SUCH_MCP_TOKEN", "PROVIDER_KEYS_SECRET_ARN", "NO_SUCH_MCP_TOKEN_PARAMETER"):
        monkeypatch.delenv(name, raising=False)
    config = McpServerConfig(
        name="authd", transport="streamable_http", url="http://127.0.0.1:9/mcp",
        auth_header="X-Api-Key", auth_secret="NO_SUCH_MCP_TOKEN",
    )
    result = registry_with_mcp([config], base=ToolRegistry()).run(_call("authd__x"))
    assert result.is_error
    assert "unreachable: auth secret: NO_SUCH_MCP_TOKEN is not set" in result.content


def test_works_from_a_thread_that_already_runs_an_event_loop(http_url: str) -> None:
    registry = registry_with_mcp([servers.everything_http(http_url)], base=ToolRegistry())

    async def inside_a_loop() -> list[str]:
        return [spec.name for spec in registry.specs(["everything_http__echo"])]

    assert asyncio.run(inside_a_loop()) == ["everything_http__echo"]


# --- configuration


def load_mcp_config(environ: dict[str, str]) -> list[McpServerConfig]:
    from agentkit.config.tools import ToolSettings

    return ToolSettings.from_env(environ).mcp_servers


def test_config_from_env_and_its_errors_name_the_field() -> None:
    assert load_mcp_config({}) == []
    assert load_mcp_config({"MCP_SERVERS": "  "}) == []
    servers_ = load_mcp_config({"MCP_SERVERS": json.dumps([
        {"name": "docs", "transport": "streamable_http", "url": "https://x.example/mcp"},
        {"name": "time", "transport": "stdio", "command": "mcp-server-time", "timeout_s": 5},
    ])})
    assert [(s.name, s.timeout_s, s.list_ttl_s) for s in servers_] == [
        ("docs", 20.0, 300.0), ("time", 5.0, 300.0)]

    def error(value: Any) -> str:
        with pytest.raises(McpConfigError) as caught:
            parse_mcp_config(value if isinstance(value, str) else json.dumps(value))
        return str(caught.value)

    assert "not valid JSON" in error("[{")
    assert "must be a JSON list" in error({"name": "x"})
    message = error([{"name": "ok", "transport": "stdio", "command": "x"},
                     {"name": "web", "transport": "streamable_http"}])
    assert message.startswith("MCP_SERVERS[1] (server 'web'): url:"), message
    assert "MCP_SERVERS[0] (server 'Bad-Name').name: String should match pattern" in error(
        [{"name": "Bad-Name", "transport": "stdio", "command": "x"}])
    assert "'__'" in error([{"name": "a__b", "transport": "stdio", "command": "x"}])
    assert "MCP_SERVERS[0] (server 'a').transport: Input should be" in error(
        [{"name": "a", "transport": "sse", "url": "x"}])
    assert "MCP_SERVERS[0] (server 'a').timeout_s" in error(
        [{"name": "a", "transport": "stdio", "command": "x", "timeout_s": 0}])
    assert "duplicate server name 'a'" in error(
        [{"name": "a", "transport": "stdio", "command": "x"}] * 2)
    assert "auth_header and auth_secret" in error(
        [{"name": "a", "transport": "streamable_http", "url": "http://h/mcp",
          "auth_header": "Authorization"}])


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": f"{REPO / 'layers' / 'agentkit'}:{REPO}", **env},
        check=False,
    )


def test_importing_and_using_builtins_never_imports_mcp(node_bin: Path) -> None:
    config = json.dumps([servers.everything_stdio(name="ev").model_dump(exclude_defaults=True)])
    done = _python(
        "import sys\n"
        "import agentkit.tools\n"
        "from agentkit.config.tools import ToolSettings\n"
        "from agentkit.models.domain import ToolCall\n"
        "tools = ToolSettings.from_env()\n"
        "registry = agentkit.tools.default_registry(tools.mcp_servers,"
        " policy=tools.security_policy, secret_sources=tools.secret_sources)\n"
        "assert [s.prefix for s in registry.sources] == ['ev__'], registry.sources\n"
        "registry.specs(); registry.specs(['calculator']); registry.unknown(['calculator'])\n"
        "assert not registry.run(ToolCall(id='1', name='calculator',"
        " arguments={'expression': '1+1'})).is_error\n"
        "loaded = [m for m in ('mcp', 'anyio', 'httpx2', 'fastjsonschema') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "result = registry.run(ToolCall(id='2', name='ev__echo',"
        " arguments={'message': 'hi'}))\n"
        "assert not result.is_error, result.content\n"
        "assert 'mcp' in sys.modules and 'fastjsonschema' in sys.modules\n"
        "print('ok')\n",
        MCP_SERVERS=config,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_tool_settings_refuse_a_bad_mcp_servers_value() -> None:
    done = _python("from agentkit.config import load\n"
                   "from agentkit.config.tools import PlanSettings\nload(PlanSettings)",
                   TABLE_NAME="t", MCP_SERVERS='[{"name": 1}]')
    assert done.returncode != 0
    assert "McpConfigError: MCP_SERVERS[0].name" in done.stderr
