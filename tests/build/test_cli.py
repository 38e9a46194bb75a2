"""The slimserve command: arguments in, the right function called with the right options, and
one exit-code table for every command (0 ok, 1 runtime failure, 2 usage/config, 3 gate failed),
each failure one line on stderr."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from slimserve.build.cli import app
from slimserve.build.deploy import cdk
from slimserve.build.deploy.remote import RemoteResponse
from slimserve.build.errors import BundleError, CdkError, FunctionError, GateFailed, LocalRunError
from slimserve.infra.options import StackOptions

from repo import EVENTS_DIR, EXAMPLES_DIR
from targetkit import make_build, make_project

runner = CliRunner()
COMMANDS = ("build", "local", "invoke", "synth", "deploy", "diff", "destroy", "versions", "rollback", "bench")


def run(*args: object) -> Result:
    return runner.invoke(app, [str(arg) for arg in args])


def error_line(result: Result) -> str:
    """The one line a failing command prints on stderr (after anything it printed before)."""
    return result.stderr.strip().splitlines()[-1]


def replace(monkeypatch: pytest.MonkeyPatch, target: str, behaviour: Callable[..., Any]) -> list[dict[str, Any]]:
    """Replace ``module.function`` with ``behaviour``, recording each call's arguments."""
    calls: list[dict[str, Any]] = []

    def fake(*args: Any, **kwargs: Any) -> Any:
        calls.append({"args": args, **kwargs})
        return behaviour(*args, **kwargs)

    monkeypatch.setattr(target, fake)
    return calls


def raising(exc: BaseException) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fail


