"""The handler reads the build's stamped manifest as validated JSON; anything else goes through
the schema (handler/manifest.py) with the schema's messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from slimserve.handler.manifest import Manifest, load_manifest
from slimserve.handler.manifest_file import (
    STAMP_FIELD,
    ManifestError,
    ManifestView,
    load_manifest_view,
    stamp_of,
)


def _stamped(digits_build: Path, tmp_path: Path) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text((digits_build / "manifest.json").read_text())
    return path


def test_build_stamps_the_manifest_and_the_view_reads_it_like_the_schema(digits_build: Path) -> None:
    raw = json.loads((digits_build / "manifest.json").read_text())
    assert raw[STAMP_FIELD] == stamp_of(raw)
    view, model = load_manifest_view(digits_build / "manifest.json"), load_manifest(digits_build / "manifest.json")
    assert view.name == model.name and view.runtime.limits.max_batch == model.runtime.limits.max_batch
    assert [(spec.name, spec.datatype, spec.shape) for spec in view.inputs] == [
        (spec.name, spec.datatype, spec.shape) for spec in model.inputs
    ]
    assert dict(view.runtime.limits) == model.runtime.limits.model_dump()
    assert view.files == model.files and view.task_options.get("missing", 7) == 7
    assert view.to_dict()["model"]["sha256"] == model.model.sha256
    with pytest.raises(AttributeError, match="no field 'nope'"):
        view.nope  # noqa: B018
    with pytest.raises(AttributeError, match="read-only"):
        view.name = "other"


def test_a_stamped_manifest_is_read_without_pydantic(digits_build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _stamped(digits_build, tmp_path)
    monkeypatch.setitem(sys.modules, "slimserve.handler.manifest", None)  # importing the schema would fail
    assert isinstance(load_manifest_view(path), ManifestView)


def test_an_edited_manifest_is_validated_again_with_the_schemas_message(digits_build: Path, tmp_path: Path) -> None:
    path = _stamped(digits_build, tmp_path)
    raw = json.loads(path.read_text())
    raw["inputs"][0]["shape"] = "not a shape"  # stamp no longer matches
    path.write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match=r"manifest is invalid: .*manifest.json: 1 validation error"):
        load_manifest_view(path)
    raw["inputs"][0]["shape"] = [-1, 64]
    del raw["runtime"]  # valid, but only the schema knows the defaults
    path.write_text(json.dumps(raw))
    view = load_manifest_view(path)
    assert view.runtime.limits.max_body_bytes == Manifest.model_fields["runtime"].default_factory().limits.max_body_bytes


@pytest.mark.parametrize(
    ("text", "message"),
    [("{", "manifest is not valid JSON"), ("[]", "manifest must be a JSON object"), ('{"schema": 2}', "manifest schema 2 is not supported")],
)
def test_unreadable_manifests_keep_their_messages(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "manifest.json").write_text(text)
    for read in (load_manifest_view, load_manifest):
        with pytest.raises(ManifestError, match=message):
            read(tmp_path / "manifest.json")
