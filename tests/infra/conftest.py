"""Fixtures for the CDK app: a fake bundle (manifest.json + tiny lambda.zip + model file) in
tmp_path and an in-process synth that records every cdk-nag acknowledgment it makes.

Synth here skips CDK's built-in CloudFormation validation (``validation=False``, ~0.3 s instead
of ~4 s); cdk-nag still runs on every synth. The CLI end-to-end test keeps full validation.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# jsii starts its Node process at the first aws_cdk import and copies the environment then.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import pytest

from slimserve.handler.manifest import (
    Canary,
    CanaryCheck,
    CanarySample,
    Limits,
    Manifest,
    ModelFile,
    Runtime,
    TensorSpec,
)

MODEL_BYTES = b"not really onnx, but bytes with a hash " * 64


def fake_canary(samples: int = 2) -> Canary:
    """What build/pipeline/canary.py records, for the fake digits model of these tests."""
    return Canary(
        check=CanaryCheck(output="logits", metric="top1", threshold=0.99),
        samples=[
            CanarySample(
                request={
                    "id": f"canary-{index}",
                    "inputs": [
                        {"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}
                    ],
                    "outputs": [{"name": "logits", "parameters": {"binary_data": False}}],
                },
                expected=[10.0 if digit == index else 0.0 for digit in range(10)],
            )
            for index in range(samples)
        ],
    )


@dataclass(frozen=True)
class NagAck:
    path: str
    rule: str
    reason: str


@dataclass
class Synthesized:
    stack: Any  # slimserve.infra.stack.SlimserveStack
    template: Any  # aws_cdk.assertions.Template
    template_json: dict[str, Any]
    template_path: Path
    report: dict[str, Any]
    acks: list[NagAck] = field(default_factory=list)

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.template_json["Resources"].items()
            if resource["Type"] == resource_type
        }

    def only(self, resource_type: str) -> dict[str, Any]:
        found = list(self.resources(resource_type).values())
        assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
        return found[0]

    def named(self, resource_type: str, prefix: str) -> tuple[str, dict[str, Any]]:
        """(logical id, resource) of the one resource of the type whose id starts with prefix."""
        found = [
            (logical_id, resource)
            for logical_id, resource in self.resources(resource_type).items()
            if logical_id.startswith(prefix)
        ]
        assert len(found) == 1, f"expected one {resource_type} {prefix}*, found {len(found)}"
        return found[0]

    def inference_function(self) -> dict[str, Any]:
        """The model's function (the stack also has the traffic hooks, maybe the S3 upload)."""
        return self.named("AWS::Lambda::Function", "InferenceFunction")[1]

    def policies_of(self, role_id: str) -> dict[str, dict[str, Any]]:
        """Every AWS::IAM::Policy attached to the role, by logical id."""
        return {
            logical_id: policy
            for logical_id, policy in self.resources("AWS::IAM::Policy").items()
            if {"Ref": role_id} in policy["Properties"]["Roles"]
        }

    def role_statements(self, role_id: str) -> list[dict[str, Any]]:
        return [
            statement
            for policy in self.policies_of(role_id).values()
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]

    def open_findings(self) -> list[tuple[str, str, str]]:
        """(plugin, rule, construct path) of every finding that is not acknowledged."""
        return [
            (plugin["pluginName"], violation["ruleName"], construct["constructPath"])
            for plugin in self.report["pluginReports"]
            for violation in plugin.get("violations", [])
            for construct in violation["violatingConstructs"]
        ]

    def acknowledged_findings(self) -> set[tuple[str, str]]:
        """(acknowledged-at path, acknowledgment id) of every suppressed finding."""
        return {
            (violation["acknowledgedAt"], violation["acknowledgedId"])
            for plugin in self.report["pluginReports"]
            for violation in plugin.get("suppressedViolations", [])
        }


