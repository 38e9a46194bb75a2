"""build/deploy/cdk_cli.py: the pinned CDK CLI ships as an npm manifest inside the package and
is installed into the cache (never the checkout or site-packages), once per lock file."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from slimserve.build import paths
from slimserve.build.deploy import cdk_cli
from slimserve.build.errors import CdkError

from repo import REPO_ROOT


def test_the_cli_is_pinned_to_an_exact_version_in_the_package() -> None:
    assert cdk_cli.NPM_MANIFEST_DIR == REPO_ROOT / "build" / "deploy" / "npm"
    pinned = json.loads(cdk_cli.PACKAGE_JSON.read_text())["dependencies"]["aws-cdk"]
    assert pinned[0].isdigit(), f"aws-cdk must be pinned exactly, not {pinned!r}"
    assert cdk_cli.pinned_version() == pinned
    # One manifest: no second package.json at the repository root to drift from it.
    assert not (REPO_ROOT / "package.json").exists()
    assert not (REPO_ROOT / "cdk.json").exists()


def test_the_cli_installs_into_the_cache_by_lock_digest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    digest = hashlib.sha256(cdk_cli.PACKAGE_LOCK.read_bytes()).hexdigest()[:16]
    assert cdk_cli.install_dir(tmp_path) == tmp_path / "cdk-cli" / digest
    monkeypatch.setenv(paths.ENV_CACHE_DIR, str(tmp_path / "cache"))
    assert cdk_cli.install_dir() == (tmp_path / "cache").resolve() / "cdk-cli" / digest


def _fake_npm(tmp_path: Path, script: str) -> Path:
    npm = tmp_path / "npm"
    npm.write_text(f"#!/bin/sh\nset -e\n{script}\n")
    npm.chmod(npm.stat().st_mode | stat.S_IXUSR)
    return npm


def test_npm_ci_runs_once_in_scratch_then_the_install_is_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    npm = _fake_npm(
        tmp_path,
        f'echo "$*" >> {calls}\ntest -f package-lock.json\n'
        "mkdir -p node_modules/.bin\nprintf '#!/bin/sh\\n' > node_modules/.bin/cdk",
    )
    monkeypatch.setattr(cdk_cli.shutil, "which", lambda name: str(npm))
    cache = tmp_path / "cache"

    cli = cdk_cli.cdk_executable(cache)
    assert cli == cdk_cli.install_dir(cache) / "node_modules" / ".bin" / "cdk"
    assert cli.is_file()
    assert cdk_cli.cdk_executable(cache) == cli
    assert calls.read_text().splitlines() == ["ci --no-audit --no-fund --loglevel=error"]
    # Only the finished install is left: no scratch folders.
    assert sorted(p.name for p in (cache / "cdk-cli").iterdir()) == [cdk_cli.lock_digest()]


def test_a_parallel_install_that_finished_first_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    other = cdk_cli.install_dir(cache) / "node_modules" / ".bin"
    # This npm also plays the other process: it completes the final folder before our rename.
    npm = _fake_npm(
        tmp_path,
        f"mkdir -p node_modules/.bin {other}\ntouch node_modules/.bin/cdk {other}/cdk",
    )
    monkeypatch.setattr(cdk_cli.shutil, "which", lambda name: str(npm))
    assert cdk_cli.cdk_executable(cache) == other / "cdk"
    assert sorted(p.name for p in (cache / "cdk-cli").iterdir()) == [cdk_cli.lock_digest()]


def test_a_failing_npm_is_a_cdk_error_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    npm = _fake_npm(tmp_path, "echo 'npm ERR! network unreachable' >&2\nexit 1")
    monkeypatch.setattr(cdk_cli.shutil, "which", lambda name: str(npm))
    cache = tmp_path / "cache"
    with pytest.raises(CdkError) as caught:
        cdk_cli.cdk_executable(cache)
    assert str(caught.value) == (
        f"`npm ci` of the pinned AWS CDK CLI (aws-cdk {cdk_cli.pinned_version()}) failed:\n"
        "npm ERR! network unreachable"
    )
    assert list((cache / "cdk-cli").iterdir()) == []


def test_no_npm_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cdk_cli.shutil, "which", lambda name: None)
    with pytest.raises(CdkError) as caught:
        cdk_cli.cdk_executable(tmp_path)
    assert str(caught.value) == (
        "the AWS CDK CLI is not installed and npm is not on PATH: install Node.js 20+ (with npm); "
        f"slimserve then installs the pinned CLI into {cdk_cli.install_dir(tmp_path)} on first use"
    )
