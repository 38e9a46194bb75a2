"""The AWS emulator as tests use it: its exported settings, boto3 clients on it, and the
``slimserve`` CLI run against it as a user would (see tests/emulator/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from repo import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "aws-emulator"
# Another checkout's suite may hold the machine's one emulator: wait for it rather than fail.
LOCK_WAIT_S = 600


@dataclass(frozen=True)
class Emulator:
    env: dict[str, str]  # this process's environment plus the exported emulator settings

    @property
    def endpoint(self) -> str:
        return self.env["AWS_ENDPOINT_URL"]

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def slimserve(self, *args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``slimserve ARGS`` in a subprocess with the emulator's environment."""
        command = [sys.executable, "-m", "slimserve.build.cli", *map(str, args)]
        result = subprocess.run(
            command, env=self.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
        )
        if check and result.returncode != 0:
            pytest.fail(f"slimserve {' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr[-4000:]}")
        return result


def parse_exports(text: str) -> dict[str, str]:
    """``export KEY=VALUE`` lines -> {KEY: VALUE}; ``unset`` lines name keys to drop (value "")."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            found[key] = value
        elif line.startswith("unset "):
            found.update({key: "" for key in line.split()[1:]})
    return found


