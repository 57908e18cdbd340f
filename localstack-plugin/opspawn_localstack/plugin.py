"""plux plugins LocalStack discovers through this distribution's entry points."""

from __future__ import annotations

from typing import Any

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin


class SubprocessRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    """``LAMBDA_RUNTIME_EXECUTOR=opspawn-subprocess``: Lambda code in local worker processes."""

    name = "opspawn-subprocess"

    def load(self, *args: Any, **kwargs: Any) -> Any:
        from opspawn_localstack.executor import SubprocessRuntimeExecutor

        return SubprocessRuntimeExecutor
