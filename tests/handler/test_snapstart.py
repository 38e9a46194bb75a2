"""SnapStart hooks: prime before the snapshot, reseed after restore; warm-up really infers."""

from __future__ import annotations

import random

import pytest
import snapshot_restore_py

from slimserve.handler.service import InferenceService
from slimserve.handler.snapstart import register_hooks


@pytest.fixture()
def clean_registries(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(snapshot_restore_py, "_before_snapshot_registry", [])
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", [])
    return snapshot_restore_py


def test_hooks_are_registered_and_run(clean_registries, digits_model) -> None:
    service = InferenceService(digits_model)
    calls: list[str] = []
    service_warm_up = service.warm_up

    def counting_warm_up() -> None:
        calls.append("warm")
        service_warm_up()

    assert register_hooks(counting_warm_up) is True
    (before, _, _), = clean_registries._before_snapshot_registry
    (after, _, _), = clean_registries._after_restore_registry
    before()
    assert calls == ["warm"]
    random.seed(1)
    first = random.random()
    random.seed(1)
    after()
    assert random.random() != first


def test_warm_up_runs_the_model(digits_model, monkeypatch: pytest.MonkeyPatch) -> None:
    service = InferenceService(digits_model)
    feeds = []
    real_run = digits_model.session.run
    monkeypatch.setattr(type(digits_model.session), "run", lambda self, names, inputs, *a: feeds.append(inputs) or real_run(names, inputs))
    service.warm_up()
    assert len(feeds) == 1 and feeds[0]["pixels"].shape == (1, 64)
