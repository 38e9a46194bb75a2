"""What a published Lambda version says about the model it serves, in its description.

Every deploy of a new build publishes a version (infra/function.py) whose description is one
line of ``key=value`` fields::

    slimserve model=digits version=2 sha256=2c4d...34f5 gate=accuracy:0.986111:passed built=2026-11-30T19:58:23Z

so ``slimserve versions`` and ``slimserve rollback`` read the model, its gate result and its
build time back from AWS (``lambda:ListVersionsByFunction``), not from local files. The gate
value is the candidate's metric from the manifest's ``validation``; ``gate=none`` marks a
manifest without one. ``built`` is when ``lambda.zip`` was written (the zip's bytes carry no
time: builds are deterministic). Lambda limits a description to 256 characters.

Standard library only: the CLI imports it without loading the CDK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from slimserve.handler.manifest import Manifest
from slimserve.infra.errors import OptionsError

PREFIX = "slimserve"
MAX_DESCRIPTION_CHARS = 256  # Lambda's limit for function and version descriptions
_FIELD = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class VersionRecord:
    model: str
    version: str
    sha256: str
    gate_metric: str | None  # None: the manifest had no gate result
    gate_value: float | None
    gate_passed: bool | None
    built_at: datetime | None

    def description(self) -> str:
        gate = (
            "none"
            if self.gate_metric is None
            else f"{self.gate_metric}:{self.gate_value:.6g}:{'passed' if self.gate_passed else 'failed'}"
        )
        built = f" built={self.built_at:%Y-%m-%dT%H:%M:%SZ}" if self.built_at else ""
        return (
            f"{PREFIX} model={self.model} version={self.version} sha256={self.sha256} "
            f"gate={gate}{built}"
        )


class VersionRecordError(OptionsError):
    """The manifest's values do not fit in a Lambda description."""


def record_for(manifest: Manifest, built_at: datetime | None) -> VersionRecord:
    gate = manifest.validation
    record = VersionRecord(
        model=manifest.name,
        version=manifest.version,
        sha256=manifest.model.sha256,
        gate_metric=gate.metric if gate else None,
        gate_value=gate.candidate if gate else None,
        gate_passed=gate.passed if gate else None,
        built_at=built_at.astimezone(UTC).replace(microsecond=0) if built_at else None,
    )
    if not re.fullmatch(r"\S+", manifest.version) or (gate and not re.fullmatch(r"\S+", gate.metric)):
        raise VersionRecordError(
            f"manifest version {manifest.version!r} and the gate metric must not contain spaces "
            "(they go into the Lambda version's description)"
        )
    if len(record.description()) > MAX_DESCRIPTION_CHARS:
        raise VersionRecordError(
            f"manifest name and version are too long for a Lambda version description "
            f"({len(record.description())} characters with the sha256 and gate result; Lambda "
            f"allows {MAX_DESCRIPTION_CHARS}): shorten the version {manifest.version!r}"
        )
    return record


def parse_description(description: str | None) -> VersionRecord | None:
    """The record a slimserve description holds; None for any other description."""
    if not description or not description.startswith(f"{PREFIX} model="):
        return None
    fields = dict(_FIELD.findall(description))
    if not {"model", "version", "sha256", "gate"} <= fields.keys():
        return None
    metric = value = passed = None
    if fields["gate"] != "none":
        parts = fields["gate"].rsplit(":", 2)
        if len(parts) != 3:
            return None
        metric, raw_value, outcome = parts
        try:
            value = float(raw_value)
        except ValueError:
            return None
        passed = outcome == "passed"
    built_at = None
    if "built" in fields:
        try:
            built_at = datetime.strptime(fields["built"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            built_at = None
    return VersionRecord(
        model=fields["model"],
        version=fields["version"],
        sha256=fields["sha256"],
        gate_metric=metric,
        gate_value=value,
        gate_passed=passed,
        built_at=built_at,
    )
