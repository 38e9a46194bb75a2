"""The pinned AWS CDK CLI, installed where any slimserve install can run it.

The npm manifest (``npm/package.json`` + ``npm/package-lock.json``, exact versions) ships inside
this package, so a wheel install has it too. On first use it is installed with ``npm ci``
(exactly the lock file) into ``<cache>/cdk-cli/<lock digest>/``: one copy per pinned version,
shared by every project of the user, never inside site-packages or the repository.
``scripts/bootstrap`` installs it ahead of time.

This module imports only the standard library and slimserve's paths and errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from slimserve.build import paths
from slimserve.build.errors import CdkError

NPM_MANIFEST_DIR = Path(__file__).resolve().parent / "npm"
PACKAGE_JSON = NPM_MANIFEST_DIR / "package.json"
PACKAGE_LOCK = NPM_MANIFEST_DIR / "package-lock.json"
CACHE_FOLDER = "cdk-cli"
CDK_BIN = Path("node_modules") / ".bin" / "cdk"


def lock_digest() -> str:
    """A short digest of the lock file: a new pin installs beside the old one."""
    return hashlib.sha256(PACKAGE_LOCK.read_bytes()).hexdigest()[:16]


def pinned_version() -> str:
    """The aws-cdk version the lock file pins (e.g. for cache keys and messages)."""
    lock = json.loads(PACKAGE_LOCK.read_text(encoding="utf-8"))
    return str(lock["packages"]["node_modules/aws-cdk"]["version"])


def install_dir(cache: Path | None = None) -> Path:
    """Where the pinned CLI is (or will be) installed: ``<cache>/cdk-cli/<lock digest>``."""
    return (cache or paths.cache_dir()) / CACHE_FOLDER / lock_digest()


def cdk_executable(cache: Path | None = None) -> Path:
    """The pinned CLI, installed with ``npm ci`` when missing. Parallel first uses are safe:
    each installs into its own scratch folder and the first rename wins."""
    folder = install_dir(cache)
    cli = folder / CDK_BIN
    if cli.is_file():
        return cli
    npm = shutil.which("npm")
    if npm is None:
        raise CdkError(
            "the AWS CDK CLI is not installed and npm is not on PATH: install Node.js 20+ "
            f"(with npm); slimserve then installs the pinned CLI into {folder} on first use"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for manifest in (PACKAGE_JSON, PACKAGE_LOCK):
            shutil.copyfile(manifest, scratch / manifest.name)
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=scratch,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not (scratch / CDK_BIN).is_file():
            raise CdkError(
                f"`npm ci` of the pinned AWS CDK CLI (aws-cdk {pinned_version()}) failed:\n"
                f"{result.stderr.strip()}"
            )
        try:
            os.rename(scratch, folder)
        except OSError:
            if not cli.is_file():  # not another process's finished install: a real failure
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return cli
