"""``slimserve local`` / ``slimserve invoke``: run a built lambda.zip offline, as Lambda would.

The zip is unpacked once per content digest into a read-only task root under the project's
cache (``.cache/task-roots``, shared by runs of the same zip); the handler runs in a separate
interpreter started with ``-S`` so that only the zip, the runtime interface client
(``awslambdaric``, which Lambda provides and the zip must not carry) and the standard library
are importable; ``awslambdaric`` talks to a local Runtime API (build/local/runtime_api.py); an
API-Gateway-shaped HTTP front (build/local/apigw/gateway.py) turns HTTP requests into proxy events.

When the zip's target Python (or architecture, or Linux itself) is not available here, the zip
cannot be run as built. Then the zip's packages are reinstalled for a local Python and the run
is labelled EMULATION everywhere: it checks the handler, not the bundle.

What the gateway and the function look like (API type, stage, routes, auth, limits, timeout,
memory, environment) is a ``GatewayConfig``: given explicitly, read from a synthesized
CloudFormation template (``template=``, or ``stack_options=`` to synthesize one, cached; what
``slimserve local`` does by default), else the manifest's defaults.

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
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from slimserve.build import paths
from slimserve.build.deploy.targets import BuildArtifacts, resolve_target
from slimserve.build.errors import (
    FunctionError,
    FunctionStartError,
    LocalPythonError,
    LocalRunError,
)
from slimserve.build.local.apigw.events import ApiType
from slimserve.build.local.apigw.gateway import Gateway, GatewayConfig, GatewayHttpServer
from slimserve.build.local.function import DEFAULT_INIT_TIMEOUT_S, FunctionPool, FunctionSpec
from slimserve.build.local.python import (
    RUNTIME_CLIENT_REQUIREMENT,
    PythonInterpreter,
    current_python,
    ensure_emulation_packages,
    ensure_runtime_client,
    find_python,
    resolve_python,
)
from slimserve.build.local.runtime_api import MAX_REQUEST_PAYLOAD_BYTES, InvocationResult
from slimserve.build.local.taskroot import (
    handler_top_level,
    new_work_dir,
    remove_tree,
    set_read_only,
    shared_task_root,
    strip_bundled_packages,
    unpack_zip,
    warn_about_permissions,
)
from slimserve.handler.manifest import MANIFEST_FILE, Manifest

__all__ = [
    "BuildArtifacts",
    "FunctionError",
    "FunctionStartError",
    "GatewayConfig",
    "LocalPythonError",
    "LocalRunError",
    "LocalServer",
    "curl_hint",
    "gateway_banner",
    "invoke_event",
    "resolve_config",
    "resolve_target",
    "running",
    "serve",
]

TemplateInput = Path | str | Mapping[str, Any]

DEFAULT_HANDLER = "slimserve.handler.main.handler"  # slimserve's own handler: it serves /v2/health/ready


# --- what to emulate ---------------------------------------------------------------------------


def resolve_config(
    artifacts: BuildArtifacts,
    *,
    config: GatewayConfig | None = None,
    template: TemplateInput | None = None,
    stack_options: Mapping[str, Any] | None = None,
    api_key: str | None = None,
    api_type: ApiType = "http",
    cache_dir: Path | None = None,
    console: Console | None = None,
) -> GatewayConfig:
    """``config`` as given; else the one ``template`` describes; else the one the stack
    synthesized with ``stack_options`` describes (cached under .cache/local-synth); else the
    manifest's defaults for ``api_type``. Raises LocalRunError (the CDK's and the template's
    errors included)."""
    given = [
        name
        for name, value in (
            ("config", config),
            ("template", template),
            ("stack_options", stack_options),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise LocalRunError(
            f"give at most one of config, template and stack_options (got {', '.join(given)})"
        )
    if config is not None:
        return config
    if template is None and stack_options is None:
        return GatewayConfig.from_manifest(artifacts.manifest, api_type=api_type)

    from slimserve.build.errors import TemplateError
    from slimserve.build.local.apigw.template import (
        gateway_config_from_template,
        synthesized_template,
    )

    if stack_options is not None:
        from slimserve.build.errors import CdkError
        from slimserve.handler.manifest import ManifestError
        from slimserve.infra.options import OptionsError

        manifest_path = artifacts.folder / MANIFEST_FILE
        cache = (cache_dir or paths.cache_dir()).resolve()
        status = (
            console.status("synthesizing the stack template (once per manifest and options)")
            if console
            else None
        )
        try:
            if status is not None:
                status.start()
            template, cached = synthesized_template(manifest_path, stack_options, cache)
        except (OptionsError, ManifestError) as exc:
            raise LocalRunError(str(exc)) from exc
        except CdkError as exc:
            raise LocalRunError(
                f"cannot synthesize the stack template: {exc}. Pass --no-template to run with "
                "the manifest's defaults instead (not what the stack deploys)"
            ) from exc
        finally:
            if status is not None:
                status.stop()
        if console is not None:
            console.print(
                f"stack template {'cached in' if cached else 'synthesized into'} {template}"
            )
    try:
        resolved = gateway_config_from_template(template, artifacts.manifest, api_key=api_key)
    except TemplateError as exc:
        raise LocalRunError(f"cannot emulate the template: {exc}") from exc
    _check_model_source(artifacts, resolved)
    return resolved


def _check_model_source(artifacts: BuildArtifacts, config: GatewayConfig) -> None:
    """package=s3 stacks load the model from a bucket that exists only on AWS; the local run
    can stand in only when the zip carries the model itself."""
    from slimserve.build.local.apigw.template import S3_MODEL_VARIABLES

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


def gateway_banner(config: GatewayConfig, url: str) -> Panel:
    """What the local gateway copies from the deployed stack, and what it does not."""
    api = "HTTP API" if config.api_type == "http" else "REST API"
    lines: list[tuple[str, str] | str] = []
    if config.source == "manifest defaults":
        lines.append(
            ("Following the manifest's DEFAULTS, not the stack's template: ", "bold yellow")
        )
        lines.append("what the deployed API does (auth, stage, limits) may differ.\n")
    else:
        lines.append(f"Following {config.source}.\n")
    stage = (
        "no path prefix"
        if not config.stage_prefix
        else f"every path starts with {config.stage_prefix}"
    )
    lines.append(f"{api}, payload format {config.payload_format}, stage {config.stage} ({stage})\n")
    shown = ", ".join(route.key for route in config.routes[:4])
    more = f" and {len(config.routes) - 4} more" if len(config.routes) > 4 else ""
    lines.append(f"routes: {shown}{more}\n")
    kinds = {route.authorization for route in config.routes}
    lines.append(f"auth: {config.auth_summary}\n")
    if "iam" in kinds:
        lines.append(
            "  IAM: send a SigV4 Authorization header (AWS4-HMAC-SHA256 Credential=..., "
            "SignedHeaders=..., Signature=...) and X-Amz-Date, e.g. from awscurl or botocore; "
            "unsigned requests get 403 as on AWS. Signatures are NOT verified locally.\n"
        )
    if "jwt" in kinds:
        lines.append(
            "  JWT: send Authorization: Bearer <token>; without one, 401 as on AWS. Tokens are "
            "NOT verified locally (issuer, audience, expiry, signature).\n"
        )
    if any(route.api_key_required for route in config.routes):
        if config.api_keys:
            for name, value in config.api_keys.items():
                lines.append(
                    f"  API key {name}: send x-api-key: {value} (local value; the deployed one differs)\n"
                )
        else:
            lines.append("  API key required, but no usable key: every request gets 403\n")
    if config.binary_media_types:
        lines.append(f"binary media types: {', '.join(config.binary_media_types)}\n")
    lines.append(
        f"limits: body {config.max_body_bytes // (1024 * 1024)} MB, Lambda payload "
        f"{MAX_REQUEST_PAYLOAD_BYTES // (1024 * 1024)} MB, API Gateway answers after "
        f"{config.integration_timeout_s:g} s; function timeout {config.function_timeout_s:g} s, "
        f"{config.memory_mb} MB\n"
    )
    if config.environment:
        lines.append(f"environment: {', '.join(sorted(config.environment))}\n")
    if config.notes:
        lines.append(("differences from the deployed stack:\n", "bold"))
    for note in config.notes:
        lines.append(f"  - {note}\n")
    text = Text.assemble(*lines)
    text.rstrip()
    return Panel(text, title=f"slimserve local: API Gateway at {url}", border_style="cyan")


# A SigV4-shaped header: enough locally (signatures are not verified), refused by AWS.
LOCAL_SIGV4_HEADERS = (
    (
        "Authorization",
        (
            "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/20240101/us-east-1/execute-api/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=local"
        ),
    ),
    ("X-Amz-Date", "20240101T000000Z"),
)


def curl_hint(config: GatewayConfig, url: str) -> str:
    """A curl command the local gateway lets through (the health route)."""
    route = next(
        (r for r in config.routes if r.match("GET", "/v2/health/ready") is not None),
        config.routes[0],
    )
    headers: list[tuple[str, str]] = []
    if route.authorization == "iam":
        headers.extend(LOCAL_SIGV4_HEADERS)
    elif route.authorization == "jwt":
        headers.append(("Authorization", "Bearer <any JWT>"))
    if route.api_key_required and config.api_keys:
        headers.append(("x-api-key", next(iter(config.api_keys.values()))))
    options = "".join(f" -H '{name}: {value}'" for name, value in headers)
    return f"curl{options} {url}/v2/health/ready"


# --- preparing the function --------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedFunction:
    spec: FunctionSpec
    interpreter: PythonInterpreter
    emulated: bool
    emulation_reason: str = ""


def _choose_interpreter(manifest: Manifest, python: str | None) -> tuple[PythonInterpreter, str]:
    """Returns (interpreter, reason it cannot run the zip as built or "")."""
    target_python = manifest.runtime.python
    target_arch = manifest.runtime.architecture
    if python is not None:
        interpreter = resolve_python(python)
    else:
        interpreter = find_python(target_python) or current_python()
    if interpreter.runs_lambda_wheels(target_python, target_arch):
        return interpreter, ""
    if interpreter.version != target_python:
        reason = f"the zip targets Python {target_python}, not found on this machine"
        if python is not None:
            reason = f"the zip targets Python {target_python}; --python gave {interpreter.version}"
    elif interpreter.system != "Linux":
        reason = f"the zip holds Linux binaries and this machine runs {interpreter.system}"
    else:
        reason = (
            f"the zip targets {target_arch} and this machine is {interpreter.lambda_architecture}"
        )
    return interpreter, reason


def prepare_function(
    artifacts: BuildArtifacts,
    work_dir: Path,
    *,
    config: GatewayConfig,
    python: str | None,
    cache_dir: Path,
    console: Console,
) -> PreparedFunction:
    manifest = artifacts.manifest
    warn_about_permissions(artifacts.zip_path, console)
    interpreter, emulation_reason = _choose_interpreter(manifest, python)
    emulated = bool(emulation_reason)
    if emulated:
        # A private copy: the zip's own packages get removed from it below.
        task_root = work_dir / "task"
        task_root.mkdir(parents=True)
        files, size = unpack_zip(artifacts.zip_path, task_root)
        console.print(
            f"unpacked {artifacts.zip_path} ({files} files, {size / 1e6:.1f} MB) into {task_root}"
        )
    else:
        task_root = shared_task_root(cache_dir, artifacts.zip_path, work_dir, console)
    import_path = [task_root]
    if emulated:
        requirements = strip_bundled_packages(task_root, manifest.runtime.handler)
        console.print(
            Panel(
                Text.assemble(
                    ("EMULATION BUILD. ", "bold"),
                    f"{emulation_reason}. Running the handler with Python "
                    f"{interpreter.version}/{interpreter.lambda_architecture} "
                    f"({interpreter.executable}) and the zip's {len(requirements)} packages "
                    "reinstalled from PyPI for it. This checks the handler, NOT the bundle: "
                    "it does not prove lambda.zip works on Lambda.",
                ),
                title="slimserve local: EMULATION",
                border_style="yellow",
            ),
            soft_wrap=False,  # a panel must wrap its text, or it is cut at the border
        )
        own = {handler_top_level(manifest.runtime.handler), "model"}
        if not requirements and any(
            path.is_dir() and path.name not in own and not path.name.startswith(("_", "."))
            for path in task_root.iterdir()
        ):
            console.print(
                "[yellow]no *.dist-info folders in the zip: its dependency list cannot be "
                "recovered, so its third-party packages are not reinstalled and will fail to "
                "import[/yellow]"
            )
        with console.status(
            f"installing {len(requirements)} packages for Python {interpreter.version} (emulation)"
        ):
            packages, installed_now = ensure_emulation_packages(
                cache_dir, interpreter, requirements
            )
        if requirements:
            console.print(
                f"emulation packages {'installed' if installed_now else 'cached'} in {packages}"
            )
        import_path.append(packages)
        set_read_only(task_root)

    runtime_python = interpreter.version
    runtime_arch = interpreter.lambda_architecture if emulated else manifest.runtime.architecture
    with console.status(
        f"installing {RUNTIME_CLIENT_REQUIREMENT} for Python {runtime_python}/{runtime_arch} (once)"
    ):
        runtime_dir, installed_now = ensure_runtime_client(
            cache_dir, runtime_python, runtime_arch, compile_with=interpreter
        )
    console.print(
        f"runtime client {RUNTIME_CLIENT_REQUIREMENT} for Python {runtime_python}/{runtime_arch}: "
        f"{'installed into' if installed_now else 'cached in'} {runtime_dir}"
    )
    import_path.append(runtime_dir)

    tmp_root = work_dir / "tmp"
    tmp_root.mkdir()
    spec = FunctionSpec(
        name=manifest.name,
        handler=manifest.runtime.handler,
        python=interpreter.executable,
        python_version=interpreter.version,
        task_root=task_root,
        import_path=tuple(import_path),
        memory_mb=config.memory_mb,
        timeout_s=config.function_timeout_s,
        environment=config.environment,
        tmp_root=tmp_root,
    )
    return PreparedFunction(spec, interpreter, emulated, emulation_reason)


@dataclass
class LocalFunction:
    """A prepared, started function pool plus the folder it lives in."""

    artifacts: BuildArtifacts
    prepared: PreparedFunction
    pool: FunctionPool
    work_dir: Path
    init_ms: float


def _console_log(console: Console) -> Callable[[str], None]:
    def log(line: str) -> None:
        # Text(): function output may contain [brackets] that rich would read as markup.
        console.print(Text(line, style="dim"), soft_wrap=True)

    return log


@contextmanager
def started_function(
    artifacts: BuildArtifacts,
    config: GatewayConfig,
    *,
    python: str | None,
    cache_dir: Path | None,
    console: Console,
    concurrency: int = 1,
    init_timeout_s: float = DEFAULT_INIT_TIMEOUT_S,
) -> Iterator[LocalFunction]:
    """Unpack, prepare and initialise the function; tears everything down on exit."""
    cache_dir = (cache_dir or paths.cache_dir()).resolve()
    work_dir = new_work_dir(cache_dir, artifacts.manifest.name)
    pool: FunctionPool | None = None
    try:
        prepared = prepare_function(
            artifacts,
            work_dir,
            config=config,
            python=python,
            cache_dir=cache_dir,
            console=console,
        )
        console.print(
            f"starting {' '.join(prepared.spec.command())} (cwd = task root, "
            f"{config.memory_mb} MB, timeout {config.function_timeout_s:g} s)"
        )
        pool = FunctionPool(prepared.spec, concurrency=concurrency, log=_console_log(console))
        init_ms = pool.start(init_timeout_s)
        function = LocalFunction(artifacts, prepared, pool, work_dir, init_ms)
        yield function
    finally:
        if pool is not None:
            pool.close()
        remove_tree(work_dir)


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
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    python: str | None = None,
    config: GatewayConfig | None = None,
    cache_dir: Path | None = None,
    concurrency: int = 1,
    init_timeout_s: float = DEFAULT_INIT_TIMEOUT_S,
    console: Console | None = None,
    api_type: ApiType = "http",
    template: TemplateInput | None = None,
    stack_options: Mapping[str, Any] | None = None,
    api_key: str | None = None,
    banner: bool = False,
) -> Iterator[LocalServer]:
    """Serve ``target`` on ``host:port`` (0: a free port) while the block runs.

    What is emulated: ``config``; else what ``template`` (a synthesized CloudFormation template,
    path or dict) describes; else what the stack synthesized with ``stack_options`` describes
    (``slimserve synth``'s app, cached); else ``GatewayConfig.from_manifest(manifest,
    api_type=api_type)`` (fast: no synthesis). ``api_key`` is the local value of the template's
    API keys (default: random, see ``server.config.api_keys``). ``banner`` prints what the
    gateway copies and what it does not.
    Raises LocalRunError (FunctionStartError for init failures such as a dependency missing
    from the zip) before yielding when the function cannot start.
    """
    started = time.perf_counter()
    console = console or Console(stderr=True, soft_wrap=True)
    artifacts = resolve_target(target)
    manifest = artifacts.manifest
    executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="slimserve-invoke")
    pools: list[FunctionPool] = []  # filled once the function has started

    def submit(payload: bytes, wait_s: float) -> Future[InvocationResult | None]:
        return executor.submit(pools[0].invoke, payload, wait_for_instance_s=wait_s)

    # Bind first: a busy port should fail in milliseconds, not after synthesis, unpacking and
    # init. The gateway gets its real configuration before the server starts serving.
    try:
        http = GatewayHttpServer(
            Gateway(GatewayConfig(), submit), host, port, log=_console_log(console)
        )
    except OSError as exc:
        executor.shutdown(wait=False)
        raise LocalRunError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        gateway_config = resolve_config(
            artifacts,
            config=config,
            template=template,
            stack_options=stack_options,
            api_key=api_key,
            api_type=api_type,
            cache_dir=cache_dir,
            console=console,
        )
        http.gateway = Gateway(gateway_config, submit)
        with started_function(
            artifacts,
            gateway_config,
            python=python,
            cache_dir=cache_dir,
            console=console,
            concurrency=concurrency,
            init_timeout_s=init_timeout_s,
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


def serve(
    target: Path,
    port: int,
    *,
    host: str = "127.0.0.1",
    python: str | None = None,
    config: GatewayConfig | None = None,
    cache_dir: Path | None = None,
    concurrency: int = 1,
    console: Console | None = None,
    api_type: ApiType = "http",
    template: TemplateInput | None = None,
    stack_options: Mapping[str, Any] | None = None,
    api_key: str | None = None,
) -> None:
    """Serve until Ctrl-C (or SIGTERM); then stop the function and clean up. Prints what the
    gateway emulates (see ``running`` for config / template / stack_options)."""
    console = console or Console(stderr=True, soft_wrap=True)
    stop_requested = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    try:
        with running(
            target,
            port,
            host=host,
            python=python,
            config=config,
            cache_dir=cache_dir,
            concurrency=concurrency,
            console=console,
            api_type=api_type,
            template=template,
            stack_options=stack_options,
            api_key=api_key,
            banner=True,
        ):
            console.print("press Ctrl-C to stop")
            try:
                while not stop_requested.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
        console.print("stopped")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def invoke_event(
    target: Path,
    event: Any,
    *,
    python: str | None = None,
    config: GatewayConfig | None = None,
    cache_dir: Path | None = None,
    console: Console | None = None,
    template: TemplateInput | None = None,
    stack_options: Mapping[str, Any] | None = None,
) -> Any:
    """Send one raw event (e.g. a recorded API Gateway event) through the same runtime path and
    return the function's JSON result. Raises FunctionError when the function fails. The
    function's timeout, memory and environment come from ``config`` / ``template`` /
    ``stack_options`` as in ``running`` (the gateway itself is not involved)."""
    payload = json.dumps(event).encode()
    if len(payload) > MAX_REQUEST_PAYLOAD_BYTES:
        raise LocalRunError(
            f"the event is {len(payload)} bytes; Lambda accepts at most {MAX_REQUEST_PAYLOAD_BYTES}"
        )
    artifacts = resolve_target(target)
    console = console or Console(stderr=True, soft_wrap=True)
    function_config = resolve_config(
        artifacts,
        config=config,
        template=template,
        stack_options=stack_options,
        cache_dir=cache_dir,
        console=console,
    )
    with started_function(
        artifacts,
        function_config,
        python=python,
        cache_dir=cache_dir,
        console=console,
    ) as function:
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
    serve(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 8000)
