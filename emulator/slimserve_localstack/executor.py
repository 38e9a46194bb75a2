"""Run LocalStack's zip functions on the host with slimserve's local function runner.

LocalStack's docker executor starts a container whose entrypoint (LocalStack's fork of the
runtime interface emulator) *is* the Lambda Runtime API; LocalStack itself serves none. So this
executor brings its own: slimserve's ``FunctionInstance`` starts one process per execution
environment with ``AWS_LAMBDA_RUNTIME_API`` pointed at its ``RuntimeApiServer`` and runs the real
``awslambdaric`` in the function's Python, exactly as ``slimserve local`` does. ``invoke()``
returns the result directly, so LocalStack's executor-endpoint callbacks are not needed.

LocalStack's contract, mapped onto the runner:

- ``prepare_version`` (once per function version): find the runtime's Python on the host,
  install ``awslambdaric`` for it once (slimserve's cache, shared with ``slimserve local``),
  unzip the code and layers LocalStack stores;
- ``start(env_vars)``: start one process and block until init ends; an init error becomes
  ``StatusErrorException`` carrying Lambda's error document, which LocalStack returns as the
  invoke's error payload;
- ``invoke``: one event with LocalStack's request id, trace id and invoked ARN; the function's
  timeout is enforced (``Sandbox.Timedout``, the environment replaced);
- ``stop``: kill the process group, close the Runtime API.

Every function process's pid is written to ``$SLIMSERVE_EMULATOR_PID_DIR`` while it lives, so
``scripts/aws-emulator stop`` can end it even when LocalStack itself died first.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from localstack import config
from localstack.aws.api.lambda_ import PackageType
from localstack.services.lambda_.invocation.executor_endpoint import StatusErrorException
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

from slimserve.build.errors import FunctionStartError
from slimserve.build.local.function import FunctionInstance, FunctionSpec
from slimserve.build.local.python import PythonInterpreter, ensure_runtime_client, find_python
from slimserve.build.paths import cache_dir

LOG = logging.getLogger(__name__)

# LocalStack's variables that describe its container layout; the host runner sets its own.
_CONTAINER_ONLY = {"LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "AWS_EXECUTION_ENV", "_HANDLER"}
_LOG_LINES_KEPT = 2000
_HOST = "127.0.0.1"
# Runs inside the function's own mount namespace, so nothing changes on the host: /var gets a
# throw-away overlay (for /var/lang/bin/python, the interpreter path Lambda guarantees; the AWS
# CLI layer's script starts with #!/var/lang/bin/python), /opt the layers (later layers win).
_LAMBDA_PATHS_SCRIPT = r"""
set -eu
layers="$1"; python="$2"; shift 2
scratch="$(mktemp -d)"
mount -t tmpfs tmpfs "$scratch"
mkdir "$scratch/upper" "$scratch/work"
mount -t overlay overlay -o "lowerdir=/var,upperdir=$scratch/upper,workdir=$scratch/work" /var
mkdir -p /var/lang/bin
ln -s "$python" /var/lang/bin/python
case "$layers" in
  *:*) mount -t overlay overlay -o "ro,lowerdir=$layers" /opt ;;
  *) mount --bind -o ro "$layers" /opt ;;
