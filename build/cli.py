"""The ``slimserve`` command. It parses arguments and calls the pipeline's functions; all
behaviour lives in those modules so it can be tested without a shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="slimserve",
    help="Turn a trained model into a small, fast, safe HTTPS inference API on AWS Lambda.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()


def _fail(message: str, code: int = 1) -> None:
    # escape: messages quote patterns like [a-z0-9] that rich would take for markup.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def build(
    folder: Annotated[Path, typer.Argument(help="Example folder containing slimserve.toml")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: dist/<name>)")] = None,
    tolerance: Annotated[Optional[float], typer.Option(help="Override validation.tolerance")] = None,
    method: Annotated[Optional[str], typer.Option(help="Override compression.method")] = None,
    no_precompile: Annotated[bool, typer.Option("--no-precompile", help="Ship sources without target .pyc")] = False,
) -> None:
    """Export, optimize, compress, validate (the gate), write the manifest and pack lambda.zip."""
    from slimserve.build.errors import ConfigError, GateFailed
    from slimserve.build.pipeline.run import run_build

    overrides: dict[str, object] = {}
    if tolerance is not None:
        overrides["validation.tolerance"] = tolerance
    if method is not None:
        overrides["compression.method"] = method
    try:
        result = run_build(folder, out=out_dir, overrides=overrides, precompile_bytecode=not no_precompile)
    except ConfigError as exc:
        _fail(str(exc), 2)
    except GateFailed as exc:
        _fail(str(exc), 3)
    else:
        err.print(f"[green]built[/green] {result.out} ({escape(result.gate.explain())})", highlight=False, soft_wrap=True)
        style = "yellow" if result.verdict_holds_only_here else "dim"
        err.print(f"[{style}]{escape(result.verdict_scope)}[/{style}]", highlight=False, soft_wrap=True)


TemplateOption = Annotated[
    Optional[Path], typer.Option("--template", help="Emulate this synthesized CloudFormation template instead of synthesizing one")
]
NoTemplateOption = Annotated[
    bool, typer.Option("--no-template", help="Do not synthesize (no Node needed): follow the manifest's defaults, not the stack's template")
]


def _emulation_inputs(
    target: Path, template: Optional[Path], no_template: bool, option: list[str], flags: dict[str, object]
) -> dict[str, object]:
    """What `local` / `invoke --event` emulate: --template, else the template `slimserve synth`
    would produce for the same target and options (synthesized once, cached), else (with
    --no-template) the manifest's defaults."""
    if template is not None and no_template:
        _fail("give --template PATH or --no-template, not both", 2)
    if template is not None:
        return {"template": template}
    if no_template:
        err.print(
            "[yellow]--no-template: the local run follows the manifest's defaults (an open HTTP API), "
            "not the template the stack deploys[/yellow]",
            highlight=False,
        )
        return {}
    _, options = _stack_inputs(target, option, flags)
    return {"stack_options": options}


