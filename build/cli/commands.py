"""``slimserve build | local | invoke | bench``. The commands parse arguments and call the
modules that do the work; errors propagate to one handler (slimserve.build.cli.main) that turns
them into one line and an exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from slimserve.build.cli.common import (
    DEFAULT_TARGET,
    ApiOption,
    AuthOption,
    NoTemplateOption,
    OptionOption,
    PackageOption,
    StackArgs,
    TargetArg,
    TemplateOption,
    err,
    fail,
    out,
)
from slimserve.build.errors import EXIT_FAILURE


def build(
    folder: Annotated[Path, typer.Argument(help="Project folder containing slimserve.toml")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: <folder>/dist/<name>)")] = None,
    tolerance: Annotated[Optional[float], typer.Option(help="Override validation.tolerance")] = None,
    method: Annotated[Optional[str], typer.Option(help="Override compression.method")] = None,
    no_precompile: Annotated[bool, typer.Option("--no-precompile", help="Ship sources without target .pyc")] = False,
    keep_work: Annotated[
        bool, typer.Option("--keep-work", help="Keep the intermediate models in <out>/work/ (default: only the fp32 export stays)")
    ] = False,
    sign_key: Annotated[
        Optional[Path],
        typer.Option(
            "--sign-key",
            help="EC private key (PEM) to sign the model, manifest and lambda.zip with (OpenSSF model signing, offline)",
            envvar="SLIMSERVE_SIGNING_KEY",
        ),
    ] = None,
) -> None:
    """Export, optimize, compress, validate (the gate), write the manifest and pack lambda.zip."""
    from slimserve.build.pipeline.run import run_build

    if sign_key is not None and not sign_key.is_file():
        fail(f"--sign-key {sign_key}: no such file")

    overrides: dict[str, object] = {}
    if tolerance is not None:
        overrides["validation.tolerance"] = tolerance
    if method is not None:
        overrides["compression.method"] = method
    result = run_build(folder, out=out_dir, overrides=overrides, precompile_bytecode=not no_precompile, keep_work=keep_work)
    err.print(f"[green]built[/green] {result.out} ({escape(result.gate.explain())})", highlight=False, soft_wrap=True)
    style = "yellow" if result.verdict_holds_only_here else "dim"
    err.print(f"[{style}]{escape(result.verdict_scope)}[/{style}]", highlight=False, soft_wrap=True)
    if sign_key is not None:
        _sign(folder, result.out, sign_key)


def _sign(project: Path, out_dir: Path, sign_key: Path) -> None:
    """Sign the build, then check it against the project's [signing] public key when there is
    one: a key pair that does not match fails here, not at the next deploy."""
    from slimserve.build.config import load_config
    from slimserve.build.deploy.signing import sign_bundle, verify_bundle
    from slimserve.handler.manifest import MANIFEST_FILE, load_manifest

    manifest = load_manifest(out_dir / MANIFEST_FILE)
    signature = sign_bundle(out_dir, manifest, sign_key)
    config = load_config(project)
    if config.signing.public_key:
        verify_bundle(out_dir, manifest, config.path(config.signing.public_key))
    err.print(f"[green]signed[/green] {signature}", highlight=False, soft_wrap=True)


def _emulation_inputs(stack: StackArgs, template: Optional[Path], no_template: bool) -> dict[str, object]:
    """What `local` / `invoke --event` emulate: --template, else the template `slimserve synth`
    would produce for the same target and options (synthesized once, cached), else (with
    --no-template) the manifest's defaults. Stack options a mode cannot honour are refused."""
    if template is not None and no_template:
        fail("give --template PATH or --no-template, not both")
    mode = "--template" if template is not None else "--no-template" if no_template else None
    if mode is not None and stack.given():
        fail(
            f"{mode} cannot honour {', '.join(stack.given())}: the "
            f"{'template given' if template is not None else 'manifest'} decides the API; drop "
            f"them, or drop {mode} to emulate the stack those options synthesize"
        )
    if template is not None:
        if not template.is_file():
            fail(f"--template {template}: no such file")
        return {"template": template}
    if no_template:
        err.print(
            "[yellow]--no-template: the local run follows the manifest's defaults (an open HTTP API), "
            "not the template the stack deploys[/yellow]",
            highlight=False,
        )
        return {}
    return {"stack_options": stack.resolve().options}


