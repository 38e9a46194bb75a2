"""lambda.zip: what is inside, what was stripped, and that it is reproducible byte for byte."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from slimserve.build.pipeline.bundle import (
    UNZIPPED_LIMIT,
    ZIP_DIRECT_UPLOAD_LIMIT,
    BundleReport,
    build_zip,
    runtime_requirements,
    sha256_file,
    strip_dependencies,
    write_deterministic_zip,
)


def names_in(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return archive.namelist()


def test_digits_zip_layout(digits_build: Path) -> None:
    names = set(names_in(digits_build / "lambda.zip"))
    for required in ("slimserve/handler/main.py", "slimserve/handler/app.py", "model/model.onnx", "model/manifest.json",
                     "onnxruntime/__init__.py", "numpy/__init__.py", "pydantic/__init__.py", "mangum/__init__.py",
                     "model/openapi.json"):
        assert required in names, required
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"torch", "onnx", "build", "handler", "infra", "tests", "sklearn", "bin", "fastapi", "starlette"}, tops
    # Only the handler room ships: the build and infra rooms never reach Lambda.
    assert {name.split("/")[1] for name in names if name.startswith("slimserve/")} == {"handler"}
    assert not any("/tests/" in name for name in names)
    assert not any(name.startswith("onnxruntime/capi/libonnxruntime.so") for name in names)
    assert not any(name.startswith(("onnxruntime/transformers/", "onnxruntime/quantization/")) for name in names)
    assert not any(name.endswith(".pyi") for name in names)
    assert not any(name.startswith(("google/", "flatbuffers/", "aws_lambda_powertools/event_handler/")) for name in names)
    assert "aws_lambda_powertools/logging/logger.py" in names and "aws_lambda_powertools/metrics/metrics.py" in names
    # Precompiled for the target Python (3.12 is installed on this machine).
    assert "slimserve/handler/__pycache__/main.cpython-312.pyc" in names
    assert any(name.endswith("cpython-312-x86_64-linux-gnu.so") for name in names)


def test_zip_model_matches_dist_and_limits(digits_build: Path) -> None:
    with zipfile.ZipFile(digits_build / "lambda.zip") as archive:
        assert archive.read("model/model.onnx") == (digits_build / "model.onnx").read_bytes()
        assert archive.read("model/manifest.json") == (digits_build / "manifest.json").read_bytes()
        unzipped = sum(info.file_size for info in archive.infolist())
        for info in archive.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert (info.external_attr >> 16) & 0o777 in (0o644, 0o755)
    assert (digits_build / "lambda.zip").stat().st_size < ZIP_DIRECT_UPLOAD_LIMIT
    assert unzipped < UNZIPPED_LIMIT


def test_deterministic_zip_ignores_mtimes_and_order(tmp_path: Path) -> None:
    for index, stage in enumerate(("a", "b")):
        root = tmp_path / stage
        (root / "pkg").mkdir(parents=True)
        files = ["pkg/z.py", "pkg/a.py", "top.txt"] if index == 0 else ["top.txt", "pkg/a.py", "pkg/z.py"]
        for name in files:
            (root / name).write_text(f"content of {name}\n")
            os.utime(root / name, (1_000_000 * (index + 1), 1_000_000 * (index + 1)))
    size_a = write_deterministic_zip(tmp_path / "a", tmp_path / "a.zip")
    size_b = write_deterministic_zip(tmp_path / "b", tmp_path / "b.zip")
    assert size_a == size_b
    assert sha256_file(tmp_path / "a.zip") == sha256_file(tmp_path / "b.zip")
    assert names_in(tmp_path / "a.zip") == ["pkg/a.py", "pkg/z.py", "top.txt"]


@pytest.mark.slow
def test_rebuilding_the_zip_gives_the_same_bytes(digits_build: Path, tmp_path: Path) -> None:
    shipped = [name.removeprefix("model/") for name in names_in(digits_build / "lambda.zip") if name.startswith("model/")]
    assert sorted(shipped) == ["background.npy", "manifest.json", "model.onnx", "openapi.json"]
    report = build_zip(
        tmp_path / "lambda.zip",
        model_files={name: digits_build / name for name in shipped},
        task="classification",
        python="3.12",
        architecture="x86_64",
    )
    assert report.zip_sha256 == sha256_file(digits_build / "lambda.zip")


def test_strip_removes_unused_parts(tmp_path: Path) -> None:
    for name in ("onnxruntime/capi/libonnxruntime.so.1.2.3", "onnxruntime/capi/onnxruntime_pybind11_state.so",
                 "onnxruntime/transformers/x.py", "numpy/f2py/x.py", "pkg/tests/test_x.py", "pkg/mod.pyi",
                 "pkg/mod.py", "bin/tool"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    strip_dependencies(tmp_path)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["onnxruntime/capi/onnxruntime_pybind11_state.so", "pkg/mod.py"]


def test_requirements_are_pinned_to_the_build_environment() -> None:
    requirements = runtime_requirements("classification")
    assert all("==" in requirement for requirement in requirements)
    assert any(r.startswith("onnxruntime==") for r in requirements)
    assert not any(r.startswith("tokenizers") for r in requirements)
    assert any(r.startswith("tokenizers==") for r in runtime_requirements("embedding"))


def test_report_summary_mentions_limits() -> None:
    report = BundleReport("z", 60 * 1024 * 1024, 100 * 1024 * 1024, 10, "3.12", "x86_64", True, [], "0" * 64)
    assert not report.fits_direct_upload and report.fits_unzipped
    assert "60.0 MiB zipped (limit 50 MiB for direct upload: OVER: deploy uploads it through S3)" in report.summary()


def test_explanations_ship_with_numpy_and_onnxruntime_only(digits_build: Path) -> None:
    """The explainer and its background are in lambda.zip; no explanation library is."""
    names = set(names_in(digits_build / "lambda.zip"))
    for required in ("slimserve/handler/explain/__init__.py", "slimserve/handler/explain/shapley.py", "model/background.npy"):
        assert required in names, required
    tops = {name.split("/")[0].split("-")[0].lower() for name in names}
    assert not tops & {"shap", "lime", "sklearn", "scikit_learn", "scipy", "numba", "llvmlite", "pandas"}, tops
    manifest = json.loads((digits_build / "manifest.json").read_text())
    assert manifest["explain"]["background"] == "background.npy" and "background.npy" in manifest["files"]
    assert (digits_build / "background.npy").stat().st_size < 8 * 1024
