"""Shared fixtures: the digits example built once per test session (all xdist workers share
it through a file lock), and the model/app/Lambda handler made from that build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from repo import REPO_ROOT

DIGITS = REPO_ROOT / "examples" / "digits"
MINILM = REPO_ROOT / "examples" / "minilm"


# What a clone of the repository does not hold in an example folder (see .gitignore).
NOT_IN_A_CLONE = shutil.ignore_patterns("dist", "__pycache__", "weights.safetensors", ".trained")


def session_build(tmp_path_factory: pytest.TempPathFactory, example: str) -> Path:
    """The dist folder of ``slimserve build examples/<example>``, run as the README shows it,
    in a fresh copy of the example (as a clone has it: no weights, no dist), once per test
    session; xdist workers share it through a file lock. The command's console output is kept
    beside the build, ``<dist>.log``: tests/docs/ compares it with what the docs show."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    clone = shared / "clone"
    source = REPO_ROOT / "examples" / example
    with FileLock(str(shared / f"{example}-build.lock")):
        copy = clone / "examples" / example
        built = sorted((copy / "dist").glob("*/lambda.zip"))
        if built:
            return built[0].parent
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(source, copy, ignore=NOT_IN_A_CLONE)
        env = {**os.environ, "COLUMNS": "1000", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        slimserve = Path(sys.executable).parent / "slimserve"
        run = subprocess.run(
            [str(slimserve), "build", f"examples/{example}"], cwd=clone, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        built = sorted((copy / "dist").glob("*/lambda.zip"))
        if run.returncode != 0 or not built:
            pytest.fail(f"slimserve build examples/{example} exited {run.returncode}:\n{run.stdout[-6000:]}")
        dist = built[0].parent
        dist.with_name(f"{dist.name}.log").write_text(run.stdout, encoding="utf-8")
        # Later builds from the checkout itself reuse what this one trained (as they did when
        # this fixture built in place), written atomically: xdist workers may read it meanwhile.
        for trained in copy.glob("weights.safetensors"):
            if not (source / trained.name).exists():
                partial = source / f".{trained.name}.{os.getpid()}"
                shutil.copyfile(trained, partial)
                os.replace(partial, source / trained.name)
        return dist


@pytest.fixture(scope="session")
def digits_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist folder of a full `slimserve build examples/digits` (model, manifest, lambda.zip;
    work/ keeps fp32.onnx): see session_build."""
    return session_build(tmp_path_factory, "digits")


@pytest.fixture(scope="session")
def minilm_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist folder of a full `slimserve build examples/minilm` (int8 MiniLM, tokenizer.json,
    manifest, lambda.zip; work/ keeps fp32.onnx): see session_build. About 1.5 minutes on 2
    cores; the MiniLM tests share an xdist_group so that one worker waits for it."""
    return session_build(tmp_path_factory, "minilm")


@pytest.fixture(scope="session")
def heldout() -> tuple[np.ndarray, np.ndarray]:
    sys.path.insert(0, str(DIGITS))
    try:
        from data import heldout as load
    finally:
        sys.path.remove(str(DIGITS))
    inputs, labels = load()
    return inputs["pixels"], labels


@pytest.fixture(scope="session")
def digits_model(digits_build: Path):
    from slimserve.handler.model import load_model

    return load_model(digits_build, intra_op_threads=1)


@pytest.fixture(scope="session")
def digits_app(digits_model):
    from slimserve.handler.app import create_app

    return create_app(digits_model)


@pytest.fixture(scope="session")
def lambda_handler(digits_app):
    from slimserve.handler.gateway import make_lambda_handler

    return make_lambda_handler(digits_app)


@pytest.fixture()
def client(digits_app) -> Iterator:
    from fastapi.testclient import TestClient

    with TestClient(digits_app, raise_server_exceptions=False) as test_client:
        yield test_client

