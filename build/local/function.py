"""The function side of a local run: execution environments that run the handler under
``awslambdaric`` in a separate interpreter, each with its own Runtime API endpoint.

Behaviour copied from Lambda:
- init ends when the runtime first asks for work; an init error (posted to /init/error, e.g.
  ``Runtime.ImportModuleError``) or the process exiting first is a failed start;
- one invocation at a time per execution environment;
- a timed-out, crashed or contract-breaking environment is thrown away and the next invocation
  starts a fresh one (a cold start), while a handler exception leaves the environment warm.
"""

from __future__ import annotations

import collections
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from slimserve.build.errors import FunctionStartError
from slimserve.build.local.runtime_api import InvocationResult, RuntimeApiServer, error_result

# Lambda caps init at 10 s; a laptop's cold page cache can be slower, so allow more locally and
# say so when it is exceeded.
DEFAULT_INIT_TIMEOUT_S = 30.0
_LOG_TAIL_LINES = 60

LogSink = Callable[[str], None]


@dataclass(frozen=True)
class FunctionSpec:
    """Everything needed to start one execution environment."""

    name: str
    handler: str  # Lambda handler string, e.g. "slimserve.handler.main.handler"
    python: Path  # interpreter executable
    python_version: str  # "3.12"
    task_root: Path
    import_path: tuple[Path, ...]  # PYTHONPATH: task root first, then the runtime's folders
    memory_mb: int
    timeout_s: float
    environment: Mapping[str, str] = field(default_factory=dict)
    tmp_root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    # What Lambda would call this function; an emulator that assigned real values passes them.
    region: str = "us-east-1"
    function_version: str = "$LATEST"
    arn: str | None = None  # default: an unqualified ARN in a placeholder account
    log_group_name: str | None = None  # default: /aws/lambda/<name>
    log_stream_name: str | None = None  # default: local/[<version>]local
    # Runs the interpreter through a wrapper (e.g. one that mounts Lambda's /opt first); the
    # wrapper must end by executing the arguments that follow it.
    command_prefix: tuple[str, ...] = ()

    @property
    def function_arn(self) -> str:
        return self.arn or f"arn:aws:lambda:{self.region}:123456789012:function:{self.name}"

    def command(self) -> list[str]:
        # -S: no site-packages, so only the zip, the runtime client and the standard library are
        # importable. The environment is built from scratch, so PYTHON* variables are ours.
        return [*self.command_prefix, str(self.python), "-S", "-m", "awslambdaric", self.handler]

    def process_environment(self, runtime_api: str, tmp_dir: Path) -> dict[str, str]:
        """Lambda's reserved variables; no AWS credentials, nothing inherited from this shell."""
        env = {
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "LAMBDA_TASK_ROOT": str(self.task_root),
            "LAMBDA_RUNTIME_DIR": str(self.import_path[-1]),
            "_HANDLER": self.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{self.python_version}",
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": self.function_version,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": self.log_group_name or f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": (
                self.log_stream_name or f"local/[{self.function_version}]local"
            ),
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": os.pathsep.join(
                [str(self.python.parent), "/usr/local/bin", "/usr/bin", "/bin"]
            ),
            # Lambda puts the task root and its lib/ on the library path (bundled native
            # libraries); the host's entries stay after them for interpreters that need them.
            "LD_LIBRARY_PATH": os.pathsep.join(
                [str(self.task_root), str(self.task_root / "lib")]
                + ([os.environ["LD_LIBRARY_PATH"]] if os.environ.get("LD_LIBRARY_PATH") else [])
            ),
            "PYTHONPATH": os.pathsep.join(str(p) for p in self.import_path),
            # /var/task is read-only on Lambda: nothing gets written next to the code there.
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(tmp_dir),
            "HOME": str(tmp_dir),
        }
        # User settings (from the manifest / template) cannot override the reserved ones.
        return {**dict(self.environment), **env}


