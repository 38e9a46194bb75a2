"""Shared fixtures: the digits example built once per test session (all xdist workers share
it through a file lock), and the model/app/Lambda handler made from that build."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from repo import REPO_ROOT

DIGITS = REPO_ROOT / "examples" / "digits"
MINILM = REPO_ROOT / "examples" / "minilm"


@pytest.fixture(scope="session")
def digits_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist folder of a full `slimserve build examples/digits` (model, manifest, lambda.zip)."""
    from slimserve.build.pipeline.progress import Steps
    from slimserve.build.pipeline.run import run_build

    # Under xdist every worker has its own basetemp inside the session's; share the parent.
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out = shared / "digits-build"
    with FileLock(str(shared / "digits-build.lock")):
        if not (out / "lambda.zip").is_file():
            shutil.rmtree(out, ignore_errors=True)
            run_build(DIGITS, out=out, steps=Steps())
    return out


@pytest.fixture(scope="session")
def minilm_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist folder of a full `slimserve build examples/minilm` (int8 MiniLM, tokenizer.json,
    manifest, lambda.zip; work/ keeps fp32.onnx). 1-2.5 minutes on 2 cores: built once per
    session, shared by xdist workers through a file lock (the MiniLM tests also share an
    xdist_group); .pyc precompilation is skipped (the digits build covers it)."""
    from slimserve.build.pipeline.progress import Steps
    from slimserve.build.pipeline.run import run_build

    # Nothing in the build may reach the Hugging Face hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out = shared / "minilm-build"
    with FileLock(str(shared / "minilm-build.lock")):
        if not (out / "lambda.zip").is_file():
            shutil.rmtree(out, ignore_errors=True)
            run_build(MINILM, out=out, steps=Steps(), precompile_bytecode=False)
    return out


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

