"""The stack's CloudFormation template for ``slimserve local``, synthesized once and cached.

``synthesized_template(manifest_path, options, cache_dir)`` runs ``slimserve synth``'s synthesis
(offline, no credentials) into ``<cache>/local-synth/<key>/``, keyed by the manifest's sha256,
the options, the CDK app's sources and the CDK versions; a cached template is reused.
``stack_template`` is the same for a local run: spinner, cache line and LocalRunError.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console

from slimserve.build.deploy.cdk_cli import pinned_version
from slimserve.build.errors import CdkError, LocalRunError
from slimserve.build.paths import INFRA_PACKAGE
from slimserve.handler.manifest import ManifestError

SYNTH_CACHE_FOLDER = "local-synth"


def _infra_digest() -> str:
    """The CDK app's own sources: a change there must not reuse an old template."""
    digest = hashlib.sha256()
    for path in sorted(INFRA_PACKAGE.glob("*")):
        if path.is_file() and path.suffix in (".py", ".json"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _cdk_versions() -> str:
    try:
        library = metadata.version("aws-cdk-lib")
    except metadata.PackageNotFoundError:
        library = "?"
    return f"aws-cdk-lib {library}, aws-cdk {pinned_version()}"


def synth_cache_key(manifest_path: Path, options: Any) -> str:
    """(manifest sha256, options, CDK app sources, CDK versions) -> a short hex key."""
    from slimserve.build.deploy.cdk import options_context
    from slimserve.infra.options import StackOptions, parse_options

    stack_options = options if isinstance(options, StackOptions) else parse_options(options)
    parts = {
        "manifest": hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest(),
        "options": options_context(stack_options),
        "infra": _infra_digest(),
        "cdk": _cdk_versions(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _synth_environment() -> dict[str, str]:
    """CDK_VALIDATION=false for the CLI: CDK's built-in template validation only checks, it never
    changes the template, and it is most of the synth time; cdk-nag still runs. An explicit
    CDK_VALIDATION in this process's environment wins."""
    return {"CDK_VALIDATION": os.environ.get("CDK_VALIDATION", "false")}


def synthesized_template(
    manifest_path: Path, options: Any, cache_dir: Path, *, refresh: bool = False
) -> tuple[Path, bool]:
    """(template path, True when it came from the cache). Synthesizes with the same app,
    manifest and options as ``slimserve synth`` (offline, no credentials) when not cached.
    Raises slimserve.build.errors.CdkError, slimserve.infra.options.OptionsError,
    slimserve.handler.manifest.ManifestError."""
    from slimserve.build.deploy import cdk
    from slimserve.infra.options import StackOptions, parse_options

    manifest_path = Path(manifest_path)
    stack_options = options if isinstance(options, StackOptions) else parse_options(options)
    key = synth_cache_key(manifest_path, stack_options)
    folder = Path(cache_dir) / SYNTH_CACHE_FOLDER / key
    cached = sorted(folder.glob("*.template.json")) if folder.is_dir() else []
    if cached and not refresh:
        return cached[0], True
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="synth-", dir=folder.parent))
    try:
        produced = cdk.synth(
            manifest_path, scratch / "cdk.out", stack_options, environment=_synth_environment()
        )
        folder.mkdir(exist_ok=True)
        target = folder / produced.name
        partial = folder / f".{produced.name}.{os.getpid()}"
        shutil.copyfile(produced, partial)
        os.replace(partial, target)  # atomic: a parallel run never reads half a template
        (folder / "inputs.json").write_text(
            json.dumps(
                {
                    "manifest": str(manifest_path.resolve()),
                    "options": json.loads(cdk.options_context(stack_options)),
                    "cdk": _cdk_versions(),
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        return target, False
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # the cloud assembly holds a copy of the zip


def stack_template(
    manifest_path: Path,
    stack_options: Mapping[str, Any],
    cache_dir: Path,
    console: Console | None = None,
) -> Path:
    """``synthesized_template`` for a local run: a spinner on ``console`` while the CDK runs,
    then where the template is. Raises LocalRunError (the CDK's and the options' errors)."""
    from slimserve.infra.options import OptionsError

    status = (
        console.status("synthesizing the stack template (once per manifest and options)")
        if console
        else None
    )
    try:
        if status is not None:
            status.start()
        template, cached = synthesized_template(manifest_path, stack_options, cache_dir)
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
        console.print(f"stack template {'cached in' if cached else 'synthesized into'} {template}")
    return template
