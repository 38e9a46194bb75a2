"""build/deploy/targets.py: a target resolves the same way for every command, and its stack
options combine flags > --option > [deploy] > defaults, validated once."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimserve.build.deploy.targets import parse_option_items, resolve_stack, resolve_target
from slimserve.build.errors import ConfigError, TargetError
from slimserve.infra.options import OptionsError, StackOptions

from targetkit import make_build, make_project

# --- finding the build ---------------------------------------------------------------------------


def test_a_project_finds_its_build_in_its_own_dist_whatever_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path, built=False)
    with pytest.raises(TargetError) as caught:
        resolve_target(project)
    zip_path = (project / "dist" / "toy" / "lambda.zip").resolve()
    assert str(caught.value) == (
        f"{project} has not been built yet ({zip_path} does not exist): run `slimserve build {project}` first"
    )
    make_build(project / "dist" / "toy")
    make_build(tmp_path / "dist" / "toy", "other")  # the cwd's dist/ is not the project's
    monkeypatch.chdir(tmp_path)
    artifacts = resolve_target(project)
    assert artifacts.zip_path == zip_path
    assert artifacts.manifest.name == "toy"


def test_a_build_folder_and_a_zip_are_targets(tmp_path: Path) -> None:
    folder = make_build(tmp_path / "out")
    assert resolve_target(folder).folder == folder
    inside = make_build(tmp_path / "zip-only", manifest_in_zip_only=True)
    artifacts = resolve_target(inside / "lambda.zip")
    assert artifacts.zip_path == inside / "lambda.zip" and artifacts.manifest.name == "toy"


def test_targets_that_are_not_builds_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(TargetError) as caught:
        resolve_target(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path} is neither a build output folder (with lambda.zip and manifest.json) "
        "nor a project folder (with slimserve.toml)"
    )
    (tmp_path / "lambda.zip").write_bytes(b"not a zip")
    with pytest.raises(TargetError, match=r"lambda.zip is not a valid zip file"):
        resolve_target(tmp_path)


def test_a_project_target_reads_the_one_config_loader(tmp_path: Path) -> None:
    project = make_project(tmp_path, 'apii = "rest"\n')
    with pytest.raises(ConfigError) as caught:
        resolve_target(project)
    assert str(caught.value) == (
        f"{project / 'slimserve.toml'} is invalid:\n  deploy.apii: unknown key (did you mean 'api'?)"
    )


# --- stack options -------------------------------------------------------------------------------


def test_deploy_table_then_option_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path, 'api = "rest"\nauth = "api_key"\nwaf = true\nmemory_mb = 512\n')
    monkeypatch.chdir("/")
    target = resolve_stack(project, ["waf=false", "memory_mb=2048", "api_keys=a,b"], {"auth": None, "package": "s3"})
    assert target.manifest_path == (project / "dist" / "toy" / "manifest.json").resolve()
    assert target.options == StackOptions(
        api="rest", auth="api_key", waf=False, memory_mb=2048, api_keys=("a", "b"), package="s3"
    )
    flagged = resolve_stack(project, ["auth=none"], {"auth": "iam"})
    assert flagged.options.auth == "iam"


def test_without_deploy_table_the_defaults_apply(tmp_path: Path) -> None:
    assert resolve_stack(make_project(tmp_path)).options == StackOptions()
    # A build folder has no slimserve.toml, so no [deploy] either.
    assert resolve_stack(make_build(tmp_path / "out"), ["api=rest"]).options == StackOptions(api="rest")


def test_the_merged_options_are_validated_once(tmp_path: Path) -> None:
    project = make_project(tmp_path, 'api = "rest"\nauth = "api_key"\n')
    with pytest.raises(OptionsError, match=r"^auth=api_key needs api=rest: HTTP APIs have no API keys"):
        resolve_stack(project, flags={"api": "http"})
    with pytest.raises(OptionsError, match=r"^option memory_mb: Input should be a valid integer"):
        resolve_stack(project, ["memory_mb=lots"])


@pytest.mark.parametrize(
    ("item", "value"),
    [
        ("jwt_audience=a,b", ["a", "b"]),
        ("jwt_audience= a , b ,", ["a", "b"]),
        ('jwt_audience=["a","b"]', ["a", "b"]),
        ("api_keys=ci", ["ci"]),
        ("api_keys=", []),
        ("snapstart=false", "false"),  # scalars are converted (and checked) by StackOptions
    ],
)
def test_option_values(item: str, value: object) -> None:
    key = item.partition("=")[0]
    assert parse_option_items([item]) == {key: value}


def test_list_options_reach_the_stack_options(tmp_path: Path) -> None:
    build = make_build(tmp_path / "out")
    options = resolve_stack(
        build, ["auth=jwt", "jwt_issuer=https://issuer.example", "jwt_audience=web,cli"]
    ).options
    assert options.jwt_audience == ("web", "cli")
    assert resolve_stack(build, ['jwt_audience=["web"]', "auth=jwt", "jwt_issuer=https://i.example"]).options.jwt_audience == ("web",)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("waf", "--option takes KEY=VALUE, got 'waf'"),
        ("=true", "--option takes KEY=VALUE, got '=true'"),
        ("wafs=true", "--option wafs: unknown key (did you mean 'waf'?)"),
        ("jwt_audience=[a", "--option jwt_audience: '[a' is not a JSON list: Expecting value: line 1 column 2 (char 1)"),
        ('api_keys=["a"', "--option api_keys: '[\"a\"' is not a JSON list: Expecting ',' delimiter: line 1 column 5 (char 4)"),
    ],
)
def test_malformed_options_are_usage_errors(item: str, message: str) -> None:
    with pytest.raises(TargetError) as caught:
        parse_option_items([item])
    assert str(caught.value) == message
