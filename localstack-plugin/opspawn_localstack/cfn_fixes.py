"""CloudFormation stack updates that work on LocalStack 4.8.1 (hook ``on_infra_start``).

Redeploying the stack with a changed REST API (``AuthorizerCacheTtlSeconds``, ``StageName``...)
failed in LocalStack's CloudFormation engine (v2, ``engine/v2``) and destroyed the API stage:

1. ``ChangeSetModel._resolve_intrinsic_function_ref`` gives a ``Ref`` the change type of the
   resource it names (its own TODO: "this should check the replacement flag"). A ``Ref`` to a
   resource updated in place (the RestApi whose Body changed) keeps its value on AWS, but here
   it was MODIFIED, so ``AWS::ApiGateway::Stage.RestApiId`` (create-only) looked changed, the
   stage was "replaced" with a CreateStage of the same name: "Stage already exists".
   Fix: a ``Ref`` to a resource modified without replacement is UNCHANGED.
2. ``ApiGatewayStageProvider.update`` and ``ApiGatewayRestApiProvider.update`` raise
   NotImplementedError, which the engine treats as success without doing anything: a new
   API definition (e.g. the authorizer's TTL) or the new deployment never reached the API.
   Fix: RestApi.update re-imports the Body (PutRestApi), Stage.update sends UpdateStage patch
   operations (deploymentId, description, variables, tracing, cache cluster). And deleting
   the replaced ``AWS::ApiGateway::Deployment`` deleted every stage of the API (GetStages
   ignores its deploymentId filter): now only the stages still on that deployment.
3. A failed update "rolled back" by running every deferred deletion (resources the old
   template had, the replaced ones) and the stack then reported UPDATE_COMPLETE with a stack
   model that lost the resources after the failure point. Fix: a failed update reverts the
   in-place modifications it made (provider update with the old properties), deletes the
   resources it created, keeps the old ones, leaves the stack's template/resources/outputs as
   before and ends UPDATE_ROLLBACK_COMPLETE (the failing resource's event keeps its reason).

Private API of LocalStack 4.8.1: each fix checks what it patches; if LocalStack changed, it
logs a warning and leaves LocalStack as it is.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from localstack.runtime import hooks

LOG = logging.getLogger(__name__)
_PATCHED = "_opspawn_patched"


@hooks.on_infra_start()
def opspawn_cfn_update_fixes() -> None:
    for fix in (
        _fix_ref_change_type,
        _fix_stage_update,
        _fix_deployment_delete,
        _fix_rest_api_update,
        _fix_update_rollback,
    ):
        try:
            fix()
        except (ImportError, AttributeError, TypeError) as exc:  # pragma: no cover - drift
            LOG.warning("opspawn: CloudFormation fix %s not applied: %s", fix.__name__, exc)


def _mark(fn: Callable[..., Any]) -> Callable[..., Any]:
    setattr(fn, _PATCHED, True)
    return fn


def _patched(fn: Any) -> bool:
    return bool(getattr(fn, _PATCHED, False))


# ---- 1. Ref to a resource updated in place ------------------------------------------------------
def _fix_ref_change_type() -> None:
    from localstack.services.cloudformation.engine.v2.change_set_model import (
        ChangeSetModel,
        ChangeType,
        NodeCondition,
        NodeParameter,
        NodeResource,
        TerminalValue,
    )

    original = ChangeSetModel._resolve_intrinsic_function_ref
    for name in (
        "_retrieve_condition_if_exists",
        "_retrieve_parameter_if_exists",
        "_retrieve_or_visit_resource",
    ):
        getattr(ChangeSetModel, name)
    if _patched(original):
        return

    @functools.wraps(original)
    def _resolve_intrinsic_function_ref(self: Any, arguments: Any) -> Any:
        change_type = original(self, arguments)
        if (
            change_type != ChangeType.MODIFIED
            or not isinstance(arguments, TerminalValue)
            or arguments.change_type != ChangeType.UNCHANGED
        ):
            return change_type
        logical_id = arguments.value
        if not isinstance(logical_id, str) or logical_id.startswith("AWS::"):
            return change_type
        if isinstance(self._retrieve_condition_if_exists(condition_name=logical_id), NodeCondition):
            return change_type
        if isinstance(self._retrieve_parameter_if_exists(parameter_name=logical_id), NodeParameter):
            return change_type
        node = self._retrieve_or_visit_resource(resource_name=logical_id)
        if (
            isinstance(node, NodeResource)
            and not node.requires_replacement
            and node.type_.change_type == ChangeType.UNCHANGED
        ):
            # updated in place: same physical id, so the same Ref value (as on AWS)
            return ChangeType.UNCHANGED
        return change_type

    ChangeSetModel._resolve_intrinsic_function_ref = _mark(_resolve_intrinsic_function_ref)
    LOG.info("opspawn: CloudFormation Ref of a resource updated in place stays unchanged")


# ---- 2. update handlers of AWS::ApiGateway::Stage and ::RestApi ---------------------------------
def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def stage_patch_operations(
    previous: dict[str, Any], desired: dict[str, Any]
) -> list[dict[str, str]]:
    """UpdateStage patch operations taking a stage from ``previous`` to ``desired`` (CFN
    properties). MethodSettings, Tags, AccessLogSetting and CanarySetting are left alone, as
    LocalStack's create ignores them too."""
    ops: list[dict[str, str]] = []
    scalars = {
        "DeploymentId": "/deploymentId",
        "Description": "/description",
        "CacheClusterEnabled": "/cacheClusterEnabled",
        "CacheClusterSize": "/cacheClusterSize",
        "ClientCertificateId": "/clientCertificateId",
        "TracingEnabled": "/tracingEnabled",
    }
    for prop, path in scalars.items():
        before, after = previous.get(prop), desired.get(prop)
        if before == after or (after is None and prop not in ("Description", "TracingEnabled")):
            continue
        if after is None:
            after = "" if prop == "Description" else False
        ops.append({"op": "replace", "path": path, "value": _as_text(after)})
    old_vars: dict[str, Any] = previous.get("Variables") or {}
    new_vars: dict[str, Any] = desired.get("Variables") or {}
    for key in sorted(new_vars):
        if old_vars.get(key) != new_vars[key]:
            ops.append(
                {"op": "replace", "path": f"/variables/{key}", "value": _as_text(new_vars[key])}
            )
    for key in sorted(set(old_vars) - set(new_vars)):
        ops.append({"op": "remove", "path": f"/variables/{key}"})
    return ops


