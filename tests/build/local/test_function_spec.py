"""What a function process is told about itself: Lambda's defaults for `slimserve local`, and
the values an emulator that assigned real ones (ARN, region, version, log names) passes."""

from __future__ import annotations

from pathlib import Path

from slimserve.build.local.function import FunctionSpec


def spec(tmp_path: Path, **fields: object) -> FunctionSpec:
    return FunctionSpec(
        name="digits",
        handler="slimserve.handler.main.handler",
        python=Path("/usr/bin/python3.12"),
        python_version="3.12",
        task_root=tmp_path,
        import_path=(tmp_path, tmp_path / "runtime"),
        memory_mb=1024,
        timeout_s=20.0,
        **fields,  # type: ignore[arg-type]
    )


def test_local_defaults(tmp_path: Path) -> None:
    local = spec(tmp_path)
    env = local.process_environment("127.0.0.1:1", tmp_path)
    assert local.function_arn == "arn:aws:lambda:us-east-1:123456789012:function:digits"
    assert (env["AWS_REGION"], env["AWS_LAMBDA_FUNCTION_VERSION"]) == ("us-east-1", "$LATEST")
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/digits"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == "local/[$LATEST]local"
    assert local.command() == ["/usr/bin/python3.12", "-S", "-m", "awslambdaric", "slimserve.handler.main.handler"]


def test_values_an_emulator_assigned(tmp_path: Path) -> None:
    arn = "arn:aws:lambda:eu-west-1:000000000000:function:digits:3"
    emulated = spec(
        tmp_path,
        region="eu-west-1",
        function_version="3",
        arn=arn,
        log_group_name="/aws/lambda/digits-fn",
        log_stream_name="2026/11/30/[3]abc",
        command_prefix=("unshare", "--mount"),
        environment={"AWS_REGION": "ignored: reserved"},
    )
    env = emulated.process_environment("127.0.0.1:1", tmp_path)
    assert emulated.function_arn == arn
    assert (env["AWS_REGION"], env["AWS_DEFAULT_REGION"], env["AWS_LAMBDA_FUNCTION_VERSION"]) == ("eu-west-1", "eu-west-1", "3")
    assert (env["AWS_LAMBDA_LOG_GROUP_NAME"], env["AWS_LAMBDA_LOG_STREAM_NAME"]) == ("/aws/lambda/digits-fn", "2026/11/30/[3]abc")
    assert emulated.command()[:3] == ["unshare", "--mount", "/usr/bin/python3.12"]
