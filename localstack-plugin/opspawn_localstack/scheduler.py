"""Fire EventBridge Scheduler schedules on the offline stack (``localstack.hooks.on_infra_start``).

LocalStack 4.8.1 stores schedules (moto's ``EventBridgeSchedulerBackend``) but never invokes
their targets. ``opspawn_scheduler`` starts a daemon thread that every
``OPSPAWN_SCHEDULER_TICK`` seconds (default 1; 0 turns it off) reads that store, every account
and region, and for each ENABLED schedule whose next fire time has come:

* computes fire times with ``agentkit/schedule_expressions.py`` (the API's own parser, loaded by
  its file path: this runs in LocalStack's venv, where agentkit is not importable), in the
  schedule's ``ScheduleExpressionTimezone``, within ``StartDate``/``EndDate``; a rate fires at
  its start (creation or StartDate) and every period after, as Scheduler does;
* checks the target's ``RoleArn`` as Scheduler would meet it: the role exists, trusts
  ``scheduler.amazonaws.com``, and its inline or attached policies allow the action on the
  target (``lambda:InvokeFunction``, ``sqs:SendMessage``, ``states:StartExecution``; an
  explicit Deny wins; Conditions are not evaluated). Otherwise nothing is invoked and a warning
  is logged (Scheduler would count a failed invocation);
* assumes the role through LocalStack STS and calls the target with those credentials:
  Lambda ``Invoke`` asynchronously (``InvocationType=Event``) with ``Input`` verbatim, SQS
  ``SendMessage`` (``SqsParameters.MessageGroupId``), Step Functions ``StartExecution``;
* deletes the schedule once it has no fire time left when ``ActionAfterCompletion`` is DELETE.

Not modelled: flexible time windows (fired at the window's start), retries, dead-letter queues.
A fire time is missed only if the thread is late by more than one period; each is fired once.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import logging
import os
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from localstack.runtime import hooks

LOG = logging.getLogger(__name__)
DEFAULT_TICK_SECONDS = 1.0
SERVICE_PRINCIPAL = "scheduler.amazonaws.com"
#: the file the API validates with; OPSPAWN_SCHEDULE_EXPRESSIONS overrides (a non-editable install)
EXPRESSIONS_FILE = (
    Path(__file__).resolve().parents[2] / "layers/agentkit/agentkit/schedule_expressions.py"
)
#: the IAM action each supported target service needs from the schedule's role
ACTIONS = {
    "lambda": "lambda:InvokeFunction",
    "sqs": "sqs:SendMessage",
    "states": "states:StartExecution",
}

_runner: SchedulerThread | None = None


def load_expressions(path: Path | None = None) -> ModuleType:
    """agentkit's schedule_expressions module, loaded from its file (stdlib only)."""
    path = path or Path(os.environ.get("OPSPAWN_SCHEDULE_EXPRESSIONS") or EXPRESSIONS_FILE)
    name = "opspawn_schedule_expressions"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


@hooks.on_infra_start()
def opspawn_scheduler() -> None:
    global _runner
    tick = float(os.environ.get("OPSPAWN_SCHEDULER_TICK") or DEFAULT_TICK_SECONDS)
    if tick <= 0 or _runner is not None:
        return
    try:
        from moto.scheduler.models import scheduler_backends  # noqa: F401 - the store we read

        expressions = load_expressions()
    except Exception as exc:  # pragma: no cover - version drift or a moved file
        LOG.warning("opspawn: schedules will not fire offline: %s", exc)
        return
    _runner = SchedulerThread(expressions, tick)
    _runner.start()
    LOG.info("opspawn: firing EventBridge Scheduler schedules every %.2f s", tick)


@hooks.on_infra_shutdown()
def opspawn_scheduler_stop() -> None:
    global _runner
    if _runner is not None:
        _runner.stop()
        _runner = None


@dataclass
class _Seen:
    """What the thread remembers of one schedule: which one it is, when it last fired."""

    created: float
    last: datetime
    unreadable: bool = False


