"""The stack template for `slimserve local` (build/local/synth.py): synthesized once per
manifest and options, and CDK_VALIDATION=false given to the CDK CLI alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from slimserve.build.deploy import cdk
from slimserve.build.local.synth import synth_cache_key, synthesized_template

from localkit import CACHE_DIR, STACKS, make_build_dir


@pytest.mark.slow
def test_templates_are_synthesized_once_per_manifest_and_options(
    templates: dict[str, Path], digits_build: Path, tmp_path: Path
) -> None:
    manifest = digits_build / "manifest.json"
    again, cached = synthesized_template(manifest, STACKS["http-iam"], CACHE_DIR)
    assert (again, cached) == (templates["http-iam"], True)
    assert templates["http-iam"].parent.parent == CACHE_DIR / "local-synth"
    # Only the template is kept, not the cloud assembly with its copy of lambda.zip.
    assert {p.name for p in again.parent.iterdir()} == {again.name, "inputs.json"}
    key = synth_cache_key(manifest, {})
    assert key == again.parent.name
    assert synth_cache_key(manifest, {"memory_mb": 2048}) != key
    changed = tmp_path / "manifest.json"
    changed.write_text(manifest.read_text().replace('"timeout_s": 20', '"timeout_s": 21'))
    assert synth_cache_key(changed, {}) != key


@pytest.mark.parametrize("explicit", [None, "true"])
def test_the_cli_alone_gets_cdk_validation_off_unless_set(
    explicit: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if explicit is None:
        monkeypatch.delenv("CDK_VALIDATION", raising=False)
    else:
        monkeypatch.setenv("CDK_VALIDATION", explicit)
    given: dict[str, Any] = {}

    def fake_synth(manifest_path: Path, out_dir: Path, options: Any, *, environment: Any) -> Path:
        given.update(environment)
        given["process"] = os.environ.get("CDK_VALIDATION")  # what this process has meanwhile
        out_dir.mkdir(parents=True)
        template = out_dir / "Stack.template.json"
        template.write_text("{}")
        return template

    monkeypatch.setattr(cdk, "synth", fake_synth)
    build = make_build_dir(tmp_path / "build", {"app.py": ""})
    template, cached = synthesized_template(build / "manifest.json", {}, tmp_path / "cache")
    assert cached is False and template.read_text() == "{}"
    assert given == {"CDK_VALIDATION": explicit or "false", "process": explicit}
