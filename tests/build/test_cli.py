"""The slimserve command: arguments in, the right function called, clear exits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slimserve.build.cli import _parse_value, _stack_inputs, app

runner = CliRunner()


def test_every_command_has_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("build", "local", "invoke", "synth", "deploy", "diff", "destroy"):
        assert command in result.output
        assert runner.invoke(app, [command, "--help"]).exit_code == 0


def test_build_config_error_exits_2(tmp_path: Path) -> None:
    (tmp_path / "slimserve.toml").write_text('name = "Bad Name"\n')
    result = runner.invoke(app, ["build", str(tmp_path)])
    assert result.exit_code == 2
    assert "slimserve.toml is invalid:\n  name: String should match pattern '^[a-z0-9][a-z0-9_.-]{0,62}$'" in result.output


def test_build_says_where_its_verdict_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import slimserve.build.pipeline.run as pipeline
    from slimserve.build.gate.validate import GateCheck, GateResult

    gate = GateResult("accuracy", 0.97, 0.97, 0.01, 360, [GateCheck("accuracy loss", 0.0, 0.01, "<=")])
    scope = "The gate's verdict holds only for the instruction set it ran on: Some CPU (avx2)."
    built = pipeline.BuildResult(tmp_path, None, gate, None, verdict_scope=scope, verdict_holds_only_here=True)  # type: ignore[arg-type]
    monkeypatch.setattr(pipeline, "run_build", lambda *args, **kwargs: built)
    result = runner.invoke(app, ["build", str(tmp_path)])
    assert result.exit_code == 0
    assert "accuracy gate passed on 360 held-out samples" in result.output
    assert scope in " ".join(result.output.split())


def test_invoke_needs_exactly_one_source() -> None:
    result = runner.invoke(app, ["invoke", "examples/digits"])
    assert result.exit_code == 2 and "give exactly one of --event FILE or --url URL" in result.output


def test_invoke_url_must_be_http() -> None:
    result = runner.invoke(app, ["invoke", "--url", "ftp://example"])
    assert result.exit_code == 1 and "--url must start with https://" in result.output


@pytest.mark.parametrize("raw,value", [("true", True), ("False", False), ("12", 12), ("2.5", 2.5), ("rest", "rest")])
def test_option_values_are_typed(raw: str, value: object) -> None:
    assert _parse_value(raw) == value


def test_stack_options_merge_file_then_option_then_flag(tmp_path: Path, digits_build: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = tmp_path / "digits"
    example.mkdir()
    (example / "slimserve.toml").write_text('name = "digits"\n[deploy]\napi = "rest"\nauth = "api_key"\nwaf = true\n')
    dist = example / "dist" / "digits"
    shutil.copytree(digits_build, dist)
    monkeypatch.chdir("/")
    manifest, options = _stack_inputs(example, ["waf=false", "memory_mb=2048"], {"auth": None, "package": "s3"})
    assert manifest == dist / "manifest.json"
    assert options == {"api": "rest", "auth": "api_key", "waf": False, "memory_mb": 2048, "package": "s3"}


def test_synth_refuses_bad_options_before_running_cdk(digits_build: Path) -> None:
    result = runner.invoke(app, ["synth", str(digits_build), "-o", "snapstart=true", "-o", "provisioned_concurrency=2"])
    assert result.exit_code == 2
    assert "snapstart and provisioned_concurrency are mutually exclusive" in result.output