class SchedulerThread:
    def __init__(self, expressions: ModuleType, tick: float) -> None:
        self._exp = expressions
        self._tick = tick
        self._stopping = threading.Event()
        self._seen: dict[str, _Seen] = {}
        self._thread = threading.Thread(target=self._run, name="opspawn-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.wait(self._tick):
            try:
                self.tick(datetime.now(UTC))
            except Exception:  # never let one bad pass end the thread
                LOG.exception("opspawn scheduler: a pass failed")

    def tick(self, now: datetime) -> None:
        live: set[str] = set()
        for account_id, region, schedule in _stored_schedules():
            live.add(schedule.arn)
            self._consider(account_id, region, schedule, now)
        for arn in set(self._seen) - live:
            del self._seen[arn]

    def _consider(self, account_id: str, region: str, schedule: Any, now: datetime) -> None:
        created = float(schedule.creation_date)
        seen = self._seen.get(schedule.arn)
        if seen is None or seen.created != created:  # new (or deleted and made again)
            seen = _Seen(created, datetime.fromtimestamp(created, UTC) - timedelta(seconds=1))
            self._seen[schedule.arn] = seen
        if schedule.state != "ENABLED":
            seen.last = max(seen.last, now)  # nothing missed while disabled is made up later
            return
        try:
            expression = self._exp.parse(schedule.schedule_expression)
            timezone = schedule.schedule_expression_timezone or "UTC"
            start, end = _instant(schedule.start_date), _instant(schedule.end_date)
            if isinstance(expression, self._exp.Rate) and start is None:
                start = datetime.fromtimestamp(created, UTC)  # a rate starts when it is made
            fire = self._exp.next_fire(
                expression, seen.last, timezone=timezone, start=start, end=end
            )
        except (ValueError, TypeError) as exc:
            if not seen.unreadable:
                LOG.warning("opspawn scheduler: %s is never fired: %s", schedule.arn, exc)
                seen.unreadable = True
            return
        if fire is not None and fire <= now:
            seen.last = fire
            self._fire(account_id, region, schedule, fire)
            fire = self._exp.next_fire(
                expression, seen.last, timezone=timezone, start=start, end=end
            )
        if fire is None and schedule.action_after_completion == "DELETE":
            _delete(account_id, region, schedule)

    def _fire(self, account_id: str, region: str, schedule: Any, at: datetime) -> None:
        target: dict[str, Any] = schedule.target or {}
        arn, role_arn = str(target.get("Arn", "")), str(target.get("RoleArn", ""))
        service = arn.split(":")[2] if arn.count(":") >= 5 else ""
        action = ACTIONS.get(service)
        if action is None:
            LOG.warning("opspawn scheduler: %s: target %s is not supported offline",
                        schedule.arn, arn)
            return
        problem = role_problem(role_arn, action, arn)
        if problem:
            LOG.warning("opspawn scheduler: %s (due %s) did not invoke %s: %s",
                        schedule.arn, at.isoformat(), arn, problem)
            return
        try:
            _invoke(schedule, service, arn, role_arn, target)
        except Exception as exc:
            LOG.warning("opspawn scheduler: %s (due %s) did not invoke %s: %s failed: %s",
                        schedule.arn, at.isoformat(), arn, action, exc)
            return
        LOG.info("opspawn scheduler: %s invoked %s (due %s)", schedule.arn, arn, at.isoformat())


def _stored_schedules() -> list[tuple[str, str, Any]]:
    """(account, region, schedule) for every stored schedule, copied out of moto's dicts."""
    from moto.scheduler.models import scheduler_backends

    found: list[tuple[str, str, Any]] = []
    # dict's own items(): BackendDict/AccountSpecificBackend would create entries on lookup
    for account_id, regions in list(dict.items(scheduler_backends)):
        for region, backend in list(dict.items(regions)):
            for group in list(backend.schedule_groups.values()):
                found += [(account_id, region, s) for s in list(group.schedules.values())]
    return found


def _instant(value: Any) -> datetime | None:
    """StartDate/EndDate as stored (epoch seconds from the JSON API, or ISO text), in UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError):
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _arn_parts(arn: str) -> tuple[str, str, str]:
    """(region, account, resource) of an ARN."""
    parts = arn.split(":", 5)
    return parts[3], parts[4], parts[5]


def _clients(account_id: str, region: str) -> Any:
    from localstack.aws.connect import connect_to

    return connect_to(aws_access_key_id=account_id, region_name=region or "us-east-1")


def role_problem(role_arn: str, action: str, resource: str) -> str | None:
    """Why Scheduler could not call `action` on `resource` with this role; None if it could."""
    if ":role/" not in role_arn:
        return f"RoleArn '{role_arn}' is not a role ARN"
    _, account_id, _ = _arn_parts(role_arn)
    role_name = role_arn.split(":role/", 1)[1].rsplit("/", 1)[-1]
    iam = _clients(account_id, "us-east-1").iam
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        return f"role {role_arn} does not exist"
    if not any(
        _matches(st.get("Action"), "sts:AssumeRole", ignore_case=True) and _trusts_scheduler(st)
        for st in _statements(role.get("AssumeRolePolicyDocument"))
        if st.get("Effect") == "Allow"
    ):
        return f"role {role_arn} does not trust {SERVICE_PRINCIPAL}"
    statements: list[dict[str, Any]] = []
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        statements += _statements(document)
    for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(
            PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
        )["PolicyVersion"]
        statements += _statements(version["Document"])
    applies = [
        st for st in statements
        if _matches(st.get("Action"), action, ignore_case=True)
        and _matches(st.get("Resource"), resource)
    ]
    if any(st.get("Effect") == "Deny" for st in applies):
        return f"role {role_arn} denies {action} on {resource}"
    if not any(st.get("Effect") == "Allow" for st in applies):
        return f"role {role_arn} is not allowed {action} on {resource}"
    return None


def _statements(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    statements = (document or {}).get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _matches(patterns: Any, value: str, *, ignore_case: bool = False) -> bool:
    if isinstance(patterns, str):
        patterns = [patterns]
    if ignore_case:
        return any(fnmatch.fnmatchcase(value.lower(), str(p).lower()) for p in patterns or [])
    return any(fnmatch.fnmatchcase(value, str(p)) for p in patterns or [])


def _trusts_scheduler(statement: dict[str, Any]) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    return _matches(principal.get("Service"), SERVICE_PRINCIPAL) or principal.get("AWS") == "*"


def _invoke(schedule: Any, service: str, arn: str, role_arn: str, target: dict[str, Any]) -> None:
    from localstack.aws.connect import connect_to

    region, account_id, resource = _arn_parts(arn)
    payload = target.get("Input")
    payload = "{}" if payload is None else str(payload)
    clients = connect_to.with_assumed_role(
        role_arn=role_arn,
        service_principal="scheduler",  # LocalStack 4.8.1 has no ServicePrincipal for it
        session_name=f"opspawn-scheduler-{schedule.name}"[:64],
        region_name=region,
    )
    metadata = {"service_principal": "scheduler", "source_arn": schedule.arn}
    if service == "lambda":
        clients.lambda_.request_metadata(**metadata).invoke(
            FunctionName=arn, InvocationType="Event", Payload=payload.encode()
        )
    elif service == "sqs":
        sqs = clients.sqs
        url = sqs.get_queue_url(QueueName=resource, QueueOwnerAWSAccountId=account_id)["QueueUrl"]
        kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": payload}
        group = (target.get("SqsParameters") or {}).get("MessageGroupId")
        if group:
            kwargs["MessageGroupId"] = group
        sqs.request_metadata(**metadata).send_message(**kwargs)
    else:
        clients.stepfunctions.request_metadata(**metadata).start_execution(
            stateMachineArn=arn, input=payload
        )


def _delete(account_id: str, region: str, schedule: Any) -> None:
    scheduler = _clients(account_id, region).scheduler
    try:
        scheduler.delete_schedule(Name=schedule.name, GroupName=schedule.group_name)
    except scheduler.exceptions.ResourceNotFoundException:
        return
    except Exception as exc:  # tried again on the next pass
        LOG.warning("opspawn scheduler: deleting completed %s failed: %s", schedule.arn, exc)
        return
    LOG.info("opspawn scheduler: %s completed and was deleted (ActionAfterCompletion)",
             schedule.arn)
