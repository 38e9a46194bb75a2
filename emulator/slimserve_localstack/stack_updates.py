"""Stack updates as CloudFormation does them, where LocalStack community 4.14 does not.

Every deploy of a new build updates the stack: the function's code and configuration change in
place, a new ``AWS::Lambda::Version`` is published and the ``live`` alias moves to it. Two gaps
of LocalStack's CloudFormation engine (v2) break that, both patched here at start-up:

1. A ``Ref`` to a resource that is updated in place counts as a changed value
   (``engine/v2/change_set_model.py``, ``_resolve_intrinsic_function_ref``: "TODO: this should
   check the replacement flag for a resource update"). The alias's ``FunctionName`` is a
   create-only property and a ``Ref`` to the function, so the engine replaces the alias: it
   calls ``CreateAlias`` while the old alias still exists ("Alias already exists") and the update
   fails. On AWS a ``Ref`` changes only when its resource is created or replaced; so here.
2. ``AWS::Lambda::Alias``'s ``update`` raises NotImplementedError
   (``services/lambda_/resource_providers/lambda_alias.py``). Here it calls ``UpdateAlias`` with
   the new version, description and routing (provisioned concurrency is not emulated).
3. ``AWS::ApiGateway::Stage``'s ``update`` raises NotImplementedError too
   (``services/apigateway/resource_providers/aws_apigateway_stage.py``), so the stage keeps the
   old deployment; then deleting the old ``AWS::ApiGateway::Deployment`` deletes every stage
   that uses it ("TODO: verify if AWS behaves the same?": AWS refuses to delete a deployment a
   stage uses) and the API is gone. Here ``update`` moves the stage to the new deployment (and
   its description and tracing), as CloudFormation does before it deletes the old deployment.
"""

from __future__ import annotations

from typing import Any

from localstack.runtime import hooks


def _update_alias(self: Any, request: Any) -> Any:
    from localstack.services.cloudformation.resource_provider import OperationStatus, ProgressEvent

    model = request.desired_state
    # The template lists [{FunctionVersion, FunctionWeight}]; the API takes {version: weight}.
    # None in the template: the alias serves one version (which also ends a canary split).
    weights = (model.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or []
    result = request.aws_client_factory.lambda_.update_alias(
        FunctionName=model["FunctionName"],
        Name=model["Name"],
        FunctionVersion=model["FunctionVersion"],
        Description=model.get("Description", ""),
        RoutingConfig={
            "AdditionalVersionWeights": {
                str(w["FunctionVersion"]): float(w["FunctionWeight"]) for w in weights
            }
        },
    )
    model["Id"] = result["AliasArn"]
    return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)


def _update_stage(self: Any, request: Any) -> Any:
    from localstack.services.cloudformation.resource_provider import OperationStatus, ProgressEvent

    model, before = request.desired_state, request.previous_state or {}
    operations = [
        {"op": "replace", "path": path, "value": str(model[key]).lower() if key == "TracingEnabled" else model[key]}
        for key, path in (
            ("DeploymentId", "/deploymentId"),
            ("Description", "/description"),
            ("TracingEnabled", "/tracingEnabled"),
        )
        if key in model and model[key] != before.get(key)
    ]
    if operations:
        request.aws_client_factory.apigateway.update_stage(
            restApiId=model["RestApiId"], stageName=model["StageName"], patchOperations=operations
        )
    return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)


@hooks.on_infra_start()
def stack_updates() -> None:
    from localstack.services.apigateway.resource_providers.aws_apigateway_stage import (
        ApiGatewayStageProvider,
    )
    from localstack.services.cloudformation.engine.v2.change_set_model import (
        ChangeSetModel,
        ChangeType,
        NodeResource,
        Nothing,
        TerminalValue,
    )
    from localstack.services.lambda_.resource_providers.lambda_alias import LambdaAliasProvider

    resolve_ref = ChangeSetModel._resolve_intrinsic_function_ref

    def resolve_ref_by_replacement(self: Any, arguments: Any) -> Any:
        change = resolve_ref(self, arguments)
        name = arguments.value if isinstance(arguments, TerminalValue) else None
        if (
            change == ChangeType.MODIFIED
            and arguments.change_type == ChangeType.UNCHANGED
            and isinstance(name, str)
            and not name.startswith("AWS::")  # pseudo parameters
            and self._retrieve_condition_if_exists(condition_name=name) is Nothing
            and self._retrieve_parameter_if_exists(parameter_name=name) is Nothing
        ):
            node = self._retrieve_or_visit_resource(resource_name=name)
            if isinstance(node, NodeResource) and not node.requires_replacement:
                return ChangeType.UNCHANGED  # updated in place: same physical id, same Ref
        return change

    ChangeSetModel._resolve_intrinsic_function_ref = resolve_ref_by_replacement
    LambdaAliasProvider.update = _update_alias
    ApiGatewayStageProvider.update = _update_stage
