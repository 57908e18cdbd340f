"""The security manager: policy parsing and matching, argument constraints, call hashing,
and the fail-closed built-ins (http_fetch, read_file) refusing what the policy does not allow."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentkit.config import SecuritySettings
from agentkit.models.domain import Task, ToolCall
from agentkit.security import (
    PolicyError,
    SecurityConfig,
    SecurityManager,
    approval_id_for,
    args_hash,
)
from agentkit.tools import default_registry
from tests.support.loopback import LoopbackServer, Reply, Request

POLICY = {
    "allowed_tools": ["calculator", "http_fetch", "github__*"],
    "approval_required": ["http_fetch", "github__create_*"],
    "constraints": {"http_fetch": {"url_hosts": ["127.0.0.1", "*.example.com"]}},
    "tenants": {"acme": {"allowed_tools": ["calculator", "current_time"]}},
}


def _task(tools: list[str], tenant: str = "default") -> Task:
    return Task(task_id="tsk_1", tenant_id=tenant, goal="g", model="scripted", tools=tools,
                max_turns=3)


def _call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id="call_1_0", name=name, arguments=arguments)


# --- policy -----------------------------------------------------------------


def test_an_unset_policy_allows_every_tool_but_the_fail_closed_ones() -> None:
    manager = SecurityManager(SecurityConfig.parse(None))
    names = default_registry().names
    assert manager.disallowed(names) == ["http_fetch", "read_file"]
    assert "url_hosts allow-list" in manager.explain("http_fetch")
    task = _task(["calculator"])
    assert manager.check(task, _call("calculator", expression="1+1")).outcome == "allow"


def test_names_patterns_and_tenant_overrides() -> None:
    config = SecurityConfig.parse(json.dumps(POLICY))
    manager = SecurityManager(config)
    assert manager.disallowed(["calculator", "current_time", "http_fetch", "github__search",
                               "gitlab__search"]) == ["current_time", "gitlab__search"]
    policy = config.for_tenant("default")
    assert policy.needs_approval("github__create_issue") and not policy.needs_approval(
        "github__search")
    # A tenant overrides the fields it sets, and keeps the rest of the base policy.
    acme = config.for_tenant("acme")
    assert acme.allowed_tools == ["calculator", "current_time"]
    assert acme.approval_required == POLICY["approval_required"]
    assert manager.disallowed(["current_time", "http_fetch"], "acme") == ["http_fetch"]
    assert config.for_tenant("unknown-tenant") == policy


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "SECURITY_POLICY is not a valid security policy"),
        ('{"allowed_tool": []}', "allowed_tool"),
        ('{"allowed_tools": ["rm -rf"]}', "not a tool name"),
        ('{"constraints": {"http_fetch": {"url_hosts": ["http://x.com"]}}}', "not a host"),
        ('{"constraints": {"read_file": {"path_prefixes": ["tmp"]}}}', "must be absolute"),
    ],
)
def test_a_bad_policy_fails_loudly(text: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        SecurityConfig.parse(text)
    assert fragment in str(caught.value)


def test_policy_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURITY_POLICY", json.dumps(POLICY))
    manager = SecurityManager(SecuritySettings.from_env().security_policy)
    assert manager.policy().allowed_tools == POLICY["allowed_tools"]
    monkeypatch.setenv("SECURITY_POLICY", "[]")
    with pytest.raises(PolicyError):
        SecuritySettings.from_env()


def _configured_registry() -> Any:
    """The registry a function builds from its settings (the policy binds the built-ins)."""
    return default_registry(policy=SecuritySettings.from_env().security_policy)


# --- decisions and constraints --------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:8080/x", None),
        ("https://api.example.com/v1", None),
        ("https://API.Example.COM./v1", None),
        ("https://example.com/", "host 'example.com' is not allowed"),
        ("https://example.com.evil.org/", "is not allowed"),
        ("https://evil.org/?u=https://api.example.com", "host 'evil.org' is not allowed"),
        ("https://api.example.com@evil.org/", "credentials in the URL"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("localhost:8080", "scheme 'localhost' is not allowed"),
        ("http://[::1]/", "host '::1' is not allowed"),
    ],
)
def test_url_host_allow_list(url: str, problem: str | None) -> None:
    manager = SecurityManager(SecurityConfig.parse(json.dumps(POLICY)))
    decision = manager.check(_task(["http_fetch"]), _call("http_fetch", url=url))
    if problem is None:
        assert decision.outcome == "needs_approval"
    else:
        assert decision.outcome == "deny"
        assert problem in (decision.reason or "")
        assert decision.denial_text.startswith("error: tool call denied: argument 'url': ")


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/srv/data/report.txt", True),
        ("/srv/data", True),
        ("/srv/data/../secrets/key", False),
        ("/srv/database/x", False),
        ("relative/path", False),
        ("/proc/self/environ", False),
    ],
)
def test_path_prefixes(path: str, allowed: bool) -> None:
    config = SecurityConfig.parse(json.dumps({
        "constraints": {"read_file": {"path_prefixes": ["/srv/data/"]}}}))
    decision = SecurityManager(config).check(_task(["read_file"]), _call("read_file", path=path))
    assert (decision.outcome == "allow") is allowed, decision.reason


def test_configurable_argument_fields() -> None:
    config = SecurityConfig.parse(json.dumps({"constraints": {"github__fetch": {
        "url_hosts": ["api.github.com"], "url_fields": ["endpoint", "callback"]}}}))
    manager = SecurityManager(config)
    task = _task(["github__fetch"])
    ok = _call("github__fetch", endpoint="https://api.github.com/x", url="https://any.org")
    assert manager.check(task, ok).outcome == "allow"
    bad = _call("github__fetch", endpoint="https://api.github.com/x", callback="https://e.vil/")
    assert "argument 'callback'" in (manager.check(task, bad).reason or "")
    assert "must be a URL string" in (
        manager.check(task, _call("github__fetch", endpoint=["x"])).reason or "")


def test_a_tool_outside_the_task_or_the_policy_is_denied() -> None:
    manager = SecurityManager(SecurityConfig.parse(json.dumps(POLICY)))
    decision = manager.check(_task(["calculator"]), _call("http_fetch", url="http://127.0.0.1/"))
    assert decision.outcome == "deny" and "not allowed for this task" in (decision.reason or "")
    decision = manager.check(_task(["current_time"]), _call("current_time"))
    assert decision.outcome == "deny"
    assert decision.reason == "tool 'current_time' is not allowed by the security policy"


def test_approval_ids_are_deterministic_and_bound_to_the_exact_call() -> None:
    manager = SecurityManager(SecurityConfig.parse(json.dumps(POLICY)))
    task = _task(["http_fetch"])
    first = manager.check(task, _call("http_fetch", url="http://127.0.0.1/a"), turn=1)
    again = manager.check(task, _call("http_fetch", url="http://127.0.0.1/a"), turn=1)
    changed = manager.check(task, _call("http_fetch", url="http://127.0.0.1/b"), turn=1)
    later = manager.check(task, _call("http_fetch", url="http://127.0.0.1/a"), turn=2)
    assert first == again and first.outcome == "needs_approval"
    assert first.approval_id and first.approval_id.startswith("apv_")
    assert changed.args_hash != first.args_hash and changed.approval_id != first.approval_id
    assert later.args_hash == first.args_hash and later.approval_id != first.approval_id


def test_args_hash_is_canonical_and_sensitive_to_any_change() -> None:
    base = args_hash("http_fetch", {"url": "http://h/", "max_bytes": 10, "opts": {"a": 1, "b": 2}})
    # Key order and whitespace do not matter ...
    assert base == args_hash("http_fetch", {"opts": {"b": 2, "a": 1}, "max_bytes": 10,
                                            "url": "http://h/"})
    # ... the tool, every value, every key and every type do.
    for name, arguments in [
        ("http_fetch2", {"url": "http://h/", "max_bytes": 10, "opts": {"a": 1, "b": 2}}),
        ("http_fetch", {"url": "http://h/ ", "max_bytes": 10, "opts": {"a": 1, "b": 2}}),
        ("http_fetch", {"url": "http://h/", "max_bytes": 11, "opts": {"a": 1, "b": 2}}),
        ("http_fetch", {"url": "http://h/", "max_bytes": "10", "opts": {"a": 1, "b": 2}}),
        ("http_fetch", {"url": "http://h/", "max_bytes": 10, "opts": {"a": 1, "b": 3}}),
        ("http_fetch", {"url": "http://h/", "max_bytes": 10, "opts": {"a": 1}}),
        ("http_fetch", {"url": "http://h/", "max_bytes": 10, "opts": {"a": 1, "b": 2}, "x": None}),
    ]:
        assert args_hash(name, arguments) != base, (name, arguments)
    assert len(base) == 64 and base == base.lower()
    # Stable across processes and releases: sha256 of the canonical JSON, a known value.
    canonical = b'{"arguments":{"expression":"1+1"},"tool":"calculator"}'
    assert args_hash("calculator", {"expression": "1+1"}) == hashlib.sha256(canonical).hexdigest()
    assert hashlib.sha256(canonical).hexdigest().startswith("42c1455b4b4b82a5")
    assert approval_id_for("tsk_1", 1, "c", base) == approval_id_for("tsk_1", 1, "c", base)


# --- http_fetch and read_file ----------------------------------------------------


def _site(request: Request, port: int) -> Reply:
    if request.path == "/redirect-out":
        return Reply(302, headers={"Location": f"http://localhost:{port}/secret"})
    return Reply(body="hello from the allow-listed host " + "x" * 500)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as site:
        site.respond = lambda request: _site(request, site.port)
        yield site


def _fetch(url: str, **extra: Any) -> Any:
    return _configured_registry().run(ToolCall(id="c1", name="http_fetch",
                                           arguments={"url": url, **extra}))


def test_http_fetch_gets_an_allow_listed_url(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = server.port
    monkeypatch.setenv("SECURITY_POLICY", json.dumps(
        {"constraints": {"http_fetch": {"url_hosts": ["127.0.0.1"]}}}))
    result = _fetch(f"http://127.0.0.1:{port}/page", max_bytes=40)
    assert not result.is_error, result.content
    body = json.loads(result.content)
    assert body["status"] == 200 and body["truncated"] is True
    assert body["text"] == "hello from the allow-listed host xxxxxxx"
    assert server.paths == ["/page"]


@pytest.mark.parametrize(
    "policy",
    [
        None,  # misconfigured: no policy at all
        {"constraints": {"http_fetch": {"url_hosts": ["127.0.0.1"]}}},
        {"constraints": {"http_fetch": {}}},
    ],
)
def test_http_fetch_refuses_other_hosts_without_contacting_them(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, policy: Any
) -> None:
    """Even called directly, past the security manager: `localhost` is the same server
    under a name that is not allow-listed, and the server must see no request at all."""
    port = server.port
    if policy is None:
        monkeypatch.delenv("SECURITY_POLICY", raising=False)
    else:
        monkeypatch.setenv("SECURITY_POLICY", json.dumps(policy))
    result = _fetch(f"http://localhost:{port}/secret")
    assert result.is_error
    assert "refusing to fetch" in result.content and "host 'localhost' is not allowed" in (
        result.content)
    assert server.paths == []


def test_http_fetch_checks_every_redirect_hop(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = server.port
    monkeypatch.setenv("SECURITY_POLICY", json.dumps(
        {"constraints": {"http_fetch": {"url_hosts": ["127.0.0.1"]}}}))
    result = _fetch(f"http://127.0.0.1:{port}/redirect-out")
    assert result.is_error and "host 'localhost' is not allowed" in result.content
    assert server.paths == ["/redirect-out"]  # the redirect target was never requested


def test_read_file_stays_under_its_prefixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = tmp_path / "shared"
    allowed.mkdir()
    (allowed / "notes.txt").write_text("the notes")
    (tmp_path / "secret.txt").write_text("the secret")
    (allowed / "link.txt").symlink_to(tmp_path / "secret.txt")
    monkeypatch.setenv("SECURITY_POLICY", json.dumps(
        {"constraints": {"read_file": {"path_prefixes": [str(allowed)]}}}))
    registry = _configured_registry()

    def read(path: str) -> Any:
        return registry.run(ToolCall(id="c", name="read_file", arguments={"path": path}))

    ok = read(str(allowed / "notes.txt"))
    assert not ok.is_error and json.loads(ok.content)["text"] == "the notes"
    for path in (str(tmp_path / "secret.txt"), f"{allowed}/../secret.txt",
                 str(allowed / "link.txt"), "notes.txt"):
        result = read(path)
        assert result.is_error and "refusing to read" in result.content, path
        assert "the secret" not in result.content
