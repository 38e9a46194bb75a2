"""Do AWS credentials exist for ``deploy``, ``diff`` and ``destroy``? Asked before the CDK CLI
starts, so a missing login is one sentence that says how to provide one, not an SDK error.

botocore's own credential chain answers (environment, profiles, SSO, web identity, credential
processes, containers' variables), without any network call: the instance metadata (IMDS) and
container endpoints are not queried, and lazily refreshed credentials (SSO, assumed roles) are
found but never fetched.
"""

from __future__ import annotations

import os

from slimserve.build.errors import CredentialsError

# Providers that would make an HTTP call just to answer whether credentials exist.
_NETWORK_PROVIDERS = ("iam-role", "container-role")
# A container's credentials endpoint is announced by these variables (ECS, CodeBuild, EKS).
_CONTAINER_VARIABLES = ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")

HOW_TO_PROVIDE = (
    "set AWS_PROFILE to a profile of your AWS config (for IAM Identity Center, run "
    "`aws sso login --profile NAME` first), or export AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials); an EC2 instance "
    "role is not looked up here: use a profile with credential_source = Ec2InstanceMetadata"
)


def require_aws_credentials(command: str) -> None:
    """Raise CredentialsError (exit 2) when ``slimserve <command>`` would run without any."""
    import botocore.exceptions
    import botocore.session

    if any(os.environ.get(name) for name in _CONTAINER_VARIABLES):
        return
    try:
        resolver = botocore.session.Session().get_component("credential_provider")
        for name in _NETWORK_PROVIDERS:
            resolver.remove(name)
        found = resolver.load_credentials()
    except botocore.exceptions.ProfileNotFound as exc:
        raise CredentialsError(f"`slimserve {command}` needs AWS credentials: {exc}; {HOW_TO_PROVIDE}") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise CredentialsError(f"`slimserve {command}` cannot read your AWS credentials: {exc}") from None
    if found is None:
        raise CredentialsError(
            f"no AWS credentials found: `slimserve {command}` acts on your AWS account and needs "
            f"them (`slimserve synth` does not): {HOW_TO_PROVIDE}"
        )