esac
exec "$@"
"""


# Interpreters tried, newest first, when the runtime's own Python is not on this host.
_FALLBACK_PYTHONS = ("3.14", "3.13", "3.12", "3.11")


@dataclass(frozen=True)
class _Runtime:
    interpreter: PythonInterpreter
    runtime_dir: Path
    wanted: str  # the runtime's Python; interpreter.version differs when it is not on this host


def _python_version(runtime: str | None) -> str:
    if not runtime or not runtime.startswith("python"):
        raise LambdaRuntimeException(
            f"the slimserve-host executor runs Python zip functions only, not runtime {runtime!r}"
        )
    return runtime.removeprefix("python")


def _native_libraries(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*.so*") if p.is_file()][:3]


def _layer_wrapper(layers: list[Path], python: Path) -> tuple[str, ...]:
    """The command prefix that mounts ``layers`` on /opt in a private mount namespace."""
    if not layers:
        return ()
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:  # a user namespace maps the caller to root inside it
        unshare[1:1] = ["--user", "--map-root-user"]
    # Several layers: an overlay's lowerdir lists the top one first.
    joined = ":".join(str(path) for path in reversed(layers))
    return (*unshare, "/bin/sh", "-c", _LAMBDA_PATHS_SCRIPT, "lambda-paths", joined, str(python))


class HostRuntimeExecutor(RuntimeExecutor):
    # (python version, architecture) -> interpreter and runtime-client folder, found once.
    _runtimes: dict[tuple[str, str], _Runtime] = {}
    _runtimes_lock = threading.Lock()

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self._instance: FunctionInstance | None = None
        self._lines: collections.deque[str] = collections.deque(maxlen=_LOG_LINES_KEPT)
        self._invocation_lines: list[str] | None = None
        self._lines_lock = threading.Lock()
        self._pid_file: Path | None = None

    # --- preparing a version (class level: once per function version) -------------------------

    @classmethod
    def _runtime_for(cls, function_version: FunctionVersion) -> _Runtime:
        python = _python_version(function_version.config.runtime)
        architecture = str(function_version.config.architectures[0])
        with cls._runtimes_lock:
            known = cls._runtimes.get((python, architecture))
            if known:
                return known
            interpreter = find_python(python) or next(
                filter(None, (find_python(other) for other in _FALLBACK_PYTHONS)), None
            )
            if interpreter is None:
                raise LambdaRuntimeException(f"no working python{python} found on this host")
            runtime_dir, installed_now = ensure_runtime_client(
                cache_dir(),
                interpreter.version,
                interpreter.lambda_architecture,
                compile_with=interpreter,
            )
            LOG.info(
                "slimserve-host: python%s at %s, runtime client %s in %s",
                python,
                interpreter.executable,
                "installed" if installed_now else "cached",
                runtime_dir,
            )
            runtime = _Runtime(interpreter, runtime_dir, python)
            cls._runtimes[(python, architecture)] = runtime
            return runtime

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        if function_version.config.package_type != PackageType.Zip:
            raise LambdaRuntimeException("the slimserve-host executor runs zip functions only")
        runtime = cls._runtime_for(function_version)
        code = function_version.config.code
        if code:
            code.prepare_for_execution()
        for layer in function_version.config.layers:
            if layer.code:
                layer.code.prepare_for_execution()
        # Pure-Python code (CDK's handlers are arm64; the traffic hooks use the newest
        # runtime) runs on another machine or Python; native libraries built for another one
        # would only fail later, at import.
        wanted = f"python{runtime.wanted} {str(function_version.config.architectures[0])}"
        host = f"python{runtime.interpreter.version} {runtime.interpreter.lambda_architecture}"
        if wanted != host:
            native = _native_libraries(Path(code.get_unzipped_code_location())) if code else []
            if native and not config.LAMBDA_IGNORE_ARCHITECTURE:
                raise LambdaRuntimeException(
                    f"the function is built for {wanted} with native libraries ({native[0]}...) "
                    f"and this host runs it as {host}"
                )
            LOG.warning(
                "slimserve-host: %s is built for %s; running it as %s (no native libraries)",
                function_version.qualified_arn,
                wanted,
                host,
            )

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass  # LocalStack removes the unzipped code itself (code.destroy_cached on delete)

    @classmethod
    def validate_environment(cls) -> bool:
        return True

    # --- one execution environment ------------------------------------------------------------

    def _log(self, line: str) -> None:
        with self._lines_lock:
            self._lines.append(line)
            if self._invocation_lines is not None:
                self._invocation_lines.append(line)
        LOG.debug("[lambda %s] %s", self.id, line)

    def _spec(self, env_vars: dict[str, str]) -> FunctionSpec:
        version = self.function_version
        runtime = self._runtime_for(version)
        values = {key: str(value) for key, value in env_vars.items()}
        task_root = Path(version.config.code.get_unzipped_code_location())
        tmp_root = Path(tempfile.gettempdir()) / "lambda-host" / self.id
        tmp_root.mkdir(parents=True, exist_ok=True)
        layers = [
            Path(layer.code.get_unzipped_code_location())
            for layer in version.config.layers
            if layer.code
        ]
        python = runtime.interpreter.executable
        return FunctionSpec(
            name=version.id.function_name,
            handler=version.config.handler,
            python=python,
            python_version=runtime.interpreter.version,
            task_root=task_root,
            import_path=(task_root, runtime.runtime_dir),
            memory_mb=version.config.memory_size,
            timeout_s=float(version.config.timeout),
            # LocalStack's values: the template's variables, its STS credentials, the endpoint
            # (AWS_ENDPOINT_URL, so boto3 in the function talks to LocalStack).
            environment={k: v for k, v in values.items() if k not in _CONTAINER_ONLY},
            tmp_root=tmp_root,
            region=values.get("AWS_REGION", version.id.region),
            function_version=values.get("AWS_LAMBDA_FUNCTION_VERSION", version.id.qualifier),
            arn=version.qualified_arn,
            log_group_name=values.get("AWS_LAMBDA_LOG_GROUP_NAME"),
            log_stream_name=values.get("AWS_LAMBDA_LOG_STREAM_NAME"),
            command_prefix=_layer_wrapper(layers, python),
        )

    def start(self, env_vars: dict[str, str]) -> None:
        spec = self._spec(env_vars)
        self._instance = FunctionInstance(spec, label=f"{spec.name}:{self.id}", log=self._log)
        try:
            init_ms = self._instance.start(init_timeout_s=config.LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT)
        except FunctionStartError as exc:
            # The runtime's own init error document when it posted one (as Lambda returns it);
            # the output tail str(exc) appends is in the function's logs already.
            document = exc.document or {"errorType": exc.error_type, "errorMessage": exc.message}
            raise StatusErrorException(
                "Environment startup failed", payload=json.dumps(document).encode()
            ) from exc
        self._record_pid()
        self._log(f"INIT_REPORT Init Duration: {init_ms:.2f} ms")

    def _record_pid(self) -> None:
        """Keep ``$SLIMSERVE_EMULATOR_PID_DIR/<pid>`` naming the live process (the runner
        replaces a timed-out or crashed one by itself)."""
        folder = os.environ.get("SLIMSERVE_EMULATOR_PID_DIR")
        pid = self._instance.pid if self._instance else None
        current = Path(folder) / str(pid) if folder and pid else None
        if current == self._pid_file:
            return
        if self._pid_file is not None:
            self._pid_file.unlink(missing_ok=True)
        if current is not None:
            current.touch()
        self._pid_file = current

    def stop(self) -> None:
        if self._instance is not None:
            self._instance.close()
        if self._pid_file is not None:
            self._pid_file.unlink(missing_ok=True)

    def get_address(self) -> str:
        return _HOST

    def get_endpoint_from_executor(self) -> str:
        # The function runs on the host, where LocalStack's gateway listens.
        return config.GATEWAY_LISTEN[0].host or _HOST

    def get_runtime_endpoint(self) -> str:
        # Unused by this executor (results come back from invoke()); kept truthful.
        port = config.GATEWAY_LISTEN[0].port
        return f"http://{self.get_endpoint_from_executor()}:{port}/_localstack_lambda/{self.id}"

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        if self._instance is None:
            raise LambdaRuntimeException(f"execution environment {self.id} was not started")
        request_id = payload["invoke-id"]
        version = self.function_version.id.qualifier
        with self._lines_lock:
            self._invocation_lines = [f"START RequestId: {request_id} Version: {version}"]
        started = time.perf_counter()
        result = self._instance.invoke(
            payload["payload"].encode(),
            request_id=request_id,
            trace_id=payload.get("trace-id"),
            invoked_function_arn=payload.get("invoked-function-arn"),
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        self._record_pid()
        time.sleep(0.01)  # let the output pump catch the invocation's last lines
        with self._lines_lock:
            lines, self._invocation_lines = self._invocation_lines or [], None
        lines.append(f"END RequestId: {request_id}")
        lines.append(
            f"REPORT RequestId: {request_id}\tDuration: {elapsed_ms:.2f} ms\t"
            f"Memory Size: {self.function_version.config.memory_size} MB"
        )
        body = result.payload if result.ok else json.dumps(result.error_document()).encode()
        return InvocationResult(
            request_id=request_id, payload=body, is_error=not result.ok, logs="\n".join(lines) + "\n"
        )

    def get_logs(self) -> str:
        with self._lines_lock:
            return "\n".join(self._lines)
