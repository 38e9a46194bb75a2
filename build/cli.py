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
    from build.config import ConfigError
    from build.pipeline import GateFailed, run_build

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


@app.command()
def local(
    target: Annotated[Path, typer.Argument(help="Example folder or build output folder")] = Path("examples/digits"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 8080,
    python: Annotated[Optional[str], typer.Option(help="Interpreter to run the function with")] = None,
) -> None:
    """Serve the built lambda.zip on 127.0.0.1 the way Lambda and API Gateway would."""
    from build.local import LocalRunError, serve

    try:
        serve(target, port, python=python)
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
) -> None:
    """Send one request: a recorded event through the local runtime, or HTTP to a URL."""
    if (event is None) == (url is None):
        _fail("give exactly one of --event FILE or --url URL", 2)
    if event is not None:
        from build.local import LocalRunError, invoke_event

        try:
            payload = json.loads(event.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            _fail(f"cannot read event {event}: {exc}", 2)
        try:
            result = invoke_event(target, payload)
        except LocalRunError as exc:
            _fail(str(exc))
        out.print_json(data=result)
        return
    from build.remote import RemoteError, call_url

    try:
        response = call_url(
            url or "", path=path, body=body.read_bytes() if body else None, api_key=api_key, iam=iam, region=region
        )
    except RemoteError as exc:
        _fail(str(exc))
    out.print(response.summary(), highlight=False)


@app.command()
def bench(
    examples: Annotated[Optional[list[Path]], typer.Argument(help="Example folders (default: digits and minilm)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Fewer iterations (what CI runs)")] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Where results.json and the plots go")] = Path("dist/bench"),
) -> None:
    """Benchmark slimserve against PyTorch eager and ONNX Runtime fp32, side by side."""
    from build.bench import run_bench

    chosen = examples or [path for path in (Path("examples/digits"), Path("examples/minilm")) if path.is_dir()]
    run_bench(chosen, out_dir, quick=quick, console=err)


# --------------------------------------------------------------------------- deploying

_OPTION_HELP = "Stack option KEY=VALUE (repeatable), e.g. api=rest auth=api_key package=s3 snapstart=false"


def _stack_inputs(target: Path, option: list[str], flags: dict[str, object]) -> tuple[Path, dict[str, object]]:
    """The manifest of a built target and the stack options: [deploy] in the example's
    slimserve.toml, then --option KEY=VALUE, then the named flags (explicit beats file)."""
    import tomllib

    from build.local import LocalRunError, resolve_target

    try:
        artifacts = resolve_target(target)
    except LocalRunError as exc:
        _fail(str(exc), 2)
    options: dict[str, object] = {}
    config_file = target / "slimserve.toml"
    if config_file.is_file():
        options.update(tomllib.loads(config_file.read_text(encoding="utf-8")).get("deploy", {}))
    for item in option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--option takes KEY=VALUE, got {item!r}", 2)
        options[key.strip()] = _parse_value(value.strip())
    options.update({key: value for key, value in flags.items() if value is not None})
    return artifacts.folder / "manifest.json", options


def _parse_value(raw: str) -> object:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw


def _cdk(action: str, target: Path, out_dir: Path, option: list[str], flags: dict[str, object], **extra: object) -> None:
    from build import cdk
    from handler.manifest import ManifestError
    from infra.options import OptionsError

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
