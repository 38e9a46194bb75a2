"""``slimserve local`` / ``slimserve invoke``: run a built lambda.zip offline, as Lambda would.

``serve`` (until Ctrl-C / SIGTERM), ``running`` (a context manager) and ``invoke_event`` (one raw
event) take the build (``resolve_target``) and a ``LocalRunOptions`` (build/local/options.py).
What the gateway and the function look like (API type, stage, routes, auth, limits, timeout,
memory, environment) is a ``GatewayConfig`` (``resolve_config``): given, read from a synthesized
CloudFormation template (build/local/apigw/template.py; build/local/synth.py synthesizes and
caches it, what ``slimserve local`` does by default), else the manifest's defaults.

The function runs under the real runtime interface client against a local Runtime API
(build/local/prepare.py, function.py, runtime_api.py); an API-Gateway-shaped HTTP front
(build/local/apigw/gateway.py on server.py) turns HTTP requests into proxy events. Every folder
a run makes is removed when it ends, Ctrl-C and SIGTERM included (build/local/taskroot.py).

Public API (used by build/cli.py): ``serve``, ``running``, ``invoke_event``, ``resolve_target``,
``resolve_config``.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from slimserve.build.deploy.targets import BuildArtifacts, resolve_target
from slimserve.build.errors import FunctionError, LocalRunError, TemplateError
from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.apigw.gateway import Gateway
from slimserve.build.local.apigw.server import GatewayHttpServer
from slimserve.build.local.apigw.template import S3_MODEL_VARIABLES, gateway_config_from_template
from slimserve.build.local.console import console_log, curl_hint, gateway_banner, stderr_console
from slimserve.build.local.function import FunctionPool
from slimserve.build.local.options import LocalRunOptions
from slimserve.build.local.prepare import LocalFunction, started_function
from slimserve.build.local.python import PythonInterpreter
from slimserve.build.local.runtime_api import MAX_REQUEST_PAYLOAD_BYTES, InvocationResult
from slimserve.build.local.synth import stack_template
from slimserve.handler.manifest import MANIFEST_FILE, Manifest

DEFAULT_HANDLER = "slimserve.handler.main.handler"  # slimserve's own handler: it serves /v2/health/ready


# --- what to emulate ---------------------------------------------------------------------------


def resolve_config(
    artifacts: BuildArtifacts,
    options: LocalRunOptions = LocalRunOptions(),
    console: Console | None = None,
) -> GatewayConfig:
    """``options.config`` as given; else the one ``options.template`` describes; else the one
    the stack synthesized with ``options.stack_options`` describes (cached under
    <cache>/local-synth); else the manifest's defaults for ``options.api_type``. Raises
    LocalRunError (the CDK's and the template's errors included)."""
    if options.config is not None:
        return options.config
    template = options.template
    if template is None and options.stack_options is None:
        return GatewayConfig.from_manifest(artifacts.manifest, api_type=options.api_type)
    if options.stack_options is not None:
        manifest_path = artifacts.folder / MANIFEST_FILE
        template = stack_template(manifest_path, options.stack_options, options.cache(), console)
    assert template is not None
    try:
        resolved = gateway_config_from_template(
            template, artifacts.manifest, api_key=options.api_key
        )
    except TemplateError as exc:
        raise LocalRunError(f"cannot emulate the template: {exc}") from exc
    _check_model_source(artifacts, resolved)
    return resolved


def _check_model_source(artifacts: BuildArtifacts, config: GatewayConfig) -> None:
    """package=s3 stacks load the model from a bucket that exists only on AWS; the local run
    can stand in only when the zip carries the model itself."""
    if not any(name in S3_MODEL_VARIABLES for name in config.skipped_environment):
        return
    model_file = f"model/{artifacts.manifest.model.file}"
    with zipfile.ZipFile(artifacts.zip_path) as archive:
        if model_file in archive.namelist():
            return
    raise LocalRunError(
        f"the stack is package=s3 and {artifacts.zip_path} has no {model_file}: the function "
        "would download the model from an S3 bucket that exists only on AWS, which a template "
        "alone cannot emulate. Build a zip that carries the model, or run with --no-template "
        "and SLIMSERVE_MODEL_S3_* pointing at a local S3 endpoint"
    )


# --- the server ------------------------------------------------------------------------------


@dataclass
class LocalServer:
    """A running local API. ``url`` has no trailing slash and includes a named stage."""

    url: str
    emulated: bool
    config: GatewayConfig
    manifest: Manifest
    python: PythonInterpreter
    init_ms: float  # the function's cold start (process start to first poll)
    ready_ms: float  # everything: unpack, installs, start
    function: LocalFunction = field(repr=False)
    _stop: Callable[[], None] | None = field(repr=False, default=None)

    def stop(self) -> None:
        if self._stop is not None:
            stop, self._stop = self._stop, None
            stop()


@contextmanager
def running(
    target: Path,
    options: LocalRunOptions = LocalRunOptions(),
    *,
    console: Console | None = None,
    banner: bool = False,
) -> Iterator[LocalServer]:
    """Serve ``target`` on ``options.host:options.port`` (0: a free port) while the block runs,
    emulating what ``options`` says (see LocalRunOptions). ``banner`` prints what the gateway
    copies and what it does not; the local values of the template's API keys are in
    ``server.config.api_keys``. Raises LocalRunError (FunctionStartError for init failures such
    as a dependency missing from the zip) before yielding when the function cannot start.
    """
    started = time.perf_counter()
    console = console or stderr_console()
    artifacts = resolve_target(target)
    manifest = artifacts.manifest
    executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="slimserve-invoke")
    pools: list[FunctionPool] = []  # filled once the function has started

    def submit(payload: bytes, wait_s: float) -> Future[InvocationResult | None]:
        return executor.submit(pools[0].invoke, payload, wait_for_instance_s=wait_s)

    # Bind first: a busy port should fail in milliseconds, not after synthesis, unpacking and
    # init. The gateway gets its real configuration before the server starts serving.
    host, port = options.host, options.port
    try:
        http = GatewayHttpServer(
            Gateway(GatewayConfig(), submit),
            host,
            port,
            log=console_log(console),
            idle_timeout_s=options.idle_timeout_s,
        )
    except OSError as exc:
        executor.shutdown(wait=False)
        raise LocalRunError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        gateway_config = resolve_config(artifacts, options, console)
        http.gateway = Gateway(gateway_config, submit)
        with started_function(
            artifacts.zip_path, manifest, gateway_config, options, console
        ) as function:
            pools.append(function.pool)
            http.start()

            def stop() -> None:
                http.stop()
                function.pool.close()

            server = LocalServer(
                url=http.url + gateway_config.stage_prefix,
                emulated=function.prepared.emulated,
                config=gateway_config,
                manifest=manifest,
                python=function.prepared.interpreter,
                init_ms=function.init_ms,
                ready_ms=(time.perf_counter() - started) * 1000,
                function=function,
                _stop=stop,
            )
            label = " [bold yellow](EMULATION)[/bold yellow]" if server.emulated else ""
            if banner:
                console.print(gateway_banner(gateway_config, server.url), soft_wrap=False)
            console.print(
                f"[green]ready[/green] in {server.ready_ms:.0f} ms (function init "
                f"{server.init_ms:.0f} ms): {server.url}{label} - {gateway_config.describe()}"
            )
            if manifest.runtime.handler == DEFAULT_HANDLER:
                console.print(f"try: {curl_hint(gateway_config, server.url)}", highlight=False)
            try:
                yield server
            finally:
                server.stop()
    finally:
        http.stop()
        executor.shutdown(wait=False, cancel_futures=True)


@contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM stops a run the way Ctrl-C does: the same KeyboardInterrupt unwinds it, so
    every cleanup runs (function processes, work folder, task root), even mid-startup."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(
    target: Path, options: LocalRunOptions = LocalRunOptions(), *, console: Console | None = None
) -> None:
    """Serve until Ctrl-C (or SIGTERM); then stop the function and clean up. Prints what the
    gateway emulates (see ``running``)."""
    console = console or stderr_console()
    serving = False
    with _sigterm_as_ctrl_c():
        try:
            with running(target, options, console=console, banner=True):
                serving = True
                console.print("press Ctrl-C to stop")
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            if not serving:
                raise  # stopped while starting: cleaned up all the same, but not served
        console.print("stopped")


def invoke_event(
    target: Path,
    event: Any,
    options: LocalRunOptions = LocalRunOptions(),
    *,
    console: Console | None = None,
) -> Any:
    """Send one raw event (e.g. a recorded API Gateway event) through the same runtime path and
    return the function's JSON result. Raises FunctionError when the function fails. The
    function's timeout, memory and environment come from ``options`` as in ``running`` (the
    gateway itself is not involved: its host, port and concurrency do not apply)."""
    payload = json.dumps(event).encode()
    if len(payload) > MAX_REQUEST_PAYLOAD_BYTES:
        raise LocalRunError(
            f"the event is {len(payload)} bytes; Lambda accepts at most {MAX_REQUEST_PAYLOAD_BYTES}"
        )
    artifacts = resolve_target(target)
    console = console or stderr_console()
    function_config = resolve_config(artifacts, options, console)
    one_environment = replace(options, concurrency=1)  # one event needs one environment
    with (
        _sigterm_as_ctrl_c(),
        started_function(
            artifacts.zip_path, artifacts.manifest, function_config, one_environment, console
        ) as function,
    ):
        result = function.pool.invoke(payload)
    assert result is not None  # no wait limit: a free environment always comes
    if not result.ok:
        raise FunctionError(result.error_document())
    try:
        return json.loads(result.payload)
    except json.JSONDecodeError as exc:
        raise LocalRunError(
            f"the function returned non-JSON output: {result.payload[:200]!r}"
        ) from exc


if __name__ == "__main__":  # pragma: no cover - manual use: python -m slimserve.build.local.run DIR [PORT]
    serve(Path(sys.argv[1]), LocalRunOptions(port=int(sys.argv[2]) if len(sys.argv) > 2 else 8000))
