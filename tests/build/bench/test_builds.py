"""The builds the suite measures: a zip made from other handler code is noticed, and the copy
the sections measure holds the build's files."""

from __future__ import annotations

import zipfile
from pathlib import Path

from slimserve.build.bench.builds import snapshot_build, stale_handler_files
from slimserve.build.bench.common import Example
from slimserve.build.paths import HANDLER_PACKAGE


def _zip_of_this_handler(path: Path, *, change: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(HANDLER_PACKAGE.rglob("*")):
            if not file.is_file() or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            name = file.relative_to(HANDLER_PACKAGE).as_posix()
            data = file.read_bytes() + (b"\n# changed\n" if name == change else b"")
            archive.writestr(f"slimserve/handler/{name}", data)
        archive.writestr("slimserve/handler/__pycache__/main.cpython-312.pyc", b"ignored")
    return path


def test_a_zip_of_this_handler_is_current_and_a_changed_file_is_named(tmp_path: Path) -> None:
    assert stale_handler_files(_zip_of_this_handler(tmp_path / "same.zip")) == []
    assert stale_handler_files(_zip_of_this_handler(tmp_path / "old.zip", change="codec.py")) == ["codec.py"]


def test_the_snapshot_holds_the_top_level_files_and_the_fp32_export(tmp_path: Path) -> None:
    dist = tmp_path / "dist" / "digits"
    (dist / "work").mkdir(parents=True)
    for name in ("lambda.zip", "model.onnx", "manifest.json"):
        (dist / name).write_text(name)
    (dist / "work" / "fp32.onnx").write_text("fp32")
    (dist / "work" / "calibration.npz").write_text("not measured")
    copy = snapshot_build(Example(folder=tmp_path / "example", dist=dist), tmp_path / "out" / ".builds")
    assert copy.dist == tmp_path / "out" / ".builds" / "digits" and copy.folder == tmp_path / "example"
    assert sorted(path.name for path in copy.dist.iterdir()) == ["lambda.zip", "manifest.json", "model.onnx", "work"]
    assert [path.name for path in (copy.dist / "work").iterdir()] == ["fp32.onnx"]
