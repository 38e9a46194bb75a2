"""``slimserve versions | rollback``: the model versions a deployed stack serves, read from AWS.

Both take the same target and stack options as ``deploy`` (only the stack name matters: the
``stack_name`` option, else ``slimserve-<model name>``); see slimserve.build.deploy.versions.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from slimserve.build.cli.common import StackArgs, err, out, stack_command


def _stack_name(stack: StackArgs) -> str:
    from slimserve.infra.options import resolve_settings

    target = stack.resolve()
    return resolve_settings(target.artifacts.manifest, target.options).stack_name


def _require_credentials(command: str) -> None:
    from slimserve.build.deploy.credentials import require_aws_credentials

    require_aws_credentials(command)


@stack_command
def versions(
    stack: StackArgs,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """List the deployed Lambda versions: model version, sha256, gate result, build time, live."""
    from slimserve.build.deploy.versions import read_versions

    stack_name = _stack_name(stack)
    _require_credentials("versions")
    found = read_versions(stack_name)
    if as_json:
        document = {
            "stack": found.stack_name,
            "function": found.function_name,
            "live": found.live_version,
            "versions": [version.as_json() for version in found.versions],
        }
        out.print_json(json.dumps(document))
        return
    table = Table(title=f"{found.stack_name}: {found.function_name}", title_justify="left")
    for column in ("version", "model", "sha256", "gate", "built", "published", "live"):
        table.add_column(column)
    for version in found.versions:
        record = version.record
        gate = "-"
        if record is not None and record.gate_metric is not None:
            gate = f"{record.gate_metric} {record.gate_value:g} {'passed' if record.gate_passed else 'FAILED'}"
        live = "" if version.live_weight == 0 else "live" if version.live_weight == 1 else f"live {version.live_weight:.0%}"
        table.add_row(
            version.number,
            f"{record.model} {record.version}" if record else "(not described)",
            record.sha256[:12] if record else "-",
            gate,
            f"{record.built_at:%Y-%m-%d %H:%M:%SZ}" if record and record.built_at else "-",
            f"{version.published:%Y-%m-%d %H:%M:%SZ}" if version.published else "-",
            live,
        )
    out.print(table)


@stack_command
def rollback(
    stack: StackArgs,
    to: Annotated[Optional[str], typer.Option("--to", help="Lambda version to serve (default: the one before live)")] = None,
) -> None:
    """Point the live alias back at an earlier version (refused if its gate failed or its model is gone)."""
    from slimserve.build.deploy.versions import rollback as roll_back

    stack_name = _stack_name(stack)
    _require_credentials("rollback")
    result = roll_back(stack_name, to)
    if result.via == "codedeploy":
        err.print(
            f"[green]rolling back[/green] {stack_name}: CodeDeploy deployment {result.deployment_id} "
            f"shifts live from version {result.from_version} to {result.to_version} (hooks and alarms "
            f"as for a deploy); follow it with `aws deploy get-deployment --deployment-id {result.deployment_id}`",
            highlight=False,
            soft_wrap=True,
        )
        return
    was = "the canary's share of its traffic removed" if result.from_version == result.to_version else f"was {result.from_version}"
    err.print(
        f"[green]rolled back[/green] {stack_name}: live now points at version {result.to_version} ({was})",
        highlight=False,
        soft_wrap=True,
    )
    if result.note:
        err.print(f"[yellow]note:[/yellow] {result.note}", highlight=False, soft_wrap=True)