def write_bundle(
    bundle_dir: Path,
    *,
    name: str = "digits",
    python: str = "3.12",
    architecture: str = "x86_64",
    memory_mb: int = 1024,
    timeout_s: int = 20,
    max_body_bytes: int = Limits().max_body_bytes,
    model: bytes = MODEL_BYTES,
    canary: Canary | None = fake_canary(),
) -> Path:
    """dist/<name>/ as the build writes it: manifest.json, lambda.zip, model.onnx."""
    bundle_dir.mkdir(parents=True, exist_ok=True)
    (bundle_dir / "model.onnx").write_bytes(model)
    with zipfile.ZipFile(bundle_dir / "lambda.zip", "w") as bundle:
        bundle.writestr("slimserve/handler/__init__.py", "")
        bundle.writestr("slimserve/handler/main.py", "def handler(event, context):\n    return {}\n")
    manifest = Manifest(
        name=name,
        model=ModelFile(
            file="model.onnx", sha256=hashlib.sha256(model).hexdigest(), bytes=len(model)
        ),
        inputs=[TensorSpec(name="pixels", datatype="FP32", shape=[-1, 64])],
        outputs=[TensorSpec(name="logits", datatype="FP32", shape=[-1, 10])],
        runtime=Runtime(
            python=python,
            architecture=architecture,
            memory_mb=memory_mb,
            timeout_s=timeout_s,
            limits=Limits(max_body_bytes=max_body_bytes),
        ),
        canary=canary,
    )
    path = bundle_dir / "manifest.json"
    path.write_text(manifest.to_json(), encoding="utf-8")
    return path


@pytest.fixture()
def make_bundle(tmp_path: Path) -> Callable[..., Path]:
    """Returns manifest.json's path; keyword arguments change the manifest's runtime."""

    def make(**manifest_fields: Any) -> Path:
        return write_bundle(tmp_path / "dist" / "digits", **manifest_fields)

    return make


@pytest.fixture()
def synth(
    tmp_path: Path, make_bundle: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Synthesized]:
    """synth(options, **manifest_fields) -> Synthesized. Raises if cdk-nag finds anything open."""
    from aws_cdk.assertions import Template

    from slimserve.infra import nag
    from slimserve.infra.app import build_app
    from slimserve.infra.options import parse_options

    recorded: list[NagAck] = []
    real_acknowledge = nag.acknowledge

    def recording_acknowledge(construct: Any, *acks: nag.Ack) -> None:
        recorded.extend(NagAck(construct.node.path, ack.rule, ack.reason) for ack in acks)
        real_acknowledge(construct, *acks)

    monkeypatch.setattr(nag, "acknowledge", recording_acknowledge)
    counter = iter(range(1_000))

    def run(
        options: dict[str, Any] | None = None,
        *,
        validation: bool = False,
        **manifest_fields: Any,
    ) -> Synthesized:
        recorded.clear()
        manifest_path = make_bundle(**manifest_fields)
        outdir = tmp_path / f"cdk.out.{next(counter)}"
        app, stack = build_app(
            manifest_path, parse_options(options), outdir=str(outdir), validation=validation
        )
        app.synth()
        template_path = outdir / f"{stack.stack_name}.template.json"
        template_json = json.loads(template_path.read_text(encoding="utf-8"))
        report = json.loads((outdir / "validation-report.json").read_text(encoding="utf-8"))
        return Synthesized(
            stack=stack,
            template=Template.from_json(template_json),
            template_json=template_json,
            template_path=template_path,
            report=report,
            acks=list(recorded),
        )

    return run


# cfn-lint findings tolerated, each with why:
# - W3005 on a Lambda function's DependsOn its own execution role (or that role's default
#   policy): aws-cdk-lib adds the explicit DependsOn so the policy exists before the function
#   is created; the GetAtt on the role alone would not wait for the policy. Redundant for the
#   role, needed for the policy; harmless either way.
def _tolerated(match: Any) -> bool:
    return match.rule.id == "W3005" and "/Properties/Role'" in match.message


@pytest.fixture(scope="session")
def cfn_lint() -> Callable[[Path], list[str]]:
    """cfn-lint a template with every rule (us-east-1); returns the findings not tolerated."""
    from cfnlint.api import lint
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner

    regions = ["us-east-1"]
    # Loading the rules takes ~0.4 s: once per session, as the cfn-lint CLI does per run.
    rules = Runner(ConfigMixIn(regions=regions)).rules

    def run(template_path: Path) -> list[str]:
        matches = lint(template_path.read_text(encoding="utf-8"), rules=rules, regions=regions)
        return [
            f"{match.rule.id} {match.message} ({match.path_string})"
            for match in matches
            if not _tolerated(match)
        ]

    return run