def _fix_stage_update() -> None:
    from localstack.services.apigateway.resource_providers.aws_apigateway_stage import (
        ApiGatewayStageProvider,
    )
    from localstack.services.cloudformation.resource_provider import (
        OperationStatus,
        ProgressEvent,
    )

    if _patched(ApiGatewayStageProvider.update):
        return

    def update(self: Any, request: Any) -> Any:
        model = request.desired_state
        previous = request.previous_state or {}
        rest_api_id = model.get("RestApiId") or previous.get("RestApiId")
        stage_name = model.get("StageName") or previous.get("StageName") or "default"
        ops = stage_patch_operations(previous, model)
        if ops:
            request.aws_client_factory.apigateway.update_stage(
                restApiId=rest_api_id, stageName=stage_name, patchOperations=ops
            )
        model["StageName"] = stage_name
        return ProgressEvent(
            status=OperationStatus.SUCCESS,
            resource_model=model,
            custom_context=request.custom_context,
        )

    ApiGatewayStageProvider.update = _mark(update)
    LOG.info("opspawn: CloudFormation updates AWS::ApiGateway::Stage in place")


def _fix_deployment_delete() -> None:
    from localstack.services.apigateway.resource_providers.aws_apigateway_deployment import (
        ApiGatewayDeploymentProvider,
    )
    from localstack.services.cloudformation.resource_provider import (
        OperationStatus,
        ProgressEvent,
    )

    if _patched(ApiGatewayDeploymentProvider.delete):
        return

    def delete(self: Any, request: Any) -> Any:
        model = request.desired_state
        api = request.aws_client_factory.apigateway
        api_id, deployment_id = model["RestApiId"], model["DeploymentId"]
        try:
            # GetStages ignores its deploymentId filter here: only the deployment's own stages
            for stage in api.get_stages(restApiId=api_id).get("item", []):
                if stage.get("deploymentId") == deployment_id:
                    api.delete_stage(restApiId=api_id, stageName=stage["stageName"])
            api.delete_deployment(restApiId=api_id, deploymentId=deployment_id)
        except api.exceptions.NotFoundException:
            pass
        return ProgressEvent(
            status=OperationStatus.SUCCESS,
            resource_model=model,
            custom_context=request.custom_context,
        )

    ApiGatewayDeploymentProvider.delete = _mark(delete)
    LOG.info("opspawn: deleting an AWS::ApiGateway::Deployment keeps the other deployments' stages")


