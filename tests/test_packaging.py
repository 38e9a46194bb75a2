"""The wheel installs only ``slimserve.*``: it coexists with PyPA's ``build`` (whose import name
is ``build``) in either install order, either can be uninstalled without breaking the other,
and an installed slimserve never writes inside site-packages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from repo import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("packaging")]

ROOMS = ("handler", "build", "infra")
QUIET = ["--quiet", "--disable-pip-version-check"]


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    # cwd matters: `python -m build` run in the checkout would import the build room itself.
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("packaging")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)  # venvs: ~60 MB each


@pytest.fixture(scope="module")
def wheel(scratch: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of the working tree (what a fresh clone would build;
    building in place would write setuptools' own build/ folders into the build room)."""
    source = scratch / "source"
    listed = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO_ROOT)
    for name in filter(None, listed.split("\0")):
        if (REPO_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", *QUIET, "--no-deps", "--wheel-dir", scratch / "wheels", source, cwd=scratch)
    (built,) = (scratch / "wheels").glob("slimserve-*.whl")
    return built


def test_the_wheel_holds_only_slimserve_packages(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"slimserve", next(top for top in tops if top.endswith(".dist-info"))}
    with zipfile.ZipFile(wheel) as archive:
        dist_info = next(top for top in tops if top.endswith(".dist-info"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert "slimserve = slimserve.build.cli:main" in entry_points
    # Package data the installed CLI needs.
    for data in ("build/deploy/npm/package.json", "build/deploy/npm/package-lock.json", "infra/feature_flags.json"):
        assert f"slimserve/{data}" in names

    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {f"slimserve.{room}": room for room in ROOMS}
    on_disk = sorted(
        "slimserve." + ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for room in ROOMS
        for init in (REPO_ROOT / room).rglob("__init__.py")
        if "__pycache__" not in init.parts
    )
    assert sorted(config["packages"]) == on_disk, "pyproject's package list must name every package"
    for package in on_disk:
        assert package.replace(".", "/") + "/__init__.py" in names


def _venv(folder: Path) -> Path:
    # Without its own pip (seconds faster): this interpreter's pip installs into it (--python).
    venv.EnvBuilder(with_pip=False, clear=True).create(folder)
    return folder / "bin"


def _pip(bin_dir: Path, *args: str | Path) -> None:
    _run(sys.executable, "-m", "pip", "--python", bin_dir / "python", *args, *QUIET, cwd=bin_dir)


def _install_slimserve(bin_dir: Path, wheel: Path) -> None:
    # Only what `slimserve --help` imports, at this checkout's versions (from the pip cache).
    _pip(bin_dir, "install", "--no-deps", wheel)
    _pip(bin_dir, "install", *(f"{name}=={metadata.version(name)}" for name in ("typer", "rich")))


def _install_build(bin_dir: Path) -> None:
    _pip(bin_dir, "install", "build")


def _both_work(bin_dir: Path, *, build: bool = True, slimserve: bool = True) -> None:
    if build:
        assert _run(bin_dir / "python", "-m", "build", "--version", cwd=bin_dir).startswith("build ")
    if slimserve:
        assert "Exit codes: 0 success" in _run(bin_dir / "slimserve", "--help", cwd=bin_dir)


@pytest.mark.parametrize("order", ["build first", "slimserve first"])
def test_coexists_with_pypa_build(wheel: Path, scratch: Path, order: str) -> None:
    bin_dir = _venv(scratch / order.replace(" ", "-"))
    if order == "build first":
        _install_build(bin_dir)
        _install_slimserve(bin_dir, wheel)
    else:
        _install_slimserve(bin_dir, wheel)
        _install_build(bin_dir)
    _both_work(bin_dir)

    # Uninstalling one removes only its own files.
    uninstalled = "slimserve" if order == "build first" else "build"
    _pip(bin_dir, "uninstall", "--yes", uninstalled)
    _both_work(bin_dir, build=uninstalled != "build", slimserve=uninstalled != "slimserve")


def test_installed_runtime_paths_stay_out_of_site_packages(wheel: Path, scratch: Path) -> None:
    bin_dir = _venv(scratch / "paths")
    _install_slimserve(bin_dir, wheel)
    home, work = scratch / "home", scratch / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("SLIMSERVE_CACHE_DIR", "XDG_CACHE_HOME")}
    env["HOME"] = str(home)
    probe = (
        "import json, site\n"
        "from pathlib import Path\n"
        "from slimserve.build import paths\n"
        "from slimserve.build.deploy import cdk_cli\n"
        "print(json.dumps({'site': site.getsitepackages()[0], 'root': str(paths.PACKAGE_ROOT),\n"
        "  'checkout': paths.checkout_root(), 'cache': str(paths.cache_dir()),\n"
        "  'dist': str(paths.dist_dir(Path('project'), 'digits')), 'cli': str(cdk_cli.install_dir()),\n"
        "  'lock': str(cdk_cli.PACKAGE_LOCK), 'lock_exists': cdk_cli.PACKAGE_LOCK.is_file()}))\n"
    )
    found = json.loads(_run(bin_dir / "python", "-c", probe, cwd=work, env=env))
    site_packages = Path(found["site"]).resolve()
    assert Path(found["root"]) == site_packages / "slimserve"
    assert found["checkout"] is None
    assert Path(found["cache"]) == (home / ".cache" / "slimserve").resolve()
    assert Path(found["dist"]) == (work / "project" / "dist" / "digits").resolve()
    assert Path(found["cli"]).parent == (home / ".cache" / "slimserve" / "cdk-cli").resolve()
    # The npm manifest is read from the package; the CLI installs outside it.
    assert found["lock_exists"] and Path(found["lock"]).is_relative_to(site_packages)
    for written in ("cache", "dist", "cli"):
        assert not Path(found[written]).is_relative_to(site_packages), written
