"""build/deploy/cdk.py: the wrappers around the pinned CDK CLI (unit tests, then end to end)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slimserve.build.deploy import cdk, cdk_cli
from slimserve.infra.options import OptionsError, StackOptions, parse_options


def test_options_travel_as_compact_json_of_the_non_defaults() -> None:
    options = StackOptions(api="rest", auth="api_key", api_keys=("a", "b"), memory_mb=2048)
    context = cdk.options_context(options)
    assert json.loads(context) == {
        "api": "rest",
        "auth": "api_key",
        "api_keys": ["a", "b"],
        "memory_mb": 2048,
    }
    assert " " not in context
    assert parse_options(context) == options
    assert cdk.options_context(StackOptions()) == "{}"


def test_synth_runs_without_any_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_PROFILE", "prod")
    env = cdk._offline_env()
    assert "AWS_ACCESS_KEY_ID" not in env and "AWS_PROFILE" not in env
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    assert env["AWS_CONFIG_FILE"] == os.devnull
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env["CDK_DISABLE_CLI_TELEMETRY"] == "true"
    assert env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] == "20"
    # deploy/diff/destroy use the caller's credentials.
    assert cdk._caller_env()["AWS_PROFILE"] == "prod"


def test_every_cli_call_is_quiet_about_notices() -> None:
    command = cdk.cli_command(["synth"])
    assert command[0] == str(cdk_cli.install_dir() / "node_modules" / ".bin" / "cdk")
    assert command[-1] == "--no-notices"


def test_invalid_options_fail_before_the_cli_starts(
    make_bundle: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_cli(*args: object, **kwargs: object) -> None:
        raise AssertionError("the CLI must not run")

    monkeypatch.setattr(cdk, "_run_cli", no_cli)
    manifest = make_bundle()
    with pytest.raises(OptionsError, match="auth=api_key needs api=rest"):
        cdk.synth(manifest, tmp_path / "out", {"auth": "api_key"})
    with pytest.raises(OptionsError, match="timeout_s must be at most 28 s"):
        cdk.synth(manifest, tmp_path / "out", StackOptions(timeout_s=29))


@pytest.fixture()
def cli_calls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> list[tuple[list[str], dict[str, str]]]:
    calls: list[tuple[list[str], dict[str, str]]] = []

    def fake_run_cli(args: list[str], *, env: dict[str, str]) -> None:
        calls.append((list(args), dict(env)))
        if args[0] == "synth":
            out = Path(args[args.index("--output") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / "slimserve-digits.template.json").write_text("{}")

    monkeypatch.setattr(cdk, "_run_cli", fake_run_cli)
    return calls


def test_synth_passes_manifest_and_options_as_context(
    cli_calls: list[Any], make_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    manifest = make_bundle()
    template = cdk.synth(manifest, tmp_path / "out", {"api": "rest"})

    assert template == (tmp_path / "out" / "slimserve-digits.template.json")
    ((args, env),) = cli_calls
    assert args[:2] == ["synth", "--quiet"]
    assert args[args.index("--app") + 1].endswith(" -m slimserve.infra.app")
    contexts = [args[i + 1] for i, arg in enumerate(args) if arg == "--context"]
    assert contexts == [f"manifest={manifest.resolve()}", 'options={"api":"rest"}']
    assert "AWS_EC2_METADATA_DISABLED" in env


@pytest.mark.parametrize(
    ("action", "kwargs", "expected"),
    [
        ("deploy", {}, ["--require-approval", "broadening"]),
        ("deploy", {"require_approval": "never"}, ["--require-approval", "never"]),
        ("diff", {}, []),
        ("destroy", {}, []),
        ("destroy", {"force": True}, ["--force"]),
    ],
)
def test_deploy_diff_destroy_act_on_the_synthesized_assembly(
    cli_calls: list[Any],
    make_bundle: Callable[..., Path],
    tmp_path: Path,
    action: str,
    kwargs: dict[str, Any],
    expected: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "prod")
    out = tmp_path / "out"
    getattr(cdk, action)(make_bundle(), out, None, **kwargs)

    (synth_args, _), (args, env) = cli_calls
    assert synth_args[0] == "synth"
    assert args == [action, "slimserve-digits", "--app", str(out), *expected]
    assert env["AWS_PROFILE"] == "prod"


# --- end to end through the pinned npm CLI ----------------------------------------------------


@pytest.mark.slow
def test_synth_end_to_end_offline_with_full_validation(
    make_bundle: Callable[..., Path],
    tmp_path: Path,
    cfn_lint: Callable[[Path], list[str]],
    capfd: pytest.CaptureFixture[str],
) -> None:
    template_path = cdk.synth(make_bundle(), tmp_path / "cdk.out")

    template = json.loads(template_path.read_text())
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert functions[0]["Properties"]["Handler"] == "slimserve.handler.main.handler"
    report = json.loads((tmp_path / "cdk.out" / "validation-report.json").read_text())
    conclusions = {p["pluginName"]: p["conclusion"] for p in report["pluginReports"]}
    assert conclusions["AwsSolutions"] == conclusions["Serverless"] == "success"
    assert cfn_lint(template_path) == []
    assert "ValidationFailed" not in capfd.readouterr().err


@pytest.mark.slow
def test_image_package_synthesizes_without_docker(
    make_bundle: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # If synth tried to build the image it would have to run this (missing) Docker.
    monkeypatch.setenv("CDK_DOCKER", str(tmp_path / "no-docker-here"))
    # The default-package end-to-end test above is the one with full template validation.
    monkeypatch.setenv("CDK_VALIDATION", "false")
    template_path = cdk.synth(make_bundle(), tmp_path / "cdk.out", {"package": "image"})

    assert '"PackageType": "Image"' in template_path.read_text()
    assert (tmp_path / "dist" / "digits" / "Dockerfile").is_file()


@pytest.mark.slow
def test_a_failing_cli_is_a_cdk_error(tmp_path: Path) -> None:
    with pytest.raises(cdk.CdkError, match=r"^cdk synth failed \(exit code [1-9]\d*\)$"):
        cdk._run_cli(["synth", "--app", "false", "--output", str(tmp_path)], env=cdk._offline_env())


def test_the_app_refuses_to_run_without_a_manifest(tmp_path: Path) -> None:
    env = {k: v for k, v in cdk._offline_env().items() if not k.startswith("CDK_CONTEXT")}
    result = subprocess.run(
        [sys.executable, "-m", "slimserve.infra.app"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert (
        "error: context 'manifest' is required: -c manifest=dist/<name>/manifest.json"
        in result.stderr
    )