class FunctionInstance:
    """One execution environment: a process plus its Runtime API server. ``log`` receives the
    process's output lines as they are (and the runner's own notices); a terminal caller adds
    the ``label`` itself (FunctionPool does)."""

    def __init__(self, spec: FunctionSpec, *, label: str, log: LogSink) -> None:
        self.spec = spec
        self.label = label
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._api: RuntimeApiServer | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_LOG_TAIL_LINES)
        self._tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=spec.tmp_root))
        self.cold_starts = 0
        self.last_init_ms: float | None = None
        # Guards process creation against close(): no process may start after close().
        self._lifecycle = threading.Lock()
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self) -> list[str]:
        return list(self._tail)

    def start(self, init_timeout_s: float = DEFAULT_INIT_TIMEOUT_S) -> float:
        """Start the process and wait for init; returns init time in ms. Raises
        FunctionStartError with the init error (type and message) instead of hanging."""
        self.stop()
        self._tail.clear()
        api = RuntimeApiServer(self.spec.function_arn)
        api.start()
        started = time.perf_counter()
        with self._lifecycle:
            if self._closed:
                api.close()
                raise FunctionStartError(
                    "the local function is stopped", error_type="Runtime.Stopped"
                )
            process = subprocess.Popen(
                self.spec.command(),
                cwd=self.spec.task_root,
                env=self.spec.process_environment(api.address, self._tmp),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Own session: Ctrl-C in the terminal reaches slimserve, which stops this
                # cleanly, instead of killing the handler mid-request with a traceback.
                start_new_session=True,
            )
            self._process, self._api = process, api
        threading.Thread(
            target=self._pump_output, args=(process,), name=f"{self.label}-output", daemon=True
        ).start()
        threading.Thread(
            target=self._watch_exit, args=(process, api), name=f"{self.label}-watch", daemon=True
        ).start()
        self.cold_starts += 1

        deadline = started + init_timeout_s
        while True:
            if api.polled.is_set():
                self.last_init_ms = (time.perf_counter() - started) * 1000
                return self.last_init_ms
            if api.init_failed.is_set():
                self._wait_exit(process, 2.0)
                error = api.init_error
                assert error is not None
                self.stop()
                raise FunctionStartError(
                    f"the function failed to initialise: {error.describe()}",
                    error_type=error.error_type,
                    log_tail=self.log_tail(),
                    document=error.document,
                )
            if process.poll() is not None:
                code = process.returncode
                self._wait_output_drained()
                self.stop()
                raise FunctionStartError(
                    f"the function process exited with status {code} during init",
                    error_type="Runtime.ExitError",
                    log_tail=self.log_tail(),
                )
            if time.perf_counter() > deadline:
                self.stop()
                raise FunctionStartError(
                    f"the function did not finish init within {init_timeout_s:.0f} s",
                    error_type="Runtime.InitTimeout",
                    log_tail=self.log_tail(),
                )
            api.polled.wait(0.02)

    def invoke(
        self,
        payload: bytes,
        *,
        request_id: str | None = None,
        trace_id: str | None = None,
        invoked_function_arn: str | None = None,
    ) -> InvocationResult:
        """Run one event; starts (cold) the environment when there is none. The ids default to
        fresh ones, the invoked ARN to the function's (a caller that has Lambda's passes them)."""
        if not self.alive or self._api is None:
            self._log("starting a fresh execution environment (cold start)")
            try:
                self.start()
            except FunctionStartError as exc:
                return error_result(
                    request_id or "",
                    exc.error_type,
                    str(exc),
                    environment_lost=True,
                    started=time.perf_counter(),
                )
        api = self._api
        assert api is not None
        invocation = api.submit(
            payload,
            self.spec.timeout_s,
            request_id=request_id,
            trace_id=trace_id,
            invoked_function_arn=invoked_function_arn,
        )
        result = invocation.wait(self.spec.timeout_s)
        if result is None:
            # Lambda stops the environment at the deadline and reports the timeout.
            invocation.fail(
                "Sandbox.Timedout",
                f"{invocation.request_id} Task timed out after {self.spec.timeout_s:.2f} seconds",
                environment_lost=True,
            )
            result = invocation.wait(0)
            assert result is not None
        if result.environment_lost or api.contract_broken.is_set():
            self._log(
                f"{result.error_type}: discarding this execution environment; "
                "the next request starts a new one"
            )
            self.stop()
        return result

    def stop(self) -> None:
        with self._lifecycle:
            process, api = self._process, self._api
            self._process, self._api = None, None
        if process is not None and process.poll() is None:
            _kill_process_group(process)
            self._wait_exit(process, 5.0)
        if api is not None:
            api.close()

    def close(self) -> None:
        with self._lifecycle:
            self._closed = True
        self.stop()
        _remove_tree(self._tmp)

    # --- background threads --------------------------------------------------------------------

    def _pump_output(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            # awslambdaric separates the lines of one error record with "\r".
            for line in raw.decode("utf-8", "replace").rstrip("\n").split("\r"):
                self._tail.append(line)
                self._log(line)
        process.stdout.close()

    def _watch_exit(self, process: subprocess.Popen[bytes], api: RuntimeApiServer) -> None:
        code = process.wait()
        api.fail_all(
            "Runtime.ExitError",
            f"Runtime exited with error: exit status {code}"
            if code >= 0
            else f"Runtime exited with error: signal {-code}",
        )

    def _wait_output_drained(self) -> None:
        time.sleep(0.05)  # let the pump thread read the last lines a dying process wrote

    @staticmethod
    def _wait_exit(process: subprocess.Popen[bytes], timeout_s: float) -> None:
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            _kill_process_group(process)
            process.wait()


def _kill_process_group(process: subprocess.Popen[bytes]) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)  # the process leads its own session
        else:  # pragma: no cover - Windows
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass


def _labelled(log: LogSink, label: str) -> LogSink:
    return lambda line: log(f"[{label}] {line}")


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class FunctionPool:
    """Up to ``concurrency`` execution environments; a request waits for a free one."""

    def __init__(self, spec: FunctionSpec, *, concurrency: int, log: LogSink) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.spec = spec
        labels = [f"fn{i}" if concurrency > 1 else "fn" for i in range(concurrency)]
        self.instances = [
            FunctionInstance(spec, label=label, log=_labelled(log, label)) for label in labels
        ]
        self._idle: queue.Queue[FunctionInstance] = queue.Queue()
        for instance in self.instances:
            self._idle.put(instance)
        self._closed = threading.Event()

    def start(self, init_timeout_s: float = DEFAULT_INIT_TIMEOUT_S) -> float:
        """Initialise every environment up front, so a broken zip fails at startup."""
        return max(instance.start(init_timeout_s) for instance in self.instances)

    def invoke(
        self, payload: bytes, *, wait_for_instance_s: float | None = None
    ) -> InvocationResult | None:
        """None when no environment became free within ``wait_for_instance_s`` (or the pool
        closed meanwhile)."""
        deadline = None if wait_for_instance_s is None else time.monotonic() + wait_for_instance_s
        while True:
            if self._closed.is_set():
                return None
            step = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if step <= 0:
                return None
            try:
                instance = self._idle.get(timeout=step)
                break
            except queue.Empty:
                continue
        try:
            return instance.invoke(payload)
        finally:
            self._idle.put(instance)

    def close(self) -> None:
        self._closed.set()
        for instance in self.instances:
            instance.close()