def local(
    target: TargetArg = DEFAULT_TARGET,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 8080,
    python: Annotated[Optional[str], typer.Option(help="Interpreter to run the function with")] = None,
    template: TemplateOption = None,
    no_template: NoTemplateOption = False,
    option: OptionOption = [],  # noqa: B006  (typer reads the default)
    api: ApiOption = None,
    auth: AuthOption = None,
    package: PackageOption = None,
    api_key: Annotated[
        Optional[str], typer.Option("--api-key", help="Local value of the stack's API keys (default: random, printed)", envvar="SLIMSERVE_LOCAL_API_KEY")
    ] = None,
) -> None:
    """Serve the built lambda.zip on 127.0.0.1 the way the stack's Lambda and API Gateway would.

    The API shape, auth, stage, limits and function settings come from the stack's template."""
    from slimserve.build.local.options import LocalRunOptions
    from slimserve.build.local.run import serve

    # `slimserve local --auth none` is how you curl your model on 127.0.0.1: nothing is exposed,
    # so the acknowledgment and the cost ceiling a deployed anonymous API needs are implied here
    # (as lowest-precedence values: [deploy] and -o still win).
    local_anonymous = {"allow_anonymous": True, "reserved_concurrency": 10} if auth == "none" else None
    stack = StackArgs(target, option, api=api, auth=auth, package=package, defaults=local_anonymous)
    inputs = _emulation_inputs(stack, template, no_template)
    serve(target, LocalRunOptions(port=port, python=python, api_key=api_key, **inputs))  # type: ignore[arg-type]


def invoke(
    target: TargetArg = DEFAULT_TARGET,
    event: Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False, help="A recorded Lambda event JSON file")] = None,
    url: Annotated[Optional[str], typer.Option(help="A deployed API's base URL")] = None,
    path: Annotated[Optional[str], typer.Option(help="Request path for --url (default: /v2)")] = None,
    body: Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False, help="JSON body file for --url (POST)")] = None,
    api_key: Annotated[Optional[str], typer.Option(help="API key for --url (REST API with keys)", envvar="SLIMSERVE_API_KEY")] = None,
    iam: Annotated[bool, typer.Option("--iam", help="Sign the --url request with SigV4 (IAM auth)")] = False,
    region: Annotated[Optional[str], typer.Option(help="AWS region for SigV4 (default: from the URL)")] = None,
    template: TemplateOption = None,
    no_template: NoTemplateOption = False,
    option: Annotated[list[str], typer.Option("--option", "-o", help="Stack option KEY=VALUE for --event, as for synth")] = [],  # noqa: B006
) -> None:
    """Send one request: a recorded event through the local runtime, or HTTP to a deployed URL.

    --event: the function's timeout, memory and environment come from the stack's template.
    --url: exits 1 unless the API answers 2xx."""
    if (event is None) == (url is None):
        fail("give exactly one of --event FILE or --url URL")
    url_only = {"--path": path, "--body": body, "--iam": iam or None, "--region": region}
    event_only = {"--template": template, "--no-template": no_template or None, "--option": option or None}
    if event is not None:
        _refuse([name for name, value in url_only.items() if value is not None], "--event")
        from slimserve.build.local.options import LocalRunOptions
        from slimserve.build.local.run import invoke_event

        try:
            payload = json.loads(event.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            fail(f"cannot read event {event}: {exc}")
        inputs = _emulation_inputs(StackArgs(target, option), template, no_template)
        result = invoke_event(target, payload, LocalRunOptions(**inputs))  # type: ignore[arg-type]
        out.print_json(data=result)
        return
    _refuse([name for name, value in event_only.items() if value is not None], "--url")
    from slimserve.build.deploy.remote import call_url

    response = call_url(
        url or "", path=path or "/v2", body=body.read_bytes() if body else None, api_key=api_key, iam=iam, region=region
    )
    out.print(response.summary(), highlight=False)
    if not response.ok:
        fail(f"the API answered HTTP {response.status} (not 2xx)", EXIT_FAILURE)


def _refuse(given: list[str], mode: str) -> None:
    if given:
        other = "--url" if mode == "--event" else "--event"
        fail(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to {other}, not to {mode}")


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

    results = run_bench(examples, out_dir, quick=quick, console=err)
    if bench_failed(results):
        fail("some benchmark sections failed or saw errors: see results.json", EXIT_FAILURE)
