"""cdk-nag is really applied, findings really fail the synth, and every acknowledgment is
narrow and carries a specific reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from slimserve.infra import nag

Synth = Callable[..., Any]

# Options that, together, make every acknowledgment in infra/nag.py appear at least once.
ANONYMOUS = {"auth": "none", "allow_anonymous": True, "reserved_concurrency": 10}
COVERING_OPTIONS: list[dict[str, Any]] = [
    {},
    {"package": "s3"},
    {"api": "rest", "auth": "api_key"},
    {"api": "rest", **ANONYMOUS},
    ANONYMOUS,
]


def _all_acks() -> list[nag.Ack]:
    constants = [value for value in vars(nag).values() if isinstance(value, nag.Ack)]
    groups = [value for value in vars(nag).values() if isinstance(value, tuple)]
    made = [*nag.pinned_runtime("3.12"), nag.anonymous_api("HTTP")]
    return constants + [a for g in groups for a in g if isinstance(a, nag.Ack)] + made


def test_both_packs_run_on_every_synth(synth: Synth) -> None:
    result = synth()
    plugins = {plugin["pluginName"]: plugin for plugin in result.report["pluginReports"]}
    assert {"AwsSolutions", "Serverless"} <= set(plugins)
    assert plugins["AwsSolutions"]["conclusion"] == "success"
    assert plugins["Serverless"]["conclusion"] == "success"


def test_an_unacknowledged_finding_fails_the_synth(
    synth: Synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = nag.acknowledge

    def without_dlq_reason(construct: Any, *acks: nag.Ack) -> None:
        real(construct, *(ack for ack in acks if ack != nag.SYNC_INVOKE_NO_DLQ))

    monkeypatch.setattr(nag, "acknowledge", without_dlq_reason)
    with pytest.raises(RuntimeError, match=r"ValidationFailed(.|\n)*Serverless-LambdaDLQ"):
        synth()


def test_the_snapstart_warning_acknowledgment_is_needed(
    synth: Synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Acknowledged annotation warnings are not listed in the report, so prove this one the
    # other way round: without the acknowledgment, the warning is there.
    real = nag.acknowledge
    monkeypatch.setattr(
        nag,
        "acknowledge",
        lambda construct, *acks: real(
            construct, *(a for a in acks if a != nag.SNAPSTART_PUBLISHED)
        ),
    )
    warnings = {
        violation["ruleName"]
        for plugin in synth().report["pluginReports"]
        for violation in plugin["violations"]
    }
    assert nag.SNAPSTART_PUBLISHED.rule in warnings


def test_the_newest_runtime_needs_no_runtime_acknowledgment(synth: Synth) -> None:
    result = synth(python=nag.NAG_LATEST_PYTHON)
    assert result.open_findings() == []
    rules = {ack.rule for ack in result.acks}
    assert not rules & {ack.rule for ack in nag.pinned_runtime(nag.NAG_LATEST_PYTHON)}


def test_every_reason_is_specific() -> None:
    acks = _all_acks()
    assert len(acks) >= 12
    for ack in acks:
        assert "::" in ack.rule, ack  # plugin-qualified id, as the validation report prints it
        assert len(ack.reason) >= 80, ack
        assert not {"todo", "tbd", "n/a", "ignore"} & set(ack.reason.lower().split()), ack
    # Reasons are written for their finding, not pasted around.
    assert len({ack.reason for ack in acks}) >= 10


@pytest.mark.parametrize("options", COVERING_OPTIONS, ids=lambda o: str(o) or "defaults")
def test_acknowledgments_sit_on_the_narrowest_construct(
    synth: Synth, options: dict[str, Any]
) -> None:
    result = synth(options)
    stack_path = result.stack.node.path
    assert result.acks, "expected acknowledgments"
    for ack in result.acks:
        assert ack.path != stack_path and ack.path.startswith(stack_path + "/"), ack


def test_every_defined_acknowledgment_is_used(synth: Synth) -> None:
    used = {ack.rule for options in COVERING_OPTIONS for ack in synth(options).acks}
    used |= {ack.rule for ack in synth({"api": "rest", "auth": "iam"}).acks}
    defined = {ack.rule for ack in _all_acks()}
    assert defined <= used
