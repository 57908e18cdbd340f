"""API keys on moto: the store's layout, revocation, listing, the authorizer function and the
admin command, all on the table as template.yaml declares it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentkit.store.api_keys import ApiKeyNotFoundError, ApiKeyStore
from agentkit.tenancy import hash_key
from tests.conftest import TABLE
from tests.support.aws import FakeLambdaContext, load_event, load_handler


@pytest.fixture
def keys(aws: None) -> ApiKeyStore:
    return ApiKeyStore(TABLE)


def _items(keys: ApiKeyStore) -> list[dict[str, Any]]:
    return keys.client.scan(TableName=TABLE)["Items"]


def test_create_stores_only_the_hash_and_lookup_finds_the_tenant(keys: ApiKeyStore) -> None:
    created = keys.create("acme", description="ci")
    assert created.key.startswith("ops_") and created.record.prefix == created.key[:10]
    raw = json.dumps(_items(keys))
    assert created.key not in raw  # the key itself is stored nowhere
    pks = sorted(item["pk"]["S"] for item in _items(keys))
    assert pks == sorted([f"APIKEY#{hash_key(created.key)}", f"APIKEYID#{created.record.key_id}"])
    found = keys.lookup(created.key)
    assert found is not None and found.tenant_id == "acme" and not found.revoked
    assert found.key_id == created.record.key_id and found.description == "ci"
    assert keys.lookup(created.key + "x") is None
    assert keys.lookup("not-even-a-key") is None


def test_revoke_by_id_then_lookup_sees_it_revoked(keys: ApiKeyStore) -> None:
    created = keys.create("acme")
    other = keys.create("acme")
    revoked = keys.revoke(created.record.key_id)
    assert revoked.revoked and revoked.revoked_at
    again = keys.revoke(created.record.key_id)  # harmless, keeps the first time
    assert again.revoked_at == revoked.revoked_at
    assert keys.lookup(created.key).revoked  # type: ignore[union-attr]
    assert not keys.lookup(other.key).revoked  # type: ignore[union-attr]
    with pytest.raises(ApiKeyNotFoundError):
        keys.revoke("key_nope")


def test_list_keys_is_per_tenant_and_apart_from_the_tenants_tasks(keys: ApiKeyStore) -> None:
    first = keys.create("acme")
    second = keys.create("acme")
    keys.create("globex")
    listed = keys.list_keys("acme")
    assert [r.key_id for r in listed] == [first.record.key_id, second.record.key_id]
    assert keys.list_keys("nobody") == []
    # keys do not share the TENANT#<id> index partition that lists a tenant's tasks
    gsi = {item["gsi1pk"]["S"] for item in _items(keys) if "gsi1pk" in item}
    assert gsi == {"TENANT_KEYS#acme", "TENANT_KEYS#globex"}


def _authorizer_event(**headers: str) -> dict[str, Any]:
    event = load_event("api_key_authorizer_request.json")
    event["headers"] = headers
    event["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    return event


def test_authorizer_function_allow_deny_and_401(keys: ApiKeyStore) -> None:
    authorizer = load_handler("api_key_authorizer")
    created = keys.create("acme")

    allowed = authorizer.lambda_handler(
        _authorizer_event(Authorization=f"Bearer {created.key}"), FakeLambdaContext()
    )
    assert allowed["principalId"] == created.record.key_id
    assert allowed["context"] == {"tenant_id": "acme", "key_id": created.record.key_id}
    assert allowed["policyDocument"]["Statement"][0]["Effect"] == "Allow"

    keys.revoke(created.record.key_id)
    denied = authorizer.lambda_handler(
        _authorizer_event(Authorization=f"Bearer {created.key}"), FakeLambdaContext()
    )
    assert denied["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert "context" not in denied

    unknown = authorizer.lambda_handler(
        _authorizer_event(**{"x-api-key": "ops_" + "Z" * 43}), FakeLambdaContext()
    )
    assert unknown["policyDocument"]["Statement"][0]["Effect"] == "Deny"

    # API Gateway turns exactly this error message into its 401
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.lambda_handler(_authorizer_event(), FakeLambdaContext())


def test_authorizer_sample_event_is_a_request_authorizer_event() -> None:
    from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
        APIGatewayAuthorizerRequestEvent,
    )

    event = APIGatewayAuthorizerRequestEvent(load_event("api_key_authorizer_request.json"))
    assert event.get_type == "REQUEST"
    assert event.parsed_arn.api_id == event.request_context.api_id
    assert event.headers["Authorization"].startswith("Bearer ops_")


def test_admin_command_create_list_revoke(
    keys: ApiKeyStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from opspawn import admin

    monkeypatch.setattr(admin, "key_store", lambda **_: keys)
    assert admin.main(["keys", "create", "--tenant", "acme", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert keys.lookup(created["key"]).tenant_id == "acme"  # type: ignore[union-attr]

    assert admin.main(["keys", "list", "--tenant", "acme"]) == 0
    listing = capsys.readouterr().out
    assert created["key_id"] in listing and "active" in listing
    assert created["key"] not in listing  # only the display prefix

    assert admin.main(["keys", "revoke", created["key_id"]]) == 0
    assert "revoked" in capsys.readouterr().out
    assert keys.lookup(created["key"]).revoked  # type: ignore[union-attr]

    assert admin.main(["keys", "revoke", "key_nope"]) == 1
    assert "not found" in capsys.readouterr().err
    assert admin.main(["keys", "create", "--tenant", "bad tenant"]) == 1
