"""The documentation is executed: every fenced block of README.md, docs/, examples/*/README.md
and infra/README.md is run (shell sessions, with their shown output compared), parsed (TOML,
JSON, Python), or marked ``<!-- doctest: skip: REASON -->`` and then still checked against the
CLI (tests/docs/blocks.py says how to mark a block; session.py how a session runs; compare.py
how output is compared)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs.blocks import RUN_LANGUAGES, Block, blocks, documents
from docs.commands import check_block
from docs.sandbox import make_sandbox, session_env
from docs.session import check, commands, run_session

from repo import REPO_ROOT

DOCUMENTS = documents()
# Example folders whose session build (conftest.py) a document's `slimserve build` may replay.
SESSION_BUILDS = {"examples/digits": "digits_build", "examples/minilm": "minilm_build"}
SESSION_TIMEOUT_S = 900


def _runnable(path: Path) -> list[Block]:
    return [block for block in blocks(path) if block.runs]


def test_the_documents_are_found() -> None:
    names = {str(path) for path in DOCUMENTS}
    assert {"README.md", "docs/api.md", "examples/minilm/README.md", "infra/README.md"} <= names


@pytest.mark.parametrize("path", DOCUMENTS, ids=str)
def test_every_block_is_run_parsed_or_marked(path: Path) -> None:
    problems: list[str] = []
    for block in blocks(path):
        if block.skip_reason is None and block.language not in RUN_LANGUAGES | {"toml", "json", "python"}:
            problems.append(
                f"{block.where}: a {block.language or 'plain'} block is neither run nor parsed: mark it "
                "<!-- doctest: skip: REASON --> or make it a console/bash session"
            )
        if block.runs:
            try:
                parsed = commands(block)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if not parsed:
                problems.append(f"{block.where}: a {block.language} block without a command")
            for command in parsed:
                if re.search(r"slimserve local\b", command.text) and not re.search(r"--port (8080|8081|8082)\b", command.text):
                    problems.append(f"{command.where}: `slimserve local` in a session needs --port 8080/8081/8082 (the test moves them to free ports)")
        problems += check_block(block)
    assert not problems, "\n".join(problems)


def _sessions() -> list[Path]:
    return [path for path in DOCUMENTS if _runnable(path)]


@pytest.mark.slow
@pytest.mark.timeout(SESSION_TIMEOUT_S + 300)
@pytest.mark.xdist_group("minilm")  # most sessions replay the MiniLM build, made on that worker
@pytest.mark.parametrize("path", _sessions(), ids=str)
def test_document_runs_as_shown(path: Path, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    runnable = _runnable(path)
    text = "\n".join(block.text for block in runnable)
    builds = {
        example: request.getfixturevalue(fixture)
        for example, fixture in SESSION_BUILDS.items()
        if re.search(rf"\b{re.escape(example)}\b", text)
    }
    sandbox = make_sandbox(tmp_path / "clone", builds)
    session = [command for block in runnable for command in commands(block)]
    outcomes = run_session(session, sandbox, session_env(sandbox), timeout_s=SESSION_TIMEOUT_S)
    problems = check(outcomes)
    assert not problems, f"{path} does not run as shown (sandbox {sandbox}):\n" + "\n\n".join(problems)


def test_a_changed_label_or_flag_fails_the_docs(tmp_path: Path) -> None:
    """What the acceptance asks: docs that show an old label or flag fail."""
    from docs.commands import check_slimserve_line
    from docs.compare import match_output

    shown = ['{"model_name":"digits","outputs":[{"name":"label","datatype":"BYTES","shape":[1,3]}]}']
    renamed = ['{"model_name":"digits","outputs":[{"name":"labels","datatype":"BYTES","shape":[1,3]}]}']
    assert match_output(shown, shown) is None
    assert match_output(shown, renamed) is not None
    assert check_slimserve_line("local examples/digits --port 8080 --auth none") == []
    assert check_slimserve_line("local examples/digits --listen 8080") != []
    assert check_slimserve_line("synth examples/digits -o no_such_option=1") != []
    assert check_slimserve_line("publish examples/digits") != []
    assert (REPO_ROOT / "README.md").is_file()
