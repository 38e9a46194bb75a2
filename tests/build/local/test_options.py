"""``LocalRunOptions`` (build/local/options.py): one bag for serve / running / invoke_event."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimserve.build.errors import LocalRunError
from slimserve.build.local.apigw.config import GatewayConfig
from slimserve.build.local.options import LocalRunOptions


def test_at_most_one_source_of_what_to_emulate() -> None:
    with pytest.raises(
        LocalRunError,
        match=r"^give at most one of config, template and stack_options \(got config, template\)$",
    ):
        LocalRunOptions(config=GatewayConfig(), template={"Resources": {}})
    assert LocalRunOptions(stack_options={}).stack_options == {}


def test_the_cache_is_absolute_and_follows_slimserve_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert LocalRunOptions(cache_dir=Path("here")).cache() == (tmp_path / "here").resolve()
    monkeypatch.setenv("SLIMSERVE_CACHE_DIR", str(tmp_path / "env-cache"))
    assert LocalRunOptions().cache() == (tmp_path / "env-cache").resolve()