@pytest.fixture()
def cli_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The CDK CLI runs recorded, not run: synth writes an empty template."""
    calls: list[list[str]] = []

    def fake_run_cli(args: list[str], *, env: dict[str, str]) -> None:
        calls.append(list(args))
        if args[0] == "synth":
            out = Path(args[args.index("--output") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / "slimserve-toy.template.json").write_text("{}")

    monkeypatch.setattr(cdk, "_run_cli", fake_run_cli)
    return calls


@pytest.fixture()
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture()
def aws_credentials(no_aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")


# --- help and the exit-code table ------------------------------------------------------------


def test_help_lists_every_command_and_the_exit_codes() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output
        assert run(command, "--help").exit_code == 0
    text = " ".join(result.output.split())
    assert "Exit codes: 0 success; 1 runtime failure" in text
    assert "2 usage or configuration error" in text and "3 the accuracy gate failed (nothing shipped)" in text


def test_the_stack_commands_share_one_parameter_list() -> None:
    def options(command: str) -> list[str]:
        return [word for word in run(command, "--help").output.split() if word.startswith("--")]

    shared = ["--out", "--option", "--api", "--auth", "--package"]
    assert options("synth") == [*shared, "--help"]
    assert options("diff") == [*shared, "--help"]
    assert options("deploy") == [*shared, "--yes", "--verify-key", "--help"]
    assert options("destroy") == [*shared, "--force", "--help"]
    assert options("versions") == [*shared, "--json", "--help"]
    assert options("rollback") == [*shared, "--to", "--help"]


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (GateFailed(None, "accuracy gate FAILED: accuracy loss 0.2 > 0.01"), 3, "error: accuracy gate FAILED: accuracy loss 0.2 > 0.01"),  # type: ignore[arg-type]
        (BundleError("pip could not install onnxruntime for Python 3.12"), 1, "error: pip could not install onnxruntime for Python 3.12"),
        (RuntimeError("boom"), 1, "error: internal error: RuntimeError: boom (run with --debug for the trace)"),
        (KeyboardInterrupt(), 130, None),
    ],
)
def test_build_errors_map_to_their_exit_codes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, exc: BaseException, code: int, line: str | None
) -> None:
    replace(monkeypatch, "slimserve.build.pipeline.run.run_build", raising(exc))
    result = run("build", tmp_path)
    assert result.exit_code == code
    if line is not None:
        assert result.stderr.strip() == line  # one line, no trace
    assert "Traceback" not in result.output


def test_build_success_exits_0(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class Gate:
        def explain(self) -> str:
            return "accuracy gate passed on 360 held-out samples"

    class Built:
        out = tmp_path / "dist" / "toy"
        gate = Gate()
        verdict_scope = "The gate's verdict holds on every x86_64 host: the int8 kernels cannot saturate."
        verdict_holds_only_here = False

    calls = replace(monkeypatch, "slimserve.build.pipeline.run.run_build", lambda *a, **k: Built())
    result = run("build", tmp_path, "--tolerance", "0.02", "--method", "fp16", "--no-precompile")
    assert result.exit_code == 0
    assert calls[0]["overrides"] == {"validation.tolerance": 0.02, "compression.method": "fp16"}
    assert calls[0]["precompile_bytecode"] is False
    assert " ".join(result.stderr.split()) == (
        f"built {Built.out} (accuracy gate passed on 360 held-out samples) {Built.verdict_scope}"
    )


def test_debug_shows_the_trace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    replace(monkeypatch, "slimserve.build.pipeline.run.run_build", raising(RuntimeError("boom")))
    result = run("--debug", "build", tmp_path)
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "RuntimeError: boom" in result.stderr
    assert error_line(result) == "error: internal error: RuntimeError: boom (run with --debug for the trace)"


def test_build_config_errors_exit_2_with_the_closest_key(tmp_path: Path) -> None:
    (tmp_path / "slimserve.toml").write_text('name = "Bad Name"\n')
    result = run("build", tmp_path)
    assert result.exit_code == 2
    assert "slimserve.toml is invalid:\n  name: String should match pattern '^[a-z0-9][a-z0-9_.-]{0,62}$'" in result.stderr
    project = make_project(tmp_path, 'api = "rest"\nauht = "api_key"\n', built=False)
    result = run("build", project)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {project / 'slimserve.toml'} is invalid:\n  deploy.auht: unknown key (did you mean 'auth'?)"
    )


def test_usage_errors_of_typer_exit_2() -> None:
    for command in COMMANDS:
        assert run(command, "--no-such-flag").exit_code == 2


# --- local and invoke ----------------------------------------------------------------------------


def test_local_and_invoke_need_a_built_target(tmp_path: Path) -> None:
    project = make_project(tmp_path, built=False)
    for args in (("local", project), ("invoke", project, "--event", EVENTS_DIR / "http-api-v2.json")):
        result = run(*args)
        assert result.exit_code == 2
        assert error_line(result).startswith(f"error: {project} has not been built yet (")


def test_local_honours_the_deploy_table_and_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = replace(monkeypatch, "slimserve.build.local.run.serve", lambda *a, **k: None)
    project = make_project(tmp_path, 'api = "rest"\nauth = "api_key"\n')
    assert run("local", project, "-o", "api_keys=ci,web").exit_code == 0
    assert calls[0]["args"][1].stack_options == StackOptions(api="rest", auth="api_key", api_keys=("ci", "web"))
    assert run("local", project, "--api", "http", "--auth", "none").exit_code == 0
    # --auth none on `local` implies the acknowledgment and a ceiling (nothing leaves 127.0.0.1).
    assert calls[1]["args"][1].stack_options == StackOptions(
        api="http", auth="none", allow_anonymous=True, reserved_concurrency=10
    )


def test_local_runtime_failure_exits_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    replace(monkeypatch, "slimserve.build.local.run.serve", raising(LocalRunError("cannot listen on 127.0.0.1:8080: in use")))
    result = run("local", make_build(tmp_path / "out"), "--no-template")
    assert result.exit_code == 1
    assert error_line(result) == "error: cannot listen on 127.0.0.1:8080: in use"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--no-template", "--api", "rest", "--auth", "api_key"], "error: --no-template cannot honour --api, --auth: the manifest decides the API; drop them, or drop --no-template to emulate the stack those options synthesize"),
        (["--no-template", "--package", "s3"], "error: --no-template cannot honour --package: the manifest decides the API; drop them, or drop --no-template to emulate the stack those options synthesize"),
        (["--no-template", "-o", "waf=true"], "error: --no-template cannot honour --option: the manifest decides the API; drop them, or drop --no-template to emulate the stack those options synthesize"),
        (["--template", "TEMPLATE", "--auth", "none"], "error: --template cannot honour --auth: the template given decides the API; drop them, or drop --template to emulate the stack those options synthesize"),
        (["--template", "TEMPLATE", "--no-template"], "error: give --template PATH or --no-template, not both"),
        (["--template", "missing.json"], "error: --template missing.json: no such file"),
        (["-o", "wafs=true"], "error: --option wafs: unknown key (did you mean 'waf'?)"),
        (["-o", "snapstart=true", "-o", "provisioned_concurrency=2"], "error: snapstart and provisioned_concurrency are mutually exclusive: Lambda cannot use SnapStart on a version with provisioned concurrency; set snapstart=false to use provisioned_concurrency, or provisioned_concurrency=0 to use SnapStart"),
    ],
)
def test_local_refuses_what_its_mode_cannot_honour(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], line: str
) -> None:
    calls = replace(monkeypatch, "slimserve.build.local.run.serve", lambda *a, **k: None)
    (tmp_path / "template.json").write_text("{}")
    args = [str(tmp_path / "template.json") if arg == "TEMPLATE" else arg for arg in args]
    result = run("local", make_build(tmp_path / "out"), *args)
    assert (result.exit_code, error_line(result)) == (2, line)
    assert calls == []


def test_invoke_event_honours_the_deploy_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = replace(monkeypatch, "slimserve.build.local.run.invoke_event", lambda *a, **k: {"statusCode": 200})
    project = make_project(tmp_path, 'api = "rest"\nauth = "none"\nallow_anonymous = true\nreserved_concurrency = 5\n')
    result = run("invoke", project, "--event", EVENTS_DIR / "http-api-v2.json", "-o", "memory_mb=2048")
    assert result.exit_code == 0 and json.loads(result.stdout) == {"statusCode": 200}
    assert calls[0]["args"][2].stack_options == StackOptions(
        api="rest", auth="none", allow_anonymous=True, reserved_concurrency=5, memory_mb=2048
    )


def test_anonymous_in_the_deploy_table_still_needs_its_acknowledgment_locally(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only `local --auth none` implies the acknowledgment; a [deploy] table that would fail
    `slimserve deploy` fails `slimserve local` the same way."""
    replace(monkeypatch, "slimserve.build.local.run.serve", lambda *a, **k: None)
    result = run("local", make_project(tmp_path, 'auth = "none"\n'))
    assert result.exit_code == 2
    assert "deploy: auth=none needs allow_anonymous=true" in result.output


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        ([], 2, "error: give exactly one of --event FILE or --url URL"),
        (["--event", "EVENT", "--url", "https://x.example"], 2, "error: give exactly one of --event FILE or --url URL"),
        (["--event", "EVENT", "--path", "/v2", "--iam"], 2, "error: --path, --iam apply only to --url, not to --event"),
        (["--url", "https://x.example", "-o", "api=rest"], 2, "error: --option applies only to --event, not to --url"),
        (["--url", "https://x.example", "--no-template"], 2, "error: --no-template applies only to --event, not to --url"),
        (["--url", "ftp://example"], 2, "error: --url must start with https:// (got 'ftp://example')"),
        (["--event", "BROKEN"], 2, "error: cannot read event BROKEN: Expecting value: line 1 column 1 (char 0)"),
    ],
)
def test_invoke_usage_errors(tmp_path: Path, args: list[str], code: int, line: str) -> None:
    (tmp_path / "broken.json").write_text("not json")
    names = {"EVENT": str(EVENTS_DIR / "http-api-v2.json"), "BROKEN": str(tmp_path / "broken.json")}
    result = run("invoke", make_build(tmp_path / "out"), *[names.get(arg, arg) for arg in args])
    assert (result.exit_code, error_line(result)) == (code, line.replace("BROKEN", names["BROKEN"]))


