"""Provider keys from the environment, Secrets Manager or SSM (moto), never echoed."""

from __future__ import annotations

import json

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from agentkit.config import SecretSources
from agentkit.secrets import SecretNotFoundError, provider_key

KEY = "sk-test-" + "s3cr3t" * 6


@pytest.fixture(autouse=True)
def _fresh_cache(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    parameters.clear_caches()
    for name in ("PROVIDER_KEYS_SECRET_ARN", "OPENAI_API_KEY_PARAMETER"):
        monkeypatch.delenv(name, raising=False)


def test_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert provider_key("OPENAI_API_KEY") == KEY


def test_one_json_secret_holds_every_provider_key(monkeypatch: pytest.MonkeyPatch) -> None:
    arn = boto3.client("secretsmanager").create_secret(
        Name="opspawn/provider-keys",
        SecretString=json.dumps({"OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": "sk-ant-x"}),
    )["ARN"]
    monkeypatch.setenv("PROVIDER_KEYS_SECRET_ARN", arn)
    sources = SecretSources.from_env()  # read with the function's settings, at cold start
    assert sources.secret_arn == arn
    assert provider_key("OPENAI_API_KEY", sources) == KEY
    assert provider_key("ANTHROPIC_API_KEY", sources) == "sk-ant-x"
    with pytest.raises(SecretNotFoundError) as caught:
        provider_key("GOOGLE_API_KEY", sources)
    assert "field GOOGLE_API_KEY of secret" in str(caught.value)
    assert KEY not in str(caught.value)


def test_ssm_secure_string(monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("ssm").put_parameter(Name="/opspawn/openai", Value=KEY, Type="SecureString")
    monkeypatch.setenv("OPENAI_API_KEY_PARAMETER", "/opspawn/openai")
    assert provider_key("OPENAI_API_KEY") == KEY


def test_nothing_configured_says_where_it_looked() -> None:
    with pytest.raises(SecretNotFoundError, match="environment variable OPENAI_API_KEY"):
        provider_key("OPENAI_API_KEY")
