"""The plux plugin LocalStack finds through the ``localstack.lambda.runtime_executor`` entry
point; ``LAMBDA_RUNTIME_EXECUTOR=slimserve-host`` selects it. Loading is lazy, like LocalStack's
own docker plugin, so listing plugins imports nothing heavy."""

from __future__ import annotations

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin


class HostRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "slimserve-host"

    def load(self, *args: object, **kwargs: object) -> type:
        from slimserve_localstack.executor import HostRuntimeExecutor

        return HostRuntimeExecutor
