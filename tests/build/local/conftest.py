"""Fixtures of the build/local tests: the runtime client installed once, the stack templates
synthesized once (by the path `slimserve local` uses, cached under .cache/local-synth), and the
probe function served once per module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.apigw.template import gateway_config_from_template
from slimserve.build.local.options import LocalRunOptions
from slimserve.build.local.run import LocalServer, running
from slimserve.build.local.synth import synthesized_template
from slimserve.handler.manifest import load_manifest

from localkit import (
    CACHE_DIR,
    LOCAL_KEY,
    STACKS,
    fixture_source,
    make_build_dir,
    quiet_console,
    shared_runtime_cache,
)


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    # Installs the runtime client for this Python once (PyPI on the first run only).
    return shared_runtime_cache()


@pytest.fixture(scope="session")
def templates(digits_build: Path) -> dict[str, Path]:
    """name -> template path, synthesized as `slimserve local` does (2 at a time: 2 cores)."""
    manifest = digits_build / "manifest.json"
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(synthesized_template, manifest, options, CACHE_DIR)
            for name, options in STACKS.items()
        }
        return {name: future.result()[0] for name, future in futures.items()}


@pytest.fixture(scope="session")
def configs(templates: dict[str, Path], digits_build: Path) -> dict[str, GatewayConfig]:
    manifest = load_manifest(digits_build / "manifest.json")
    return {
        name: gateway_config_from_template(path, manifest, api_key=LOCAL_KEY)
        for name, path in templates.items()
    }


@pytest.fixture(scope="module")
def probe_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The probe function (fixtures/probe_app.py) with a 2 s function timeout."""
    return make_build_dir(
        tmp_path_factory.mktemp("probe"), {"app.py": fixture_source("probe_app.py")}, timeout_s=2
    )


@pytest.fixture(scope="module")
def probe(probe_build: Path, cache_dir: Path) -> Iterator[LocalServer]:
    """The probe served with the manifest's defaults (an open HTTP API), once per module."""
    # AWS credentials in the developer's shell must never reach the function.
    os.environ["AWS_ACCESS_KEY_ID"] = "AKIASHOULDNOTLEAK"
    try:
        with running(
            probe_build, LocalRunOptions(cache_dir=cache_dir), console=quiet_console()
        ) as server:
            yield server
    finally:
        del os.environ["AWS_ACCESS_KEY_ID"]


@pytest.fixture(scope="module")
def client(probe: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=probe.url, timeout=30) as http:
        yield http
