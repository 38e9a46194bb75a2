"""Where things are and where things go, in one place.

Sources (read-only, shipped in the wheel): the ``slimserve`` package's own folders. In a
checkout they are the repository's top-level rooms (``handler/``, ``build/``, ``infra/``); in an
installed wheel they are ``site-packages/slimserve/...``. Nothing is ever written there.

Outputs and caches (written):

- a build's outputs: ``<project>/dist/<name>/`` where ``<project>`` is the folder holding
  slimserve.toml, the one given on the command line (``--out`` overrides); never the cwd.
- caches: ``$SLIMSERVE_CACHE_DIR``, else ``$XDG_CACHE_HOME/slimserve``, else
  ``~/.cache/slimserve``; shared by every project of the user, never inside site-packages.
  The repository's own scripts point it at ``<checkout>/.cache`` so CI caches under the project.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# --- sources -----------------------------------------------------------------------------------

# The folder holding the three rooms: the checkout's root, or site-packages/slimserve.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
HANDLER_PACKAGE = PACKAGE_ROOT / "handler"
INFRA_PACKAGE = PACKAGE_ROOT / "infra"

# The import name every room lives under (installed: site-packages/slimserve/<room>).
IMPORT_ROOT = "slimserve"
HANDLER_IMPORT = f"{IMPORT_ROOT}.handler"

# --- outputs -----------------------------------------------------------------------------------

CONFIG_FILE = "slimserve.toml"
DIST_DIR = "dist"
ZIP_FILE = "lambda.zip"
MODEL_FILE = "model.onnx"
REPORT_FILE = "report.md"
PLOT_FILE = "report.png"
WORK_DIR = "work"
SIGNATURE_FILE = "model.sig"  # OpenSSF model-signing bundle over the build's files (build/deploy/signing.py)

ENV_CACHE_DIR = "SLIMSERVE_CACHE_DIR"


def checkout_root() -> Path | None:
    """The repository root when slimserve runs from a checkout (editable install), else None."""
    return PACKAGE_ROOT if (PACKAGE_ROOT / "pyproject.toml").is_file() else None


def dist_dir(project: Path, name: str) -> Path:
    """A build's default output folder: ``<project>/dist/<name>`` (absolute)."""
    return (Path(project) / DIST_DIR / name).resolve()


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The cache root (absolute): explicit environment first, then the user's cache folder."""
    env = os.environ if environ is None else environ
    configured = env.get(ENV_CACHE_DIR)
    if configured:
        return Path(configured).expanduser().resolve()
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "slimserve").resolve()