def test_invoke_event_function_failure_exits_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    failure = FunctionError({"errorType": "Runtime.ImportModuleError", "errorMessage": "No module named 'numpy'"})
    replace(monkeypatch, "slimserve.build.local.run.invoke_event", raising(failure))
    result = run("invoke", make_build(tmp_path / "out"), "--event", EVENTS_DIR / "http-api-v2.json", "--no-template")
    assert result.exit_code == 1
    assert error_line(result) == "error: the function failed: Runtime.ImportModuleError: No module named 'numpy'"


@pytest.mark.parametrize(("status", "code"), [(200, 0), (204, 0), (403, 1), (502, 1)])
def test_invoke_url_exits_non_zero_unless_2xx(monkeypatch: pytest.MonkeyPatch, status: int, code: int) -> None:
    answer = RemoteResponse(status=status, latency_ms=12.0, headers={"x-request-id": "r-1"}, body=b'{"message": "m"}')
    calls = replace(monkeypatch, "slimserve.build.deploy.remote.call_url", lambda *a, **k: answer)
    result = run("invoke", "--url", "https://abc.execute-api.eu-west-1.amazonaws.com", "--path", "/v2/models/digits")
    assert result.exit_code == code
    assert result.stdout.startswith(f"HTTP {status} in 12.0 ms (request id r-1)")
    assert calls[0]["path"] == "/v2/models/digits"
    if code:
        assert result.stderr.strip() == f"error: the API answered HTTP {status} (not 2xx)"


# --- synth, deploy, diff, destroy -------------------------------------------------------------------


