"""Static checks of what a documentation block says, for blocks that run and blocks that cannot:

- every ``slimserve COMMAND`` line names a command of the CLI, every ``--flag`` is one of that
  command's options, and every ``-o/--option KEY=VALUE`` key is a stack option;
- every ``scripts/NAME`` exists;
- TOML blocks: each table that slimserve.toml has is valid against its schema; JSON and Python
  blocks parse.

So a flag renamed in the code fails the docs that still show the old one, even in a block that
deploys to AWS and is never run here.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from functools import cache
from typing import Any

from docs.blocks import Block

from repo import REPO_ROOT

# `slimserve` or `.venv/bin/slimserve` where a command starts: line start, a prompt, after a
# pipe/&&/;/$( or an `or:` in a comment.
_SLIMSERVE = re.compile(r"(?:^|\$ |[|;&(]\s*|or:\s*)(?:\S*/)?slimserve\s+(?P<rest>[a-z][^\n]*)")
_SCRIPT = re.compile(r"(?:^|\$ |[|;&(]\s*|\s)(?P<script>scripts/[\w-]+(?:\.py)?)")


@cache
def _cli() -> Any:
    import typer

    from slimserve.build.cli.main import app

    return typer.main.get_command(app)


@cache
def _stack_option_names() -> frozenset[str]:
    from slimserve.infra.options import StackOptions

    return frozenset(StackOptions.model_fields)


def _options_of(command: Any) -> set[str]:
    names = {"--help"}
    for parameter in command.params:
        names.update(getattr(parameter, "opts", []))
        names.update(getattr(parameter, "secondary_opts", []))
    return names


def check_slimserve_line(rest: str) -> list[str]:
    """Problems with one ``slimserve ...`` invocation (``rest``: what follows ``slimserve``)."""
    rest = re.split(r"\s{2,}|\s#", rest, maxsplit=1)[0]  # a listing's description, a comment
    rest = rest.replace("\\\n", " ")
    try:
        words = shlex.split(rest)
    except ValueError:
        words = rest.split()
    words = [word for word in words if word != "\\"]
    group = _cli()
    problems: list[str] = []
    names: list[str] = []
    while words and (not names or words[0] == "|"):
        if words[0] == "|":
            words.pop(0)
            if not words:
                break
        names.append(words.pop(0))
        if words[:1] != ["|"]:
            break
    for index, word in enumerate(list(words)):
        if word in {"|", "&&", ";", ">", "2>&1"} or word.startswith(("|", ">")):
            words = words[:index]
            break
    for name in names:
        command = group.commands.get(name)
        if command is None:
            problems.append(f"'slimserve {name}': no such command (commands: {', '.join(group.commands)})")
            continue
        known = _options_of(command)
        for index, word in enumerate(words):
            flag = word.split("=", 1)[0]
            if word.startswith("-") and not re.fullmatch(r"-?\d[\d.]*", word) and flag not in known:
                problems.append(f"'slimserve {name}': no option {flag} (it has {', '.join(sorted(known))})")
            if flag in ("-o", "--option"):
                value = word.split("=", 1)[1] if "=" in word else (words[index + 1] if index + 1 < len(words) else "")
                key = value.split("=", 1)[0]
                if key not in _stack_option_names():
                    problems.append(f"'slimserve {name}': -o {key}: not a stack option (infra/options.py)")
    return problems


def check_block(block: Block) -> list[str]:
    problems: list[str] = []
    if block.language in {"console", "bash", "sh", "shell", ""}:
        for match in _SLIMSERVE.finditer(block.text.replace("\\\n", " ")):
            problems += [f"{block.where}: {problem}" for problem in check_slimserve_line(match["rest"])]
        for match in _SCRIPT.finditer(block.text):
            if not (REPO_ROOT / match["script"]).is_file():
                problems.append(f"{block.where}: {match['script']}: no such script")
    elif block.language == "toml":
        problems += [f"{block.where}: {problem}" for problem in _check_toml(block.text)]
    elif block.language == "json":
        try:
            json.loads(block.text)
        except json.JSONDecodeError as exc:
            problems.append(f"{block.where}: not JSON: {exc}")
    elif block.language == "python":
        try:
            compile(block.text, block.where, "exec")
        except SyntaxError as exc:
            problems.append(f"{block.where}: not Python: {exc}")
    return problems


def _check_toml(text: str) -> list[str]:
    """Each table of slimserve.toml in the block must validate against its schema."""
    from pydantic import TypeAdapter, ValidationError

    from slimserve.build.config.schema import BuildConfig

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [f"not TOML: {exc}"]
    problems: list[str] = []
    for key, value in document.items():
        field = BuildConfig.model_fields.get(key)
        if field is None:
            problems.append(f"[{key}]: slimserve.toml has no such key")
            continue
        try:
            TypeAdapter(field.annotation).validate_python(value)
        except ValidationError as exc:
            problems.append(f"[{key}]: {exc}")
    return problems
