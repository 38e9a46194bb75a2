"""scripts/demo works for every example: it builds the example, serves it with `slimserve
local` and sends the request the example ships (EXAMPLE/request.json) to the route the build's
manifest names. Runs in a fresh copy of the repository (tests/docs/sandbox.py): the digits and
MiniLM builds are the session's own (the same `slimserve build` command, replayed), any other
example is built for real."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from docs.sandbox import make_sandbox, session_env

from repo import REPO_ROOT

EXAMPLES = sorted(path.parent.name for path in (REPO_ROOT / "examples").glob("*/slimserve.toml"))
SESSION_BUILDS = {"digits": "digits_build", "minilm": "minilm_build"}


def test_every_example_ships_its_request() -> None:
    for example in EXAMPLES:
        request = json.loads((REPO_ROOT / "examples" / example / "request.json").read_text(encoding="utf-8"))
        assert request["inputs"], example


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("minilm")
@pytest.mark.parametrize("example", EXAMPLES)
def test_demo_answers_the_examples_request(example: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    builds = {f"examples/{name}": request.getfixturevalue(fixture) for name, fixture in SESSION_BUILDS.items()}
    sandbox = make_sandbox(tmp_path / "clone", builds)
    # The distilled example's teacher is the digits model: reuse the session's trained weights.
    trained = builds["examples/digits"].parent.parent / "weights.safetensors"
    shutil.copyfile(trained, sandbox / "examples" / "digits" / "weights.safetensors")
    # `scripts/demo` alone demonstrates digits, the README's first command.
    command = ["scripts/demo"] if example == "digits" else ["scripts/demo", f"examples/{example}"]
    run = subprocess.run(
        command, cwd=sandbox, env=session_env(sandbox), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=840,
    )
    assert run.returncode == 0, run.stdout[-6000:]
    manifest = json.loads(next((sandbox / "examples" / example / "dist").glob("*/manifest.json")).read_text())
    lines = run.stdout.splitlines()
    post = next(line for line in lines if line.startswith("POST "))
    assert post.endswith(f"/v2/models/{manifest['name']}/infer  (examples/{example}/request.json)"), post
    answer = lines[lines.index(post) + 1 :]
    names = [output["name"] for output in manifest["outputs"]]
    printed = [line for line in answer if line.split(" ", 1)[0] in names]
    assert printed, run.stdout[-3000:]
    if manifest["task"] == "classification":
        assert any(line.startswith('label BYTES [1, 3] ["4",') for line in printed), printed
    else:
        assert printed[0].startswith("embedding FP32 [3, 384] ["), printed


def test_demo_refuses_a_folder_without_a_request(tmp_path: Path) -> None:
    example = tmp_path / "example"
    example.mkdir()
    (example / "slimserve.toml").write_text('name = "x"\n')
    run = subprocess.run([str(REPO_ROOT / "scripts" / "demo"), str(example)], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr == f"demo: {example}/request.json is missing: every example ships the request it demonstrates\n"
