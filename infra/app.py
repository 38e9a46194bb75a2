"""CDK app entry point: ``python -m slimserve.infra.app`` (the CDK CLI runs it; see build/deploy/cdk.py).

Context:
- ``manifest`` (required): path to ``dist/<name>/manifest.json``; lambda.zip is beside it.
- ``options`` (optional): StackOptions as a JSON object string.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from aws_cdk import App

from slimserve.handler.manifest import ManifestError, load_manifest
from slimserve.infra.nag import apply_packs
from slimserve.infra.options import (
    CONTEXT_MANIFEST,
    CONTEXT_OPTIONS,
    OptionsError,
    StackOptions,
    parse_options,
)
from slimserve.infra.stack import SlimserveStack

# The feature flags `cdk init` would write into cdk.json for aws-cdk-lib 2.275.0 (copied from
# its recommended-feature-flags.json). Given to App(context=...) rather than kept in cdk.json
# so that tests building the App directly synthesize the same template as the CLI; context
# from the CLI or cdk.json still wins.
FEATURE_FLAGS: dict[str, Any] = json.loads(
    (Path(__file__).with_name("feature_flags.json")).read_text(encoding="utf-8")
)


def build_app(
    manifest_path: Path,
    options: StackOptions,
    *,
    outdir: str | None = None,
    validation: bool | None = None,
) -> tuple[App, SlimserveStack]:
    """The app with one SlimserveStack and the cdk-nag packs applied (they run at synth)."""
    manifest = load_manifest(manifest_path)
    app = App(
        context=FEATURE_FLAGS,
        outdir=outdir,
        builtin_cloud_formation_validation=validation,
    )
    stack = SlimserveStack(
        app, manifest=manifest, bundle_dir=manifest_path.parent.resolve(), options=options
    )
    apply_packs(app)
    return app, stack


def main() -> int:
    probe = App()  # only to read the context the CLI passed (-c key=value, cdk.json)
    manifest = probe.node.try_get_context(CONTEXT_MANIFEST)
    if not manifest:
        usage = "-c manifest=dist/<name>/manifest.json"
        print(f"error: context '{CONTEXT_MANIFEST}' is required: {usage}", file=sys.stderr)
        return 2
    try:
        options = parse_options(probe.node.try_get_context(CONTEXT_OPTIONS))
        app, _ = build_app(Path(manifest), options)
    except (ManifestError, OptionsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        app.synth()
    except RuntimeError as exc:  # jsii raises synth failures (e.g. ValidationFailed) as this
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        print(
            f"error: synth failed: {first_line}\n"
            "Fix the findings listed above, or acknowledge them with a reason in infra/nag.py.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