def test_synth_follows_the_deploy_table_without_flags(cli_calls: list[list[str]], tmp_path: Path) -> None:
    project = make_project(tmp_path, 'api = "rest"\nauth = "api_key"\napi_keys = ["ci"]\n')
    result = run("synth", project)
    assert result.exit_code == 0, result.output
    build = (project / "dist" / "toy").resolve()
    assert "synthesized" in result.stderr and str(build / "cdk.out" / "slimserve-toy.template.json") in result.stderr.replace("\n", "")
    (args,) = cli_calls
    assert args[args.index("--output") + 1] == str(build / "cdk.out")
    assert f'options={json.dumps({"api": "rest", "auth": "api_key", "api_keys": ["ci"]}, separators=(",", ":"))}' in args


@pytest.mark.parametrize(
    ("args", "context"),
    [
        (["-o", "auth=jwt", "-o", "jwt_issuer=https://issuer.example", "-o", "jwt_audience=web,cli"], {"auth": "jwt", "jwt_issuer": "https://issuer.example", "jwt_audience": ["web", "cli"]}),
        (["--api", "rest", "--auth", "api_key", "-o", 'api_keys=["a","b"]'], {"api": "rest", "auth": "api_key", "api_keys": ["a", "b"]}),
        (["--api", "rest", "-o", "api=http", "-o", "waf=true"], {"api": "rest", "waf": True}),
    ],
)
def test_synth_options_and_flags(cli_calls: list[list[str]], tmp_path: Path, args: list[str], context: dict[str, Any]) -> None:
    result = run("synth", make_build(tmp_path / "out"), "--out", tmp_path / "assembly", *args)
    assert result.exit_code == 0, result.output
    contexts = [arg for arg in cli_calls[0] if arg.startswith("options=")]
    assert contexts == [f"options={json.dumps(context, separators=(',', ':'))}"]
    assert cli_calls[0][cli_calls[0].index("--output") + 1] == str((tmp_path / "assembly").resolve())


