"""LocalStack start-up hooks (entry point group ``localstack.hooks.on_infra_start``).

``opspawn_fast_cfn_polling`` also installs the X-Ray trace propagation of tracing.py.

``opspawn_fast_cfn_polling``: LocalStack's CloudFormation executor re-polls an IN_PROGRESS
resource every 5 s (``ResourceProviderExecutor.deploy_loop(sleep_time=5)``), one resource at a
time, so each Lambda function costs ~5 s of sleeping (6 functions: ~30 s per deploy). Poll every
``OPSPAWN_CFN_POLL_SECONDS`` (default 0.2 s) instead. Private API of LocalStack 4.8.1: if it
changes, the hook logs a warning and leaves LocalStack as it is (deploys are just slower).

``opspawn_fast_esm_polling``: LocalStack's SQS event-source poller sleeps 1 s after every
batch (``LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC``) and backs off from 1 s after an
empty poll, whatever the configured maximum: each tool turn's message waited 0.3-1 s for
the RunTools function. Poll every ``OPSPAWN_ESM_POLL_SECONDS`` (default 0.1 s) instead, on
an idle queue too (one ReceiveMessage per mapping per interval). AWS's pollers long-poll
continuously; this brings the offline hop close to that. Same private-API caveat.

``opspawn_proactive_init``: start one execution environment per function version when it
becomes Active, as AWS may proactively initialize on-demand functions (see its docstring).
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from localstack.runtime import hooks

LOG = logging.getLogger(__name__)
DEFAULT_POLL_SECONDS = 0.2
DEFAULT_ESM_POLL_SECONDS = 0.1


@hooks.on_infra_start()
def opspawn_fast_cfn_polling() -> None:
    # X-Ray trace propagation (tracing.py) rides on this hook's entry point: a shared offline
    # install registers the entry points of whichever checkout installed it last.
    from opspawn_localstack import tracing

    tracing.install()
    seconds = float(os.environ.get("OPSPAWN_CFN_POLL_SECONDS") or DEFAULT_POLL_SECONDS)
    if seconds <= 0:
        return
    try:
        from localstack.services.cloudformation.resource_provider import (
            ResourceProviderExecutor,
        )

        original = ResourceProviderExecutor.deploy_loop
    except (ImportError, AttributeError) as exc:  # pragma: no cover - version drift
        LOG.warning("opspawn: cannot speed up CloudFormation polling: %s", exc)
        return
    if getattr(original, "_opspawn_patched", False):
        return

    @functools.wraps(original)
    def deploy_loop(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) < 5:  # (resource_provider, resource, raw_payload, max_timeout, sleep_time)
            kwargs["sleep_time"] = min(float(kwargs.get("sleep_time", 5)), seconds)
        return original(self, *args, **kwargs)

    deploy_loop._opspawn_patched = True  # type: ignore[attr-defined]
    ResourceProviderExecutor.deploy_loop = deploy_loop
    LOG.info("opspawn: CloudFormation resource polling every %.2f s", seconds)


@hooks.on_infra_start()
def opspawn_fast_esm_polling() -> None:
    seconds = float(os.environ.get("OPSPAWN_ESM_POLL_SECONDS") or DEFAULT_ESM_POLL_SECONDS)
    if seconds <= 0:
        return
    try:
        from localstack.services.lambda_.event_source_mapping import esm_worker

        backoff = esm_worker.ExponentialBackoff
        names = ("LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC",
                 "LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_EMPTY_POLL_SEC")
        if not all(hasattr(esm_worker, name) for name in names):
            raise AttributeError(f"esm_worker lacks {names}")
    except (ImportError, AttributeError) as exc:  # pragma: no cover - version drift
        LOG.warning("opspawn: cannot speed up event-source polling: %s", exc)
        return
    if getattr(backoff, "_opspawn_patched", False):
        return
    for name in names:  # read by the poller loop at run time
        setattr(esm_worker, name, min(float(getattr(esm_worker, name)), seconds))

    def capped(*args: Any, **kwargs: Any) -> Any:
        # The empty-poll backoff starts at 1 s even when its maximum is lower.
        maximum = kwargs.get("max_interval")
        if maximum is not None and kwargs.get("initial_interval", 0) > maximum:
            kwargs["initial_interval"] = maximum
        return backoff(*args, **kwargs)

    capped._opspawn_patched = True  # type: ignore[attr-defined]
    esm_worker.ExponentialBackoff = capped
    LOG.info("opspawn: SQS event-source polling every %.2f s", seconds)


@hooks.on_infra_start()
def opspawn_bind_loopback() -> None:
    """Listen on the GATEWAY_LISTEN host, not on every interface.

    LocalStack 4.8.1 ignores the host of an IPv4 GATEWAY_LISTEN entry (``TCP4ServerEndpoint``
    without ``interface``), and DynamoDB Local's Jetty has no bind option. Runs before the
    gateway is created. DynamoDB Local is started through ``OpspawnDynamoDBLocal`` (built by
    ``python -m opspawn.offline install`` next to DynamoDBLocal.jar), which binds 127.0.0.1.
    """
    try:
        from localstack import config
        from localstack.runtime.server import twisted as runtime_twisted
        from twisted.internet import endpoints
    except ImportError as exc:  # pragma: no cover - version drift
        LOG.warning("opspawn: cannot bind the gateway to loopback: %s", exc)
        return

    hosts = {hp.port: hp.host for hp in config.GATEWAY_LISTEN}

    class _LoopbackEndpoints:
        TCP6ServerEndpoint = endpoints.TCP6ServerEndpoint

        @staticmethod
        def TCP4ServerEndpoint(reactor: Any, port: int, *args: Any, **kwargs: Any) -> Any:
            host = hosts.get(port, "")
            if not args and "interface" not in kwargs and host not in ("", "0.0.0.0"):
                kwargs["interface"] = host
            return endpoints.TCP4ServerEndpoint(reactor, port, *args, **kwargs)

    if getattr(runtime_twisted, "endpoints", None) is endpoints:
        runtime_twisted.endpoints = _LoopbackEndpoints

    try:
        from localstack.services.dynamodb import server as ddb_server
    except ImportError as exc:  # pragma: no cover - version drift
        LOG.warning("opspawn: cannot bind DynamoDB Local to loopback: %s", exc)
        return
    original = ddb_server.DynamodbServer._create_shell_command
    if getattr(original, "_opspawn_patched", False):
        return

    @functools.wraps(original)
    def _create_shell_command(self: Any) -> list[str]:
        cmd: list[str] = original(self)
        jar = str(self.jar_path)
        launcher = os.path.join(os.path.dirname(jar), "opspawn-ddb-launcher.jar")
        if "-jar" not in cmd or not os.path.exists(launcher):
            LOG.warning("opspawn: %s missing: DynamoDB Local listens on all interfaces", launcher)
            return cmd
        at = cmd.index("-jar")
        return [
            *cmd[:at],
            "-Dopspawn.bind=127.0.0.1",
            "-cp",
            f"{launcher}{os.pathsep}{jar}",
            "OpspawnDynamoDBLocal",
            *cmd[at + 2 :],
        ]

    _create_shell_command._opspawn_patched = True  # type: ignore[attr-defined]
    ddb_server.DynamodbServer._create_shell_command = _create_shell_command


@hooks.on_infra_start()
def opspawn_proactive_init() -> None:
    """Start one execution environment of each function version as soon as it is Active.

    AWS documents that Lambda "may proactively initialize" execution environments of
    on-demand functions ahead of invocations, so a function's init phase often runs before
    its first request; LocalStack starts an environment only when a request arrives. Here
    the first invocation of each version reuses an environment whose init (the handler's
    imports) ran, or is running, in the background. Nothing about what a function sees
    changes: the environment is LocalStack's own on-demand one, released READY into its
    pool and stopped after the usual keep-alive. ``OPSPAWN_PROACTIVE_INIT=0`` turns it off
    (every first invocation is then a cold start). Private API of LocalStack 4.8.1.
    """
    if (os.environ.get("OPSPAWN_PROACTIVE_INIT") or "1").strip() in ("0", "false", "no"):
        return
    try:
        from localstack.services.lambda_.invocation import version_manager
        from localstack.services.lambda_.invocation.lambda_models import State
    except ImportError as exc:  # pragma: no cover - version drift
        LOG.warning("opspawn: no proactive Lambda init: %s", exc)
        return
    manager_class = version_manager.LambdaVersionManager
    original = manager_class.start
    if getattr(original, "_opspawn_patched", False):
        return

    def _initialize(manager: Any) -> None:
        try:
            with manager.assignment_service.get_environment(
                manager.id, manager.function_version, "on-demand"
            ):
                pass  # started (its worker is importing the handler) and released READY
        except Exception as exc:  # the first invocation will start one itself
            LOG.debug("opspawn: proactive init of %s failed: %s", manager.function_arn, exc)

    @functools.wraps(original)
    def start(self: Any) -> Any:
        state = original(self)
        if getattr(state, "state", None) == State.Active:
            self.assignment_service.provisioning_pool.submit(_initialize, self)
        return state

    start._opspawn_patched = True  # type: ignore[attr-defined]
    manager_class.start = start
    LOG.info("opspawn: proactive init of Lambda execution environments")
