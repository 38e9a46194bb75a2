"""A fresh checkout for the documentation to run in, as a reader who just cloned would have it.

``make_sandbox`` copies the repository's files (no dist/, no trained weights, no caches) into a
temporary folder and gives it a ``.venv`` that is the real one (every entry linked), except for
``.venv/bin/slimserve``: a stand-in that runs the real command, but answers
``slimserve build examples/<name>`` (exactly that, the command the docs show) from the test
session's own build of that example: conftest.py's ``session_build`` ran that very command, in
a fresh copy of the example, and kept its console output. The stand-in copies that build into
the sandbox's ``examples/<name>/dist/<name>/`` and prints the recorded output, so the docs are
compared with a real run without building the same model three times per session. Anything
else (another example, other flags) runs for real.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from repo import REPO_ROOT

# What a clone does not have: outputs, caches, trained weights, virtualenvs, node packages.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", ".cache", "dist", "cdk.out", "node_modules", "__pycache__", "*.egg-info", ".pytest_cache",
    ".ruff_cache", "weights.safetensors", ".trained", "model.key", "model.pub",
)
STAMP = ".slimserve-installed"  # scripts/bootstrap's record of what .venv was installed for
SHIM = '''#!{python}
"""doc-test stand-in for slimserve (tests/docs/sandbox.py): replays the session's builds."""
import json, os, shutil, sys
from pathlib import Path

real, sandbox, builds = {real!r}, Path({sandbox!r}), json.loads({builds!r})
args = sys.argv[1:]
if len(args) == 2 and args[0] == "build":
    key = os.path.relpath(os.path.abspath(args[1]), sandbox)
    if key in builds:
        dist = Path(builds[key])
        target = sandbox / key / "dist" / dist.name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(dist, target, ignore=shutil.ignore_patterns("work", "cdk.out", "traffic-hooks"))
        sys.stderr.write((dist.parent / (dist.name + ".log")).read_text(encoding="utf-8").replace(str(dist), str(target)))
        sys.exit(0)
os.execv(real, [real, *args])
'''


def make_sandbox(root: Path, builds: dict[str, Path]) -> Path:
    """A clone-like copy of the repository in ``root``; ``builds`` maps an example folder
    (``examples/digits``) to the session's build of it (its dist folder)."""
    shutil.copytree(REPO_ROOT, root, ignore=NOT_IN_A_CLONE, symlinks=True)
    venv, real_venv = root / ".venv", REPO_ROOT / ".venv"
    venv.mkdir()
    for entry in real_venv.iterdir():
        if entry.name not in ("bin", STAMP):
            (venv / entry.name).symlink_to(entry)
    # scripts/bootstrap (run by scripts/demo) must never reinstall: that would point the real
    # virtualenv's editable install at this copy. Its stamp says "installed for this
    # pyproject.toml" (the copy's, identical to the checkout's).
    digest = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()[:16]
    (venv / STAMP).write_text(digest + "\n", encoding="utf-8")
    (venv / "bin").mkdir()
    for entry in (real_venv / "bin").iterdir():
        if entry.name != "slimserve":
            (venv / "bin" / entry.name).symlink_to(entry)
    shim = venv / "bin" / "slimserve"
    shim.write_text(
        SHIM.format(
            python=sys.executable,
            real=str(real_venv / "bin" / "slimserve"),
            sandbox=str(root),
            builds=json.dumps({key: str(value) for key, value in builds.items()}),
        ),
        encoding="utf-8",
    )
    shim.chmod(0o755)
    return root


def session_env(sandbox: Path) -> dict[str, str]:
    """The environment the documented commands run in: the test session's caches, no terminal
    width limit (rich would wrap lines at 80 columns), offline model hubs, and a ``cdk`` on
    PATH (slimserve's pinned CDK CLI, where the docs say "a cdk of your own")."""
    from slimserve.build.deploy.cdk_cli import cdk_executable

    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "COV_"))}
    env.setdefault("SLIMSERVE_CACHE_DIR", str(REPO_ROOT / ".cache"))
    cdk = Path(cdk_executable()).parent
    env.update(
        COLUMNS="1000",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        CDK_DISABLE_CLI_TELEMETRY="true",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        PATH=os.pathsep.join([str(cdk), env.get("PATH", "/usr/bin:/bin")]),
    )
    return env
