"""The ``slimserve`` command. It parses arguments and calls the pipeline's functions; all
behaviour lives in those modules so it can be tested without a shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

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
    err.print(f"[red]error:[/red] {message}", highlight=False)
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
        err.print(f"[green]built[/green] {result.out} ({result.gate.explain()})", highlight=False)


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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
