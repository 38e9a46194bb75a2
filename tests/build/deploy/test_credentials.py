"""build/deploy/credentials.py: deploy/diff/destroy say that credentials are missing and how to
provide them, found through botocore's chain without any network call."""

from __future__ import annotations

from pathlib import Path

import botocore.credentials
import pytest

from slimserve.build.deploy.credentials import HOW_TO_PROVIDE, require_aws_credentials
from slimserve.build.errors import EXIT_USAGE, CredentialsError


@pytest.fixture()
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environment with no AWS credentials anywhere; the network providers would fail."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_EC2_METADATA_DISABLED",
    ):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "aws"
    config.mkdir()
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config / "credentials"))

    def no_network(self: object) -> None:
        raise AssertionError("the credential check must not call the instance or container endpoints")

    monkeypatch.setattr(botocore.credentials.InstanceMetadataProvider, "load", no_network)
    monkeypatch.setattr(botocore.credentials.ContainerProvider, "load", no_network)
    return config


def test_missing_credentials_say_how_to_provide_them(no_credentials: Path) -> None:
    with pytest.raises(CredentialsError) as caught:
        require_aws_credentials("deploy")
    assert str(caught.value) == (
        "no AWS credentials found: `slimserve deploy` acts on your AWS account and needs them "
        "(`slimserve synth` does not): set AWS_PROFILE to a profile of your AWS config (for IAM "
        "Identity Center, run `aws sso login --profile NAME` first), or export AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials); an EC2 instance "
        "role is not looked up here: use a profile with credential_source = Ec2InstanceMetadata"
    )
    assert caught.value.exit_code == EXIT_USAGE


def test_environment_credentials_are_found(no_credentials: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    require_aws_credentials("deploy")


def test_a_profile_is_found(no_credentials: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (no_credentials / "credentials").write_text("[dev]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_PROFILE", "dev")
    require_aws_credentials("diff")


def test_an_sso_profile_is_found_without_fetching(no_credentials: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found from the config alone; the token would be read (and refreshed) only when used.
    (no_credentials / "config").write_text(
        "[profile sso]\nsso_start_url = https://example.awsapps.com/start\nsso_region = eu-west-1\n"
        "sso_account_id = 123456789012\nsso_role_name = Deployer\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "sso")
    require_aws_credentials("deploy")


def test_an_unknown_profile_is_named(no_credentials: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nope")
    with pytest.raises(CredentialsError) as caught:
        require_aws_credentials("destroy")
    assert str(caught.value) == (
        "`slimserve destroy` needs AWS credentials: The config profile (nope) could not be found; "
        + HOW_TO_PROVIDE
    )


def test_a_container_endpoint_counts_without_being_called(no_credentials: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc")
    require_aws_credentials("deploy")
