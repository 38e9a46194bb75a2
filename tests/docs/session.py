"""Run a document's shell blocks as one terminal session and compare what they print.

A ``console`` block is a session: ``$ `` starts a command (it goes on over the next lines while
bash says it is incomplete: a trailing backslash, an open quote), and the lines up to the next
``$ `` are its output, compared with compare.match_output. A command whose shown output is
empty is not compared (its exit code still is). A ``bash`` block is commands only.

Every runnable block of one document runs, in order, in ONE bash process in the document's
sandbox (sandbox.py), as a reader would type them into one terminal: variables, ``eval``s and
background servers carry over from block to block. Each command must exit 0, unless its shown
output has an ``error:`` line (the CLI's failure line): then it must exit non-zero. The session
stops at the first command that does not.

A command ending in ``&`` runs in the background; its output, compared when the session ends,
must contain the shown lines (a server logs before and after them). Background jobs are stopped
with SIGTERM when the session ends, and the whole process group is killed after that.

Ports: the docs use 8080, 8081 and 8082 for ``slimserve local``; each session gets free ports
in their place (in commands and shown output), so sessions run in parallel with anything else.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from docs.blocks import Block
from docs.compare import Mismatch, match_output

DOC_PORTS = ("8080", "8081", "8082")
_BACKGROUND = re.compile(r"(?<![&|])&\s*(#[^\n]*)?$")
_ERROR_LINE = re.compile(r"^\s*error:", re.MULTILINE)


@dataclass
class Command:
    block: Block
    line: int  # line in the document
    text: str
    shown: list[str] = field(default_factory=list)

    @property
    def background(self) -> bool:
        return bool(_BACKGROUND.search(self.text.rstrip()))

    @property
    def expects_failure(self) -> bool:
        return any(_ERROR_LINE.match(line) for line in self.shown)

    @property
    def where(self) -> str:
        return f"{self.block.path}:{self.line}"


def _complete(command: str) -> bool:
    """Is ``command`` a whole shell command (bash parses it without asking for more)?"""
    if command.rstrip().endswith("\\"):
        return False
    checked = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
    return checked.returncode == 0 or not re.search(r"unexpected (EOF|end of file)", checked.stderr)


def commands(block: Block) -> list[Command]:
    lines = block.text.splitlines()
    found: list[Command] = []
    prompt = block.language == "console"
    i = 0
    while i < len(lines):
        line = lines[i]
        if prompt and not line.startswith("$ "):
            if found:
                found[-1].shown.append(line)
            elif line.strip():
                raise ValueError(f"{block.path}:{block.line + 1 + i}: output before the first '$ ' command")
            i += 1
            continue
        if not prompt and (not line.strip() or line.lstrip().startswith("#")):
            i += 1
            continue
        start = i
        text = line[2:] if prompt else line
        while not _complete(text) and i + 1 < len(lines):
            i += 1
            text += "\n" + lines[i]
        found.append(Command(block, block.line + 1 + start, text))
        i += 1
    return found


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Outcome:
    command: Command
    exit_code: int | None  # None: not run (an earlier command failed)
    output: list[str]


def _script(commands: list[Command], outputs: Path, ports: dict[str, str]) -> str:
    lines = [
        "set -u",
        # Stop background jobs the way Ctrl-C would, and wait for them to clean up.
        "stop_jobs() { for pid in $(jobs -p); do kill -TERM \"$pid\" 2>/dev/null; done; wait; }",
        "trap stop_jobs EXIT",
    ]
    for index, command in enumerate(commands):
        text = _substitute(command.text, ports)
        out = outputs / f"{index}.out"
        lines.append(f"# {command.where}")
        if command.background:
            body = _BACKGROUND.sub("", text.rstrip())
            lines.append(f"{body} > {out} 2>&1 < /dev/null &")
            lines.append(f"echo 0 > {outputs / f'{index}.rc'}")
            continue
        lines.append("{ " + text + f"\n}} > {out} 2>&1 < /dev/null")
        lines.append(f"rc=$?; echo $rc > {outputs / f'{index}.rc'}")
        wrong = '[ "$rc" = 0 ]' if command.expects_failure else '[ "$rc" != 0 ]'
        lines.append(f"if {wrong}; then exit 90; fi")
    return "\n".join(lines) + "\n"


def _substitute(text: str, ports: dict[str, str]) -> str:
    for documented, actual in ports.items():
        text = re.sub(rf"\b{documented}\b", actual, text)
    return text


def run_session(
    commands: list[Command], sandbox: Path, env: dict[str, str], timeout_s: float
) -> list[Outcome]:
    """Run ``commands`` in one bash process in ``sandbox``; return each one's exit code and output."""
    outputs = sandbox / ".doctest"
    outputs.mkdir(exist_ok=True)
    ports = dict(zip(DOC_PORTS, map(str, free_ports(len(DOC_PORTS)))))
    script = outputs / "session.sh"
    script.write_text(_script(commands, outputs, ports), encoding="utf-8")
    process = subprocess.Popen(
        ["bash", str(script)], cwd=sandbox, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass
    finally:
        _kill_group(process)
    reverse = {actual: documented for documented, actual in ports.items()}
    results: list[Outcome] = []
    for index, command in enumerate(commands):
        rc_file, out_file = outputs / f"{index}.rc", outputs / f"{index}.out"
        code = int(rc_file.read_text().strip() or -1) if rc_file.is_file() else None
        text = out_file.read_text(encoding="utf-8", errors="replace") if out_file.is_file() else ""
        results.append(Outcome(command, code, _substitute(text, reverse).splitlines()))
    return results


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """The session's own process group (it started it): whatever is still running in it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def check(outcomes: list[Outcome]) -> list[str]:
    """Every problem, one message each, naming the document line."""
    problems: list[str] = []
    for outcome in outcomes:
        command = outcome.command
        tolerance = command.block.tolerance
        if outcome.exit_code is None:
            problems.append(f"{command.where}: not run (an earlier command failed)")
            break
        if command.expects_failure != (outcome.exit_code != 0):
            wanted = "non-zero (the docs show an error)" if command.expects_failure else "0"
            problems.append(
                f"{command.where}: `{command.text}` exited {outcome.exit_code}, the docs imply {wanted}\n"
                + "\n".join(f"    {line}" for line in outcome.output[-60:])
            )
            continue
        if any(line.strip() for line in command.shown):
            mismatch: Mismatch | None = match_output(
                command.shown, outcome.output, tolerance=tolerance, partial=command.background
            )
            if mismatch is not None:
                problems.append(f"{command.where}: `{command.text}`: {mismatch}")
    return problems