def _rest_api_body(request: Any, model: dict[str, Any]) -> bytes | None:
    body = model.get("Body")
    if body:
        return (json.dumps(body) if isinstance(body, dict) else str(body)).encode()
    location = model.get("BodyS3Location")
    if not location:
        return None
    kwargs: dict[str, Any] = {"Bucket": location.get("Bucket"), "Key": location.get("Key")}
    if location.get("Version"):
        kwargs["VersionId"] = location["Version"]
    obj = request.aws_client_factory.s3.get_object(**kwargs)
    data: bytes = obj["Body"].read()
    return data


def _fix_rest_api_update() -> None:
    from localstack.services.apigateway.resource_providers.aws_apigateway_restapi import (
        ApiGatewayRestApiProvider,
    )
    from localstack.services.cloudformation.resource_provider import (
        OperationStatus,
        ProgressEvent,
    )

    if _patched(ApiGatewayRestApiProvider.update):
        return

    def update(self: Any, request: Any) -> Any:
        model = request.desired_state
        previous = request.previous_state or {}
        api = request.aws_client_factory.apigateway
        api_id = previous.get("RestApiId") or model.get("RestApiId")
        if not api_id:
            raise NotImplementedError("no RestApiId in the previous state")
        model["RestApiId"] = api_id
        if not model.get("Name"):
            model["Name"] = previous.get("Name")
        ops = [
            {"op": "replace", "path": path, "value": _as_text(model.get(prop))}
            for prop, path in (("Name", "/name"), ("Description", "/description"))
            if model.get(prop) is not None and model.get(prop) != previous.get(prop)
        ]
        if ops:
            api.update_rest_api(restApiId=api_id, patchOperations=ops)
        definition = ("Body", "BodyS3Location", "Parameters", "Mode", "FailOnWarnings")
        if any(model.get(k) != previous.get(k) for k in definition):
            body = _rest_api_body(request, model)
            if body is not None:
                parameters = dict(model.get("Parameters") or {})
                parameters.setdefault("basepath", "ignore")  # CloudFormation's import default
                mode = model.get("Mode") or "overwrite"
                kwargs: dict[str, Any] = {"mode": mode}
                if model.get("FailOnWarnings"):
                    kwargs["failOnWarnings"] = True
                old = [a["id"] for a in api.get_authorizers(restApiId=api_id).get("items", [])]
                api.put_rest_api(restApiId=api_id, body=body, parameters=parameters, **kwargs)
                if mode == "overwrite":
                    # LocalStack's import adds the body's authorizers again under new ids
                    # (deployments keep their own copy): drop the replaced ones
                    for authorizer_id in old:
                        api.delete_authorizer(restApiId=api_id, authorizerId=authorizer_id)
        for res in api.get_resources(restApiId=api_id, limit=500).get("items", []):
            if res.get("path") == "/" and not res.get("parentId"):
                model["RootResourceId"] = res["id"]
        return ProgressEvent(
            status=OperationStatus.SUCCESS,
            resource_model=model,
            custom_context=request.custom_context,
        )

    ApiGatewayRestApiProvider.update = _mark(update)
    LOG.info("opspawn: CloudFormation updates AWS::ApiGateway::RestApi in place (PutRestApi)")


