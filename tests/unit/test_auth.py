"""The authorizer's logic: key format and hash, which header counts, allow/deny/401, policies."""

from __future__ import annotations

import hashlib
import re

import pytest

from agentkit.api.api_keys import MissingCredentials, authorize, presented_key
from agentkit.tenancy import ApiKeyRecord, check_tenant_id, generate_key, hash_key

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/v1/GET/tasks/tsk_01J"
LIVE = "ops_" + "L" * 43
REVOKED = "ops_" + "R" * 43


class FakeKeys:
    """ApiKeyStore.lookup over a dict keyed by hash, as the table is."""

    def __init__(self) -> None:
        self.by_hash = {
            hash_key(LIVE): ApiKeyRecord(key_id="key_live", tenant_id="acme", prefix=LIVE[:10]),
            hash_key(REVOKED): ApiKeyRecord(
                key_id="key_old", tenant_id="acme", prefix=REVOKED[:10], revoked=True
            ),
        }
        self.looked_up: list[str] = []

    def lookup(self, key: str) -> ApiKeyRecord | None:
        self.looked_up.append(key)
        return self.by_hash.get(hash_key(key))


def test_keys_are_long_random_and_only_their_sha256_is_the_table_key() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert re.fullmatch(r"ops_[A-Za-z0-9_\-]{43}", key)
    key = next(iter(keys))
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert key not in hash_key(key)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Authorization": f"Bearer {LIVE}"}, LIVE),
        ({"authorization": f"bearer   {LIVE} "}, LIVE),
        ({"x-api-key": LIVE}, LIVE),
        ({"X-Api-Key": LIVE}, LIVE),
        ({"Authorization": f"Bearer {LIVE}", "x-api-key": REVOKED}, LIVE),  # Authorization wins
        ({"Authorization": f"Basic {LIVE}"}, None),
        ({"Authorization": LIVE}, None),
        ({"Authorization": "Bearer "}, None),
        ({"Authorization": ""}, None),
        ({}, None),
        (None, None),
    ],
)
def test_presented_key(headers: dict[str, str] | None, expected: str | None) -> None:
    assert presented_key(headers) == expected


def test_a_live_key_allows_every_route_of_the_api_with_its_tenant_in_the_context() -> None:
    decision = authorize({"Authorization": f"Bearer {LIVE}"}, METHOD_ARN, keys=FakeKeys())
    assert decision.allowed and decision.tenant_id == "acme" and decision.key_id == "key_live"
    assert decision.response == {
        "principalId": "key_live",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    # the whole API/stage: the answer is cached per key and reused on any route
                    "Resource": ["arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/v1/*/*"],
                }
            ],
        },
        "context": {"tenant_id": "acme", "key_id": "key_live"},
    }


@pytest.mark.parametrize(
    ("key", "reason"), [(REVOKED, "revoked key"), ("ops_" + "U" * 43, "unknown key")]
)
def test_an_unknown_or_revoked_key_gets_a_deny_policy_and_no_tenant(key: str, reason: str) -> None:
    decision = authorize({"x-api-key": key}, METHOD_ARN, keys=FakeKeys())
    assert not decision.allowed and decision.reason == reason
    [statement] = decision.response["policyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "execute-api:Invoke"
    assert statement["Resource"] == ["arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/v1/*/*"]
    assert "context" not in decision.response  # no tenant for a refused key


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic dXNlcjpwdw=="}])
def test_no_key_is_missing_credentials_without_a_lookup(headers: dict[str, str]) -> None:
    keys = FakeKeys()
    with pytest.raises(MissingCredentials):
        authorize(headers, METHOD_ARN, keys=keys)
    assert keys.looked_up == []


def test_decision_never_carries_the_key() -> None:
    decision = authorize({"Authorization": f"Bearer {LIVE}"}, METHOD_ARN, keys=FakeKeys())
    assert LIVE not in decision.model_dump_json()
    assert hash_key(LIVE) not in decision.model_dump_json()


@pytest.mark.parametrize("tenant", ["acme", "t1", "Acme_Corp.eu-1", "a" * 64])
def test_tenant_ids_accepted(tenant: str) -> None:
    assert check_tenant_id(tenant) == tenant


@pytest.mark.parametrize("tenant", ["", "-acme", "a b", "acme#1", "a" * 65, "ten/ant"])
def test_tenant_ids_rejected(tenant: str) -> None:
    with pytest.raises(ValueError, match="bad tenant id"):
        check_tenant_id(tenant)
