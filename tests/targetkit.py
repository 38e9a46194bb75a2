"""Small build targets for tests of the commands that take one (local, invoke, synth, deploy,
diff, destroy): a build output folder with a valid manifest, and a project folder around it."""

from __future__ import annotations

import zipfile
from pathlib import Path

from slimserve.handler.manifest import Manifest, ModelFile, TensorSpec

from toymodels import MINIMAL_CONFIG


def make_build(folder: Path, name: str = "toy", *, manifest_in_zip_only: bool = False) -> Path:
    """A build output folder: manifest.json (beside the zip, or only inside it) + lambda.zip."""
    manifest = Manifest(
        name=name,
        model=ModelFile(file="model.onnx", sha256="0" * 64, bytes=1),
        inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, 4])],
        outputs=[TensorSpec(name="y", datatype="FP32", shape=[-1, 2])],
    ).to_json()
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "lambda.zip", "w") as archive:
        archive.writestr("model/manifest.json", manifest)
    if not manifest_in_zip_only:
        (folder / "manifest.json").write_text(manifest)
    return folder


def make_project(root: Path, deploy: str = "", *, built: bool = True) -> Path:
    """``root/project`` with MINIMAL_CONFIG (name "toy") plus a ``[deploy]`` table, built into
    its own ``dist/toy/`` unless ``built`` is False."""
    project = root / "project"
    project.mkdir()
    (project / "slimserve.toml").write_text(MINIMAL_CONFIG + (f"[deploy]\n{deploy}" if deploy else ""))
    if built:
        make_build(project / "dist" / "toy")
    return project
