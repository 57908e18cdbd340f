"""``python -m opspawn.admin keys create|revoke|list``: a tenant's API keys.

    python -m opspawn.admin keys create --tenant acme          # prints the key, once
    python -m opspawn.admin keys list --tenant acme
    python -m opspawn.admin keys revoke key_0123456789abcdef

By default against the offline stack (table from ``.offline/outputs.json``, endpoint of the
running LocalStack or ``--endpoint``); ``--stack NAME`` targets a deployed stack instead (its
``TableName`` output read through CloudFormation, with your AWS credentials and region).
Only the key's SHA-256 is stored (agentkit.api.api_keys). A revoked key keeps working until
the API's authorizer cache expires (``AuthorizerCacheTtlSeconds``, 60 s by default).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agentkit.store.api_keys import ApiKeyNotFoundError, ApiKeyStore
from agentkit.tenancy import ApiKeyRecord


class AdminError(RuntimeError):
    """Where the keys live could not be worked out; the message says what to pass."""


def _stack_table(stack: str, region: str | None) -> tuple[str, Any]:
    import boto3

    session = boto3.session.Session(region_name=region)
    try:
        described = session.client("cloudformation").describe_stacks(StackName=stack)
    except Exception as exc:
        raise AdminError(f"cannot read stack {stack!r}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}
    if "TableName" not in outputs:
        raise AdminError(f"stack {stack!r} has no TableName output")
    return outputs["TableName"], session.client("dynamodb")


def _offline_table(endpoint: str | None, table: str | None) -> tuple[str, Any]:
    from opspawn.offline.paths import endpoint_url
    from opspawn.offline.server import running_port
    from opspawn.offline.stack import boto3_client, load_outputs

    saved = load_outputs()
    table = table or (saved.outputs.get("TableName") if saved else None)
    if not table:
        raise AdminError(
            "no offline deploy found (.offline/outputs.json): run `python -m opspawn.offline up` "
            "and `deploy`, or pass --table / --stack"
        )
    port = running_port()
    url = endpoint or (endpoint_url(port) if port else saved.endpoint_url if saved else None)
    if not url:
        raise AdminError("LocalStack is not running: pass --endpoint or start it")
    return table, boto3_client("dynamodb", endpoint=url)


def key_store(
    *,
    stack: str | None = None,
    endpoint: str | None = None,
    table: str | None = None,
    region: str | None = None,
) -> ApiKeyStore:
    """The key store of a deployed stack (``stack``) or of the offline stack (default)."""
    if stack:
        name, client = _stack_table(stack, region)
        return ApiKeyStore(table or name, client)
    name, client = _offline_table(endpoint, table)
    return ApiKeyStore(name, client)


def _describe(record: ApiKeyRecord) -> str:
    state = f"revoked {record.revoked_at}" if record.revoked else "active"
    note = f"  {record.description}" if record.description else ""
    return (
        f"{record.key_id}  {record.prefix}…  {record.tenant_id}  {record.created_at}  {state}{note}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opspawn.admin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--stack", help="a deployed stack's name (AWS credentials from the env)")
    where.add_argument("--region", help="AWS region of --stack (default: your AWS config)")
    where.add_argument("--endpoint", help="offline: LocalStack URL (default: the running one)")
    where.add_argument("--table", help="the table name, if not from the stack's outputs")
    where.add_argument("--json", action="store_true", help="machine-readable output")
    groups = parser.add_subparsers(dest="group", required=True)
    keys = groups.add_parser("keys", help="API keys").add_subparsers(dest="command", required=True)
    create = keys.add_parser("create", parents=[where], help="create a key (printed once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--description", help="a note shown by `keys list`")
    revoke = keys.add_parser("revoke", parents=[where], help="revoke a key by its id")
    revoke.add_argument("key_id")
    listing = keys.add_parser("list", parents=[where], help="a tenant's keys")
    listing.add_argument("--tenant", required=True)
    args = parser.parse_args(argv)

    try:
        store = key_store(
            stack=args.stack, endpoint=args.endpoint, table=args.table, region=args.region
        )
        if args.command == "create":
            created = store.create(args.tenant, description=args.description)
            if args.json:
                print(json.dumps({"key": created.key, **created.record.model_dump()}))
            else:
                print(created.key)
                print(
                    f"key id {created.record.key_id} for tenant {created.record.tenant_id}: "
                    "shown once, only its hash is stored",
                    file=sys.stderr,
                )
        elif args.command == "revoke":
            record = store.revoke(args.key_id)
            if args.json:
                print(record.model_dump_json())
            else:
                print(
                    f"revoked {record.key_id} (tenant {record.tenant_id}); cached answers of "
                    "the API's authorizer may accept it for up to its TTL"
                )
        else:
            records = store.list_keys(args.tenant)
            if args.json:
                print(json.dumps([r.model_dump() for r in records]))
            else:
                print("\n".join(_describe(r) for r in records) or f"no keys for {args.tenant}")
    except (AdminError, ApiKeyNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