@app.command()
def local(
    target: Annotated[Path, typer.Argument(help="Example folder or build output folder")] = Path("examples/digits"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 8080,
    python: Annotated[Optional[str], typer.Option(help="Interpreter to run the function with")] = None,
    template: TemplateOption = None,
    no_template: NoTemplateOption = False,
    option: Annotated[list[str], typer.Option("--option", "-o", help="Stack option KEY=VALUE, as for synth (repeatable)")] = [],  # noqa: B006
    api: Annotated[Optional[str], typer.Option(help="http (default) or rest, as for synth")] = None,
    auth: Annotated[Optional[str], typer.Option(help="iam (default), jwt, api_key or none, as for synth")] = None,
    package: Annotated[Optional[str], typer.Option(help="zip (default), s3 or image, as for synth")] = None,
    api_key: Annotated[
        Optional[str], typer.Option("--api-key", help="Local value of the stack's API keys (default: random, printed)", envvar="SLIMSERVE_LOCAL_API_KEY")
    ] = None,
) -> None:
    """Serve the built lambda.zip on 127.0.0.1 the way the stack's Lambda and API Gateway would
    (the API shape, auth, stage, limits and function settings come from the stack's template)."""
    from slimserve.build.errors import LocalRunError
    from slimserve.build.local.run import serve

    inputs = _emulation_inputs(target, template, no_template, option, {"api": api, "auth": auth, "package": package})
    try:
        serve(target, port, python=python, api_key=api_key, **inputs)  # type: ignore[arg-type]
    except LocalRunError as exc:
        _fail(str(exc))


@app.command()
def invoke(
    target: Annotated[Path, typer.Argument(help="Example folder or build output folder")] = Path("examples/digits"),
    event: Annotated[Optional[Path], typer.Option(help="A recorded Lambda event JSON file")] = None,
    url: Annotated[Optional[str], typer.Option(help="A deployed API's base URL")] = None,
    path: Annotated[str, typer.Option(help="Request path for --url")] = "/v2",
    body: Annotated[Optional[Path], typer.Option(help="JSON body file for --url (POST)")] = None,
    api_key: Annotated[Optional[str], typer.Option(help="API key (REST API with keys)", envvar="SLIMSERVE_API_KEY")] = None,
    iam: Annotated[bool, typer.Option("--iam", help="Sign the request with SigV4 (IAM auth)")] = False,
    region: Annotated[Optional[str], typer.Option(help="AWS region for SigV4 (default: from the URL)")] = None,
    template: TemplateOption = None,
    no_template: NoTemplateOption = False,
    option: Annotated[list[str], typer.Option("--option", "-o", help="Stack option KEY=VALUE for --event, as for synth")] = [],  # noqa: B006
) -> None:
    """Send one request: a recorded event through the local runtime (function timeout, memory
    and environment from the stack's template), or HTTP to a URL."""
    if (event is None) == (url is None):
        _fail("give exactly one of --event FILE or --url URL", 2)
    if event is not None:
        from slimserve.build.errors import LocalRunError
        from slimserve.build.local.run import invoke_event

        try:
            payload = json.loads(event.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            _fail(f"cannot read event {event}: {exc}", 2)
        inputs = _emulation_inputs(target, template, no_template, option, {})
        try:
            result = invoke_event(target, payload, **inputs)  # type: ignore[arg-type]
        except LocalRunError as exc:
            _fail(str(exc))
        out.print_json(data=result)
        return
    from slimserve.build.deploy.remote import call_url
    from slimserve.build.errors import RemoteError

    try:
        response = call_url(
            url or "", path=path, body=body.read_bytes() if body else None, api_key=api_key, iam=iam, region=region
        )
    except RemoteError as exc:
        _fail(str(exc))
    out.print(response.summary(), highlight=False)


@app.command()
def bench(
    examples: Annotated[
        Optional[list[Path]], typer.Argument(help="Example folders (default, in a checkout: examples/digits and examples/minilm)")
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Few iterations (CI smoke run); BENCHMARKS.md only in --out")] = False,
    out_dir: Annotated[
        Optional[Path],
        typer.Option("--out", help="Folder for results.json, plots, BENCHMARKS.md (default: <checkout>/dist/bench)"),
    ] = None,
) -> None:
    """Run the benchmark suite side by side: model speed, size, cold start, warm overhead, load."""
    from slimserve.build.bench.suite import bench_failed, run_bench
    from slimserve.build.errors import SlimserveBuildError

    try:
        results = run_bench(examples, out_dir, quick=quick, console=err)
    except SlimserveBuildError as exc:
        _fail(str(exc), exc.exit_code)
    if bench_failed(results):
        _fail("some benchmark sections failed or saw errors: see results.json")


# --------------------------------------------------------------------------- deploying

_OPTION_HELP = "Stack option KEY=VALUE (repeatable), e.g. api=rest auth=api_key package=s3 snapstart=false"


def _stack_inputs(target: Path, option: list[str], flags: dict[str, object]) -> tuple[Path, dict[str, object]]:
    """The manifest of a built target and the stack options (build/deploy/targets.py), or exit 2."""
    from slimserve.build.deploy.targets import stack_inputs
    from slimserve.build.errors import TargetError

    try:
        return stack_inputs(target, option, flags)
    except TargetError as exc:
        _fail(str(exc), 2)
        raise  # unreachable: _fail exits


def _parse_value(raw: str) -> object:
    from slimserve.build.deploy.targets import parse_value

    return parse_value(raw)


def _cdk(action: str, target: Path, out_dir: Path, option: list[str], flags: dict[str, object], **extra: object) -> None:
    from slimserve.build.deploy import cdk
    from slimserve.handler.manifest import ManifestError
    from slimserve.infra.options import OptionsError

    manifest_path, options = _stack_inputs(target, option, flags)
    try:
        if action == "synth":
            template = cdk.synth(manifest_path, out_dir, options)
            err.print(f"[green]synthesized[/green] {template}", highlight=False)
        else:
            getattr(cdk, action)(manifest_path, out_dir, options, **extra)
    except (ManifestError, OptionsError) as exc:
        _fail(str(exc), 2)
    except cdk.CdkError as exc:
        _fail(str(exc))


TargetArg = Annotated[Path, typer.Argument(help="Example folder or build output folder")]
OutOption = Annotated[Path, typer.Option("--out", help="Cloud assembly folder")]
OptionOption = Annotated[list[str], typer.Option("--option", "-o", help=_OPTION_HELP)]
ApiOption = Annotated[Optional[str], typer.Option(help="http (default) or rest")]
AuthOption = Annotated[Optional[str], typer.Option(help="iam (default), jwt, api_key or none (anonymous: warned)")]
PackageOption = Annotated[Optional[str], typer.Option(help="zip (default), s3 or image")]


@app.command()
def synth(
    target: TargetArg = Path("examples/digits"),
    out_dir: OutOption = Path("cdk.out"),
    option: OptionOption = [],  # noqa: B006  (typer reads the default)
    api: ApiOption = None,
    auth: AuthOption = None,
    package: PackageOption = None,
) -> None:
    """Synthesize the CloudFormation template offline (no credentials), checked by cdk-nag."""
    _cdk("synth", target, out_dir, option, {"api": api, "auth": auth, "package": package})


@app.command()
def deploy(
    target: TargetArg = Path("examples/digits"),
    out_dir: OutOption = Path("cdk.out"),
    option: OptionOption = [],  # noqa: B006
    api: ApiOption = None,
    auth: AuthOption = None,
    package: PackageOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask to approve security changes")] = False,
) -> None:
    """Deploy the stack with your AWS credentials (canary rollout of a new version)."""
    _cdk("deploy", target, out_dir, option, {"api": api, "auth": auth, "package": package},
         require_approval="never" if yes else "broadening")


@app.command()
def diff(
    target: TargetArg = Path("examples/digits"),
    out_dir: OutOption = Path("cdk.out"),
    option: OptionOption = [],  # noqa: B006
    api: ApiOption = None,
    auth: AuthOption = None,
    package: PackageOption = None,
) -> None:
    """Show what a deploy would change."""
    _cdk("diff", target, out_dir, option, {"api": api, "auth": auth, "package": package})


@app.command()
def destroy(
    target: TargetArg = Path("examples/digits"),
    out_dir: OutOption = Path("cdk.out"),
    option: OptionOption = [],  # noqa: B006
    force: Annotated[bool, typer.Option("--force", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete the stack (logs and the versioned model bucket are retained)."""
    _cdk("destroy", target, out_dir, option, {}, force=force)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
