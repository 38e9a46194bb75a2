"""``slimserve synth | deploy | diff | destroy``: the CDK app through the pinned CDK CLI.

The four commands share their parameters (``stack_command``): the target, ``--out``,
``--option`` and the named flags, resolved with the project's ``[deploy]`` table
(slimserve.build.deploy.targets). Everything that needs AWS checks for credentials first.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from slimserve.build.cli.common import StackArgs, err, fail, stack_command

if TYPE_CHECKING:
    from slimserve.build.deploy.targets import StackTarget


@stack_command
def synth(stack: StackArgs) -> None:
    """Synthesize the CloudFormation template offline (no credentials), checked by cdk-nag."""
    from slimserve.build.deploy import cdk

    target = stack.resolve()
    template = cdk.synth(target.manifest_path, _assembly(stack, target), target.options)
    err.print(f"[green]synthesized[/green] {template}", highlight=False, soft_wrap=True)


@stack_command
def deploy(
    stack: StackArgs,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask to approve security changes (needed without a terminal)")] = False,
    verify_key: Annotated[
        Optional[Path],
        typer.Option("--verify-key", help="Public key the bundle's signature must verify against (default: [signing] public_key)"),
    ] = None,
) -> None:
    """Deploy the stack with your AWS credentials (canary rollout of a new version)."""
    from slimserve.build.deploy import cdk
    from slimserve.build.errors import CdkError

    target = stack.resolve()
    _verify_signature(target, verify_key)
    _require_credentials("deploy")
    try:
        cdk.deploy(target.manifest_path, _assembly(stack, target), target.options, require_approval="never" if yes else "broadening")
    except CdkError as exc:
        if yes or sys.stdin.isatty():
            raise
        # The CLI stops when a change widens access and nobody can approve it.
        raise CdkError(f"{exc}; without a terminal, security changes cannot be approved: pass --yes to approve them") from exc


@stack_command
def diff(stack: StackArgs) -> None:
    """Show what a deploy would change (needs your AWS credentials)."""
    from slimserve.build.deploy import cdk

    target = stack.resolve()
    _require_credentials("diff")
    cdk.diff(target.manifest_path, _assembly(stack, target), target.options)


@stack_command
def destroy(
    stack: StackArgs,
    force: Annotated[bool, typer.Option("--force", help="Do not ask for confirmation (needed without a terminal)")] = False,
) -> None:
    """Delete the stack (logs and the versioned model bucket are retained)."""
    from slimserve.build.deploy import cdk

    target = stack.resolve()
    if not force and not sys.stdin.isatty():
        fail("destroy asks for confirmation and no terminal is attached: pass --force to delete the stack without asking")
    _require_credentials("destroy")
    cdk.destroy(target.manifest_path, _assembly(stack, target), target.options, force=force)


def _verify_signature(target: StackTarget, verify_key: Path | None) -> None:
    """With a public key (flag, else [signing] public_key): refuse an unsigned or altered
    bundle before anything is synthesized or uploaded."""
    from slimserve.build.deploy.signing import verify_bundle
    from slimserve.build.paths import SIGNATURE_FILE

    public_key = verify_key or target.signing_public_key
    folder = target.artifacts.folder
    if public_key is None:
        if (folder / SIGNATURE_FILE).is_file():
            err.print(
                f"[yellow]note:[/yellow] {folder} is signed but no public key is configured: not "
                "verified (--verify-key or [signing] public_key)",
                highlight=False,
                soft_wrap=True,
            )
        return
    verify_bundle(folder, target.artifacts.manifest, public_key)
    err.print(f"[green]signature verified[/green] against {public_key}", highlight=False, soft_wrap=True)


def _assembly(stack: StackArgs, target: StackTarget) -> Path:
    """--out, else the cloud assembly beside the build it was synthesized from."""
    return stack.out_dir if stack.out_dir is not None else target.artifacts.folder / "cdk.out"


def _require_credentials(command: str) -> None:
    from slimserve.build.deploy.credentials import require_aws_credentials

    require_aws_credentials(command)
