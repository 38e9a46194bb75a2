"""``slimserve synth | deploy | diff | destroy``: thin wrappers around the pinned CDK CLI.

The CLI is the npm ``aws-cdk`` package pinned (exact version) in this package's
``npm/package-lock.json``, installed into the cache on first use (``cdk_cli``). It runs in its
install folder (no ``cdk.json`` there: nothing but the arguments below configures it). The CDK
app is given with ``--app``: ``python -m slimserve.infra.app`` run by this interpreter, with the
manifest path and the stack options as context (``-c manifest=... -c options=<json>``).

``synth`` is offline by construction: the CLI is started without AWS credentials or a
profile and with the EC2 metadata service disabled, so it cannot look up an account or
reach any AWS endpoint. ``deploy``, ``diff`` and ``destroy`` first synthesize (cdk-nag and
validation run there), then operate on exactly that cloud assembly with the caller's
credentials.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from slimserve.build.deploy.cdk_cli import cdk_executable, install_dir
from slimserve.build.errors import CdkError
from slimserve.handler.manifest import load_manifest

# Not slimserve.infra.app: importing aws_cdk starts a jsii Node process; the CLI does that itself.
from slimserve.infra.options import (
    CONTEXT_MANIFEST,
    CONTEXT_OPTIONS,
    StackOptions,
    parse_options,
    resolve_settings,
)

# Always: no telemetry, no "newer version" check, and quiet jsii on Node 20.
CLI_ENV = {
    "CDK_DISABLE_CLI_TELEMETRY": "true",
    "CDK_DISABLE_VERSION_CHECK": "true",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
}
# Variables through which the AWS SDK in the CLI could find credentials or an endpoint.
_AWS_CREDENTIAL_ENV_PREFIXES = ("AWS_",)

RequireApproval = Literal["never", "any-change", "broadening"]
OptionsInput = StackOptions | Mapping[str, Any] | str | None


def synth(
    manifest_path: Path,
    out_dir: Path,
    options: OptionsInput = None,
    *,
    environment: Mapping[str, str] | None = None,
) -> Path:
    """Synthesize the stack into ``out_dir`` (a cloud assembly); returns the template path.

    Runs cdk-nag (AwsSolutions + Serverless) and CDK's template validation: any unacknowledged
    finding fails the synth with the findings printed. ``environment``: variables set for the
    CLI on top of the offline environment (this process's own is never changed).
    """
    manifest_path, stack_options, stack_name = _prepare(manifest_path, options)
    _run_cli(
        ["synth", "--quiet", *_app_args(manifest_path, stack_options, out_dir)],
        env=_offline_env() | dict(environment or {}),
    )
    template = out_dir / f"{stack_name}.template.json"
    if not template.is_file():
        raise CdkError(f"cdk synth finished but wrote no template at {template}")
    return template


def deploy(
    manifest_path: Path,
    out_dir: Path,
    options: OptionsInput = None,
    *,
    require_approval: RequireApproval = "broadening",
    extra_args: Sequence[str] = (),
) -> None:
    """Synthesize, then deploy that cloud assembly with the caller's AWS credentials.

    ``require_approval="broadening"`` (the CDK default) asks before IAM or security-group
    changes that widen access; use "never" only in CI.
    """
    stack_name = _synth_then_name(manifest_path, out_dir, options)
    _run_cli(
        [
            "deploy",
            stack_name,
            "--app",
            str(out_dir.resolve()),
            "--require-approval",
            require_approval,
            *extra_args,
        ],
        env=_caller_env(),
    )


def diff(
    manifest_path: Path,
    out_dir: Path,
    options: OptionsInput = None,
    *,
    extra_args: Sequence[str] = (),
) -> None:
    """Synthesize, then show what deploying would change (needs the caller's credentials)."""
    stack_name = _synth_then_name(manifest_path, out_dir, options)
    _run_cli(["diff", stack_name, "--app", str(out_dir.resolve()), *extra_args], env=_caller_env())


def destroy(
    manifest_path: Path,
    out_dir: Path,
    options: OptionsInput = None,
    *,
    force: bool = False,
    extra_args: Sequence[str] = (),
) -> None:
    """Delete the stack. Retained resources (log groups, model bucket) stay, by design."""
    stack_name = _synth_then_name(manifest_path, out_dir, options)
    _run_cli(
        [
            "destroy",
            stack_name,
            "--app",
            str(out_dir.resolve()),
            *(["--force"] if force else []),
            *extra_args,
        ],
        env=_caller_env(),
    )


def cli_command(args: Sequence[str]) -> list[str]:
    return [str(cdk_executable()), *args, "--no-notices"]


def _prepare(manifest_path: Path, options: OptionsInput) -> tuple[Path, StackOptions, str]:
    # Check the manifest and options here first: their errors are clearer than a CLI failure.
    manifest_path = manifest_path.resolve()
    stack_options = options if isinstance(options, StackOptions) else parse_options(options)
    settings = resolve_settings(load_manifest(manifest_path), stack_options)
    return manifest_path, stack_options, settings.stack_name


def _synth_then_name(manifest_path: Path, out_dir: Path, options: OptionsInput) -> str:
    template = synth(manifest_path, out_dir, options)
    return template.name.removesuffix(".template.json")


def _app_args(manifest_path: Path, options: StackOptions, out_dir: Path) -> list[str]:
    # The CLI runs --app through a shell: quote the interpreter path.
    app = f"{shlex.quote(sys.executable)} -m slimserve.infra.app"
    return [
        "--app",
        app,
        "--output",
        str(out_dir.resolve()),
        "--context",
        f"{CONTEXT_MANIFEST}={manifest_path}",
        "--context",
        f"{CONTEXT_OPTIONS}={options_context(options)}",
    ]


def options_context(options: StackOptions) -> str:
    """Only the options that differ from the defaults, as compact JSON."""
    return json.dumps(options.model_dump(mode="json", exclude_defaults=True), separators=(",", ":"))


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_AWS_CREDENTIAL_ENV_PREFIXES)}
    # No shared config/credentials files and no instance metadata: the CLI finds no
    # credentials, so it never calls STS to look up an account (synth does not need one).
    env |= {
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return env | CLI_ENV


def _caller_env() -> dict[str, str]:
    return dict(os.environ) | CLI_ENV


def _run_cli(args: Sequence[str], *, env: Mapping[str, str]) -> None:
    command = cli_command(args)
    # Output streams to the terminal: deploys are long and cdk-nag findings must be read.
    # In the CLI's own folder: no cdk.json of the caller's current folder can add context.
    result = subprocess.run(command, cwd=install_dir(), env=dict(env), check=False)
    if result.returncode != 0:
        raise CdkError(f"cdk {args[0]} failed (exit code {result.returncode})")