def test_synth_exit_codes(cli_calls: list[list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    build = make_build(tmp_path / "out")
    result = run("synth", build, "-o", "auth=api_key")
    assert (result.exit_code, error_line(result)) == (2, "error: auth=api_key needs api=rest: HTTP APIs have no API keys or usage plans (use auth=iam or auth=jwt with api=http)")
    assert cli_calls == []
    monkeypatch.setattr(cdk, "_run_cli", raising(CdkError("cdk synth failed (exit code 1)")))
    result = run("synth", build)
    assert (result.exit_code, error_line(result)) == (1, "error: cdk synth failed (exit code 1)")


@pytest.mark.parametrize("command", ["deploy", "diff", "destroy"])
def test_aws_commands_without_credentials_say_how_to_provide_them(
    cli_calls: list[list[str]], no_aws_credentials: None, tmp_path: Path, command: str
) -> None:
    result = run(command, make_build(tmp_path / "out"), "--force" if command == "destroy" else "--out", *([] if command == "destroy" else [tmp_path / "a"]))
    assert result.exit_code == 2
    assert error_line(result).startswith(f"error: no AWS credentials found: `slimserve {command}` acts on your AWS account")
    assert "AWS_PROFILE" in error_line(result) and "aws sso login" in error_line(result)
    assert cli_calls == []  # the CDK CLI never started


@pytest.mark.parametrize(
    ("args", "action"),
    [
        (["deploy"], ["deploy", "slimserve-toy", "--require-approval", "broadening"]),
        (["deploy", "--yes"], ["deploy", "slimserve-toy", "--require-approval", "never"]),
        (["diff"], ["diff", "slimserve-toy"]),
        (["destroy", "--force"], ["destroy", "slimserve-toy", "--force"]),
    ],
)
def test_aws_commands_act_on_the_synthesized_assembly(
    cli_calls: list[list[str]], aws_credentials: None, tmp_path: Path, args: list[str], action: list[str]
) -> None:
    project = make_project(tmp_path, 'api = "rest"\nauth = "iam"\n')
    result = run(args[0], project, *args[1:])
    assert result.exit_code == 0, result.output
    synth, call = cli_calls
    assert synth[0] == "synth" and 'options={"api":"rest"}' in synth
    assembly = str((project / "dist" / "toy" / "cdk.out").resolve())
    assert [arg for arg in call if arg not in ("--app", assembly)] == action
    assert call[call.index("--app") + 1] == assembly


def test_destroy_without_a_terminal_needs_force(cli_calls: list[list[str]], aws_credentials: None, tmp_path: Path) -> None:
    result = run("destroy", make_build(tmp_path / "out"))
    assert (result.exit_code, error_line(result)) == (
        2,
        "error: destroy asks for confirmation and no terminal is attached: pass --force to delete the stack without asking",
    )
    assert cli_calls == []


def test_deploy_failure_without_a_terminal_points_at_yes(
    cli_calls: list[list[str]], aws_credentials: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def deploy_fails(args: list[str], *, env: dict[str, str]) -> None:
        if args[0] == "deploy":
            raise CdkError("cdk deploy failed (exit code 1)")
        cli_calls.append(list(args))
        out = Path(args[args.index("--output") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "slimserve-toy.template.json").write_text("{}")

    monkeypatch.setattr(cdk, "_run_cli", deploy_fails)
    result = run("deploy", make_build(tmp_path / "out"))
    assert (result.exit_code, error_line(result)) == (
        1,
        "error: cdk deploy failed (exit code 1); without a terminal, security changes cannot be approved: pass --yes to approve them",
    )


@pytest.mark.parametrize("command", ["deploy", "diff", "destroy"])
def test_a_failing_cdk_cli_exits_1(
    cli_calls: list[list[str]], aws_credentials: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: str
) -> None:
    def action_fails(args: list[str], *, env: dict[str, str]) -> None:
        if args[0] != "synth":
            raise CdkError(f"cdk {args[0]} failed (exit code 1)")
        out = Path(args[args.index("--output") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "slimserve-toy.template.json").write_text("{}")

    monkeypatch.setattr(cdk, "_run_cli", action_fails)
    result = run(command, make_build(tmp_path / "out"), "--yes" if command == "deploy" else "--force" if command == "destroy" else "--out", *([tmp_path / "a"] if command == "diff" else []))
    assert (result.exit_code, error_line(result)) == (1, f"error: cdk {command} failed (exit code 1)")


@pytest.mark.parametrize(("failed", "code"), [(False, 0), (True, 1)])
def test_bench_exit_codes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, failed: bool, code: int) -> None:
    calls = replace(monkeypatch, "slimserve.build.bench.suite.run_bench", lambda *a, **k: {})
    replace(monkeypatch, "slimserve.build.bench.suite.bench_failed", lambda results: failed)
    result = run("bench", "--quick", "--out", tmp_path)
    assert result.exit_code == code
    assert calls[0]["args"][1] == tmp_path and calls[0]["quick"] is True
    if failed:
        assert error_line(result) == "error: some benchmark sections failed or saw errors: see results.json"


# --- end to end through the pinned CDK CLI ----------------------------------------------------------


@pytest.mark.slow
def test_deploy_table_in_an_example_makes_synth_a_rest_api_with_keys(
    digits_build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "digits"
    project.mkdir()
    config = (EXAMPLES_DIR / "digits" / "slimserve.toml").read_text()
    (project / "slimserve.toml").write_text(config + '\n[deploy]\napi = "rest"\nauth = "api_key"\n')
    shutil.copytree(digits_build, project / "dist" / "digits")
    monkeypatch.setenv("CDK_VALIDATION", "false")  # test_cdk_cli.py keeps one fully validated synth

    result = run("synth", project)

    assert result.exit_code == 0, result.output
    template_path = project / "dist" / "digits" / "cdk.out" / "slimserve-digits.template.json"
    resources = json.loads(template_path.read_text())["Resources"].values()
    types = {resource["Type"] for resource in resources}
    assert "AWS::ApiGateway::RestApi" in types and "AWS::ApiGatewayV2::Api" not in types
    assert {"AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::UsagePlanKey"} <= types
    methods = [r["Properties"] for r in resources if r["Type"] == "AWS::ApiGateway::Method"]
    assert methods and all(m["ApiKeyRequired"] for m in methods if m["HttpMethod"] != "OPTIONS")


def test_build_says_where_its_verdict_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import slimserve.build.pipeline.run as pipeline
    from slimserve.build.gate.validate import GateCheck, GateResult

    gate = GateResult("accuracy", 0.97, 0.97, 0.01, 360, [GateCheck("accuracy loss", 0.0, 0.01, "<=")])
    scope = "The gate's verdict holds only for the instruction set it ran on: Some CPU (avx2)."
    built = pipeline.BuildResult(tmp_path, None, gate, None, verdict_scope=scope, verdict_holds_only_here=True)  # type: ignore[arg-type]
    monkeypatch.setattr(pipeline, "run_build", lambda *args, **kwargs: built)
    result = run("build", tmp_path)
    assert result.exit_code == 0
    assert "accuracy gate passed on 360 held-out samples" in result.output
    assert scope in " ".join(result.output.split())
