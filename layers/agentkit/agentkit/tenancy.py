"""API keys and tenants as the whole platform knows them: what a key looks like (it is
shown once and only its SHA-256 is kept), the record kept for it, and what a tenant id
may be. The authorizer (agentkit.api.api_keys), the store (agentkit.store.api_keys) and
the admin CLI all build on this one definition."""

from __future__ import annotations

import hashlib
import re
import secrets

from pydantic import BaseModel, Field

from agentkit.models.domain import utc_now

KEY_PREFIX = "ops_"
#: shown by `keys list`: "ops_" + the first 6 characters of the secret part
DISPLAY_PREFIX_CHARS = len(KEY_PREFIX) + 6
TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_TENANT_RE = re.compile(TENANT_ID_PATTERN)
_KEY_RE = re.compile(r"^ops_[A-Za-z0-9_\-]{20,128}$")


class ApiKeyRecord(BaseModel):
    """What the table keeps about a key (never the key itself)."""

    key_id: str
    tenant_id: str = Field(pattern=TENANT_ID_PATTERN)
    prefix: str
    created_at: str = Field(default_factory=utc_now)
    revoked: bool = False
    revoked_at: str | None = None
    description: str | None = None


class CreatedApiKey(BaseModel):
    """A new key: `key` is the secret, shown once and stored nowhere."""

    key: str
    record: ApiKeyRecord


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(key: str) -> bool:
    """Shaped like a key this deployment issues (anything else is not looked up)."""
    return bool(_KEY_RE.match(key))


def check_tenant_id(tenant_id: str) -> str:
    if not _TENANT_RE.match(tenant_id):
        raise ValueError(
            f"bad tenant id {tenant_id!r}: 1-64 of letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )
    return tenant_id
