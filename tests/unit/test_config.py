"""Configuration: one validated settings model per function, read once from the
environment by agentkit.config; nothing else in the layer or the functions reads it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from agentkit import config
from agentkit.config import ConfigError, WaitForApprovalSettings
from agentkit.config import memory as memory_config
from agentkit.config import model_calls as model_call_config
from agentkit.config import tools as tool_config
from agentkit.config.model_calls import CallModelSettings
from agentkit.config.tools import RunToolsSettings, SchedulesSettings, SubmitSettings
from agentkit.security.policy import PolicyError
from agentkit.tools.mcp import McpConfigError

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "agentkit" / "agentkit"
#: The one module that touches the process environment.
ENVIRONMENT_MODULE = LAYER / "config" / "environment.py"
_ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def _environment_reads(path: Path) -> list[str]:
    """Where `path` reaches the process environment: `os.environ` / `os.getenv` (under
    any alias of `os`), or `from os import environ, getenv`."""
    tree = ast.parse(path.read_text(), str(path))
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    os_names = {"os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names.update(a.asname for a in node.names if a.name == "os" and a.asname)
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in _ENV_NAMES
                and isinstance(node.value, ast.Name) and node.value.id in os_names):
            found.append(f"{where}:{node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found.extend(f"{where}:{node.lineno}: from os import {a.name}"
                         for a in node.names if a.name in _ENV_NAMES)
    return found


def test_the_checker_sees_every_way_of_reading_the_environment(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os as o\nfrom os import getenv\nx = o.environ.get('A')\n"
                      "y = os.getenv('B')\nz = os.path.join('a')\n")
    assert sorted(hit.split(": ", 1)[1] for hit in _environment_reads(sample)) == [
        "from os import getenv", "os.environ", "os.getenv"]


def test_only_the_config_package_reads_the_environment() -> None:
    """The layer's logic and the functions get their settings as values: no module of
    agentkit other than agentkit.config.environment, and no function module, reads it."""
    modules = [*LAYER.rglob("*.py"), *(ROOT / "functions").glob("*/app.py")]
    assert ENVIRONMENT_MODULE in modules and len(modules) > 50
    assert _environment_reads(ENVIRONMENT_MODULE)  # the checker sees the real reader
    offenders = [hit for path in modules if path != ENVIRONMENT_MODULE
                 for hit in _environment_reads(path)]
    assert offenders == []


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


@pytest.mark.parametrize("function", sorted(p.parent.name for p in
                                            (ROOT / "functions").glob("*/app.py")))
def test_each_function_loads_its_own_settings_model(function: str) -> None:
    """functions/<name>/app.py reads `<Name>Settings` once, at cold start (module level);
    the functions with tools find theirs in agentkit.config.tools, the memories function in
    agentkit.config.memory, the functions that call models in agentkit.config.model_calls."""
    name = f"{_camel(function)}Settings"
    model = (getattr(config, name, None) or getattr(tool_config, name, None)
             or getattr(memory_config, name, None) or getattr(model_call_config, name))
    assert issubclass(model, config.StoreSettings)
    tree = ast.parse((ROOT / "functions" / function / "app.py").read_text())
    loads = [node for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)
             and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
             and node.value.func.id == "load"]
    assert [ast.unparse(node.value) for node in loads if node.value] == [
        f"load({model.__name__})"]


def test_settings_are_read_once_per_cold_start(monkeypatch: pytest.MonkeyPatch) -> None:
    config.clear_cache()
    monkeypatch.setenv("TABLE_NAME", "first")
    first = config.load(WaitForApprovalSettings)
    monkeypatch.setenv("TABLE_NAME", "second")
    assert config.load(WaitForApprovalSettings) is first
    assert first.table_name == "first"
    config.clear_cache()
    assert config.load(WaitForApprovalSettings).table_name == "second"
    config.clear_cache()


ENV = {"TABLE_NAME": "tasks"}


def test_a_function_model_is_composed_of_its_parts() -> None:
    submit = SubmitSettings.from_env({
        **ENV, "ARTIFACTS_BUCKET": "blobs", "STATE_MACHINE_ARN": "arn:sm",
        "IDEMPOTENCY_TABLE_NAME": "idem", "DEFAULT_MAX_TURNS": "7",
        "SCRIPTED_MODEL_ENABLED": "true", "TENANT_LIMITS": '{"default": {"max_running": 2}}',
        "SECURITY_POLICY": '{"allowed_tools": ["calculator"]}',
        "MCP_SERVERS": '[{"name": "docs", "transport": "streamable_http", '
                       '"url": "https://x.example/mcp"}]',
        "PROVIDER_KEYS_SECRET_ARN": "arn:secret",
    })
    assert (submit.table_name, submit.artifacts_bucket, submit.state_machine_arn) == (
        "tasks", "blobs", "arn:sm")
    assert submit.idempotency_table_name == "idem"
    assert submit.default_max_turns == 7 and submit.scripted_model_enabled
    assert submit.max_running_for("anyone") == 2
    assert submit.security_policy.allowed_tools == ["calculator"]
    assert [server.name for server in submit.mcp_servers] == ["docs"]
    assert submit.secret_sources.secret_arn == "arn:secret"
    # Unset or blank: the defaults.
    bare = SubmitSettings.from_env({**ENV, "DEFAULT_MAX_TURNS": " ", "ARTIFACTS_BUCKET": ""})
    assert bare.artifacts_bucket is None and bare.default_max_turns == 10
    assert bare.mcp_servers == [] and bare.default_max_tokens is None


def test_context_windows_add_to_the_table() -> None:
    call_model = CallModelSettings.from_env({
        **ENV, "CONTEXT_WINDOWS": '{"scripted": 16000, "openai:ft-*": 8192}'})
    assert call_model.context_windows == {"scripted": 16_000, "openai:ft-*": 8192}
    assert CallModelSettings.from_env({**ENV, "CONTEXT_WINDOWS": " "}).context_windows == {}


def test_provider_endpoints_are_explicit_settings() -> None:
    call_model = CallModelSettings.from_env({
        **ENV, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "ANTHROPIC_TIMEOUT_S": "12.5",
        "ANTHROPIC_MAX_TOKENS": "1024", "OPENROUTER_SITE_URL": "https://site.example",
        "GOOGLE_BASE_URL": " ", "PROVIDER_KEYS_SECRET_ARN": "arn:keys",
        "OPENAI_API_KEY": "sk-never-held",
    })
    providers = call_model.providers
    assert providers.openai.base_url == "http://127.0.0.1:9/v1"
    assert providers.openai.timeout_s == 60.0
    assert (providers.anthropic.timeout_s, providers.anthropic.max_tokens) == (12.5, 1024)
    assert providers.google.base_url is None
    assert providers.openrouter.site_url == "https://site.example"
    assert providers.secret_sources.secret_arn == "arn:keys"
    # Keys are secrets resolved when a client is made (agentkit.secrets), never settings.
    assert "sk-never-held" not in call_model.model_dump_json()


@pytest.mark.parametrize(
    ("model", "env", "error", "expected"),
    [
        (WaitForApprovalSettings, {}, ConfigError, "TABLE_NAME is not set"),
        (SubmitSettings, {"DEFAULT_MAX_TURNS": "0"}, ConfigError,
         "DEFAULT_MAX_TURNS (default_max_turns): Input should be greater than or equal to 1"),
        (SubmitSettings, {"DEFAULT_MAX_TURNS": "many"}, ConfigError,
         "DEFAULT_MAX_TURNS must be a whole number, got 'many'"),
        (SchedulesSettings, {"DEFAULT_MAX_WAIT_SECONDS": "-1"}, ConfigError,
         "DEFAULT_MAX_WAIT_SECONDS (default_max_wait_seconds): Input should be greater"),
        (SubmitSettings, {"BUDGET_CEILINGS": '{"default": {"max_turns": 0}}'}, ConfigError,
         "BUDGET_CEILINGS is invalid"),
        (RunToolsSettings, {"TOOL_MAX_RECEIVES": "x"}, ConfigError,
         "TOOL_MAX_RECEIVES (tool_max_receives): Input should be a valid integer"),
        (RunToolsSettings, {"MCP_SERVERS": '[{"name": "a", "transport": "sse"}]'},
         McpConfigError, "MCP_SERVERS[0] (server 'a').transport"),
        (WaitForApprovalSettings, {"SECURITY_POLICY": "[]"}, PolicyError,
         "SECURITY_POLICY is not a valid security policy"),
        (CallModelSettings, {"PROVIDER_LIMITS": '{"openai": {"rpm": 0}}'}, ConfigError,
         "PROVIDER_LIMITS is invalid: openai.rpm"),
        (CallModelSettings, {"TENANT_LIMITS": '{"default": {"max_running": 0}}'}, ConfigError,
         "TENANT_LIMITS is invalid: default.max_running"),
        (CallModelSettings, {"OPENAI_TIMEOUT_S": "soon"}, ConfigError,
         "OPENAI_TIMEOUT_S must be a positive number of seconds, got 'soon'"),
        (CallModelSettings, {"ANTHROPIC_MAX_TOKENS": "10.5"}, ConfigError,
         "ANTHROPIC_MAX_TOKENS must be a positive whole number"),
        (CallModelSettings, {"CONTEXT_WINDOWS": "{16k}"}, ConfigError,
         "CONTEXT_WINDOWS is not JSON"),
        (CallModelSettings, {"CONTEXT_WINDOWS": '{"scripted": 100}'}, ConfigError,
         "CONTEXT_WINDOWS (context_windows.scripted): Input should be greater than or equal"),
    ],
)
def test_a_bad_value_stops_the_cold_start_naming_the_variable(
    model: type[config.SettingsPart], env: dict[str, str], error: type[Exception],
    expected: str,
) -> None:
    with pytest.raises(error) as caught:
        model.from_env({**(ENV if env else {}), **env})
    assert expected in str(caught.value)
