"""Published versions: each build's version describes its model (name, version, sha256, gate
result, build time) for `slimserve versions`, and old versions are retained for rollback."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slimserve.infra.version_record import parse_description

Synth = Callable[..., Any]
BUILT = datetime(2026, 11, 30, 19, 0, 0, tzinfo=UTC)


def synth_bundle(
    make_bundle: Callable[..., Path], outdir: Path, *, validation: dict[str, Any] | None, built: datetime
) -> tuple[str, dict[str, Any]]:
    """(logical id, resource) of the function version the stack of such a build publishes."""
    from slimserve.infra.app import build_app
    from slimserve.infra.options import StackOptions

    manifest_path = make_bundle()
    if validation is not None:
        manifest = json.loads(manifest_path.read_text())
        manifest_path.write_text(json.dumps({**manifest, "validation": validation}))
    os.utime(manifest_path.parent / "lambda.zip", (built.timestamp(), built.timestamp()))
    app, stack = build_app(manifest_path, StackOptions(), outdir=str(outdir), validation=False)
    template = app.synth().get_stack_by_name(stack.stack_name).template
    versions = {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Version"}
    ((logical_id, version),) = versions.items()
    function = next(r for k, r in template["Resources"].items() if k.startswith("InferenceFunction") and r["Type"] == "AWS::Lambda::Function")
    assert function["Properties"]["Description"] == version["Properties"]["Description"]
    return logical_id, version


GATE = {"metric": "accuracy", "reference": 0.98, "candidate": 0.986111, "tolerance": 0.01, "passed": True, "samples": 360}


def test_the_version_describes_the_model_and_is_retained(make_bundle: Callable[..., Path], tmp_path: Path) -> None:
    _, version = synth_bundle(make_bundle, tmp_path / "a", validation=GATE, built=BUILT)
    description = version["Properties"]["Description"]
    record = parse_description(description)
    assert record is not None
    manifest = json.loads((tmp_path / "dist" / "digits" / "manifest.json").read_text())
    assert (record.model, record.version, record.sha256) == ("digits", "1", manifest["model"]["sha256"])
    assert (record.gate_metric, record.gate_value, record.gate_passed) == ("accuracy", 0.986111, True)
    assert record.built_at == BUILT
    assert len(description) <= 256
    # Old versions stay for `slimserve rollback` (CDK's default would delete each on replacement).
    assert (version["DeletionPolicy"], version["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_a_manifest_without_a_gate_result_says_so(synth: Synth) -> None:
    record = parse_description(synth().only("AWS::Lambda::Version")["Properties"]["Description"])
    assert record is not None and record.gate_metric is None


def test_each_new_build_publishes_a_new_version(make_bundle: Callable[..., Path], tmp_path: Path) -> None:
    first, _ = synth_bundle(make_bundle, tmp_path / "a", validation=GATE, built=BUILT)
    same, _ = synth_bundle(make_bundle, tmp_path / "b", validation=GATE, built=BUILT)
    rebuilt, _ = synth_bundle(make_bundle, tmp_path / "c", validation=GATE, built=BUILT.replace(hour=20))
    assert first == same  # the same build deployed again: no new version
    assert rebuilt != first  # a new build of the same bytes: a new version


def test_the_template_with_described_versions_is_lint_clean(synth: Synth, cfn_lint: Callable[[Path], list[str]]) -> None:
    assert cfn_lint(synth().template_path) == []