# ---- 3. a failed update rolls back to the previous stack ----------------------------------------
class UpdateRolledBack(Exception):
    """Raised out of a failed UpdateStack's execution, after its rollback."""


@dataclass
class _Done:
    """What an update did to one resource, to undo it."""

    action: str  # "Add" | "Modify"
    logical_id: str
    resource_type: str
    before: dict[str, Any] | None
    after: dict[str, Any]


@dataclass
class _Snapshot:
    resource_states: dict[str, Any]
    done: list[_Done] = field(default_factory=list)


def _kwarg(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, index: int) -> Any:
    return kwargs[name] if name in kwargs else (args[index] if len(args) > index else None)


def _fix_update_rollback() -> None:
    from localstack.aws.api.cloudformation import ChangeAction, ChangeSetType, StackStatus
    from localstack.services.cloudformation.engine.v2 import change_set_model_executor as cx
    from localstack.services.cloudformation.engine.v2.change_set_model_preproc import (
        PreprocProperties,
    )
    from localstack.services.cloudformation.resource_provider import OperationStatus
    from localstack.services.cloudformation.v2.entities import Stack

    executor_cls = cx.ChangeSetModelExecutor
    original_execute = executor_cls.execute
    original_action = executor_cls._execute_resource_action
    original_set_status = Stack.set_stack_status
    for owner, name in (
        (executor_cls, "process"),
        (cx, "TriggerRollback"),
        (cx, "ChangeSetModelExecutorResult"),
        (Stack, "_store_event"),
    ):
        getattr(owner, name)  # AttributeError if LocalStack changed
    if _patched(original_execute):
        return

    def props(value: Any) -> dict[str, Any] | None:
        inner = getattr(value, "properties", value)
        return copy.deepcopy(inner) if isinstance(inner, dict) else None

    @functools.wraps(original_action)
    def _execute_resource_action(self: Any, *args: Any, **kwargs: Any) -> Any:
        event = original_action(self, *args, **kwargs)
        snapshot: _Snapshot | None = getattr(self, "_opspawn_snapshot", None)
        action = _kwarg(args, kwargs, "action", 0)
        if (
            snapshot is None
            or event.status != OperationStatus.SUCCESS
            or action not in (ChangeAction.Add, ChangeAction.Modify)
            or _kwarg(args, kwargs, "part_of_replacement", 5)
        ):
            return event
        logical_id = _kwarg(args, kwargs, "logical_resource_id", 1)
        after = self.resources.get(logical_id, {}).get("Properties") or props(
            _kwarg(args, kwargs, "after_properties", 4)
        )
        snapshot.done.append(
            _Done(
                action=str(action),
                logical_id=logical_id,
                resource_type=_kwarg(args, kwargs, "resource_type", 2),
                before=props(_kwarg(args, kwargs, "before_properties", 3)),
                after=copy.deepcopy(after or {}),
            )
        )
        return event

    def undo(self: Any, done: _Done) -> None:
        stack = self._change_set.stack
        physical_id = (self.resources.get(done.logical_id) or {}).get("PhysicalResourceId")
        if done.action == str(ChangeAction.Add):
            verb, action = "DELETE", ChangeAction.Remove
            before, after = PreprocProperties(properties=done.after), None
        else:
            verb, action = "UPDATE", ChangeAction.Modify
            before = PreprocProperties(properties=done.after)
            after = PreprocProperties(properties=done.before or {})
        stack._store_event(
            resource_id=done.logical_id,
            resource_type=done.resource_type,
            physical_resource_id=physical_id,
            status=f"{verb}_IN_PROGRESS",
        )
        try:
            event = original_action(
                self,
                action=action,
                logical_resource_id=done.logical_id,
                resource_type=done.resource_type,
                before_properties=before,
                after_properties=after,
                part_of_replacement=True,
            )
            failed = event.status != OperationStatus.SUCCESS
            reason = event.message if failed else None
        except Exception as exc:
            failed, reason = True, str(exc)
        stack._store_event(
            resource_id=done.logical_id,
            resource_type=done.resource_type,
            physical_resource_id=physical_id,
            status=f"{verb}_{'FAILED' if failed else 'COMPLETE'}",
            status_reason=reason or "",
        )

    @functools.wraps(original_execute)
    def execute(self: Any) -> Any:
        stack = self._change_set.stack
        if stack.status != StackStatus.UPDATE_IN_PROGRESS:
            return original_execute(self)
        stack.status_reason = None  # the reason of an earlier failed update is stale
        snapshot = _Snapshot(resource_states=dict(stack.resource_states))
        self._opspawn_snapshot = snapshot
        stack._opspawn_updating = True
        failure: str | None = None
        try:
            self.process()
        except cx.TriggerRollback as exc:
            failure = f"{exc.logical_resource_id}: {exc.reason}"
        except Exception as exc:
            failure = str(exc) or type(exc).__name__
        finally:
            self._opspawn_snapshot = None
            stack._opspawn_updating = False
        if failure is None:
            if self._deferred_actions:
                stack.set_stack_status(StackStatus.UPDATE_COMPLETE_CLEANUP_IN_PROGRESS)
                for deferred in self._deferred_actions[::-1]:
                    deferred.action()
            return cx.ChangeSetModelExecutorResult(resources=self.resources, outputs=self.outputs)

        LOG.warning("opspawn: stack %s update failed, rolling back: %s", stack.stack_name, failure)
        stack.set_stack_status(StackStatus.UPDATE_ROLLBACK_IN_PROGRESS, failure)
        # keep every resource of the previous template (no deferred deletions), undo the rest
        self._deferred_actions = []
        for done in reversed(snapshot.done):
            undo(self, done)
        stack.resource_states = snapshot.resource_states
        stack.set_stack_status(StackStatus.UPDATE_ROLLBACK_COMPLETE, failure)
        if self._change_set.change_set_type == ChangeSetType.UPDATE:
            # ExecuteChangeSet: the provider stores these, keeps the template, sets no status
            return cx.ChangeSetModelExecutorResult(
                resources=dict(stack.resolved_resources),
                outputs=list(stack.resolved_outputs),
                failure_message=failure,
            )
        # UpdateStack: an exception keeps the previous template/resources/outputs; the
        # provider then sets UPDATE_FAILED, turned back into UPDATE_ROLLBACK_COMPLETE below
        stack._opspawn_rolled_back = True
        raise UpdateRolledBack(failure)

    @functools.wraps(original_set_status)
    def set_stack_status(self: Any, status: Any, reason: Any = None) -> Any:
        if getattr(self, "_opspawn_updating", False) and str(status).endswith("_FAILED"):
            # a resource failed mid-update: the stack stays UPDATE_IN_PROGRESS until its
            # rollback (the resource's own event has the reason)
            return None
        if status == StackStatus.UPDATE_FAILED and getattr(self, "_opspawn_rolled_back", False):
            self._opspawn_rolled_back = False
            self.status = StackStatus.UPDATE_ROLLBACK_COMPLETE
            return None
        return original_set_status(self, status, reason)

    executor_cls._execute_resource_action = _mark(_execute_resource_action)
    executor_cls.execute = _mark(execute)
    Stack.set_stack_status = _mark(set_stack_status)
    LOG.info("opspawn: a failed CloudFormation update rolls back to the previous stack")
