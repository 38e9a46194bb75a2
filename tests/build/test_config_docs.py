"""docs/config.md is generated from the config schema: every key documented, never out of date."""

from __future__ import annotations

from slimserve.build.config.docs import missing_descriptions, render
from slimserve.build.config.schema import BuildConfig
from slimserve.build.config.task_options import TASK_OPTIONS

from repo import REPO_ROOT

COMMITTED = REPO_ROOT / "docs" / "config.md"


def test_the_committed_doc_is_the_schemas() -> None:
    assert COMMITTED.read_text() == render(), "the config schema changed: run scripts/config-docs and commit docs/config.md"


def test_every_key_has_a_description() -> None:
    assert missing_descriptions() == []


def test_every_table_and_task_option_is_in_the_doc() -> None:
    text = render()
    for key in BuildConfig.model_fields:
        if key != "root":
            assert f"| `{key}` |" in text
    for task, model in TASK_OPTIONS.items():
        assert f'### `task = "{task}"`' in text
        for key in model.model_fields:
            assert f"| `{key}` |" in text
