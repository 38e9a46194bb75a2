"""The fenced blocks of the documentation, each with the directive written just above it.

Which files: ``DOCUMENTS`` (globs from the repository root), so a new page under docs/ or a new
example's README is picked up without touching the tests. A directive is an HTML comment on the
line(s) right above the fence (GitHub does not render it):

    <!-- doctest: skip: deploys to AWS, which the tests never reach -->
    <!-- doctest: tolerance: 0.01 -->
    <!-- doctest: tolerance: 0.01; skip: REASON -->   (skip comes last: its reason runs to the end)

- ``skip: REASON``: not run here; the reason is required. slimserve command lines in the block
  are still checked against the CLI (commands, flags, stack options: see commands.py).
- ``tolerance: X``: plain numbers in the shown output may differ by up to X (absolute).

Without ``skip``, ``console`` blocks (``$ `` prompts, output below) and ``bash``/``sh`` blocks
(commands only) run; ``toml``, ``json`` and ``python`` blocks are parsed (TOML tables of
slimserve.toml are validated against its schema); any other block must say ``skip``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

from repo import REPO_ROOT

DOCUMENTS = ("README.md", "docs/**/*.md", "examples/*/README.md", "infra/README.md")
RUN_LANGUAGES = {"console", "bash", "sh", "shell"}
PARSED_LANGUAGES = {"toml", "json", "python"}
_DIRECTIVE = re.compile(r"<!--\s*doctest:(?P<body>.*?)-->", re.DOTALL)


class DirectiveError(ValueError):
    pass


@dataclass(frozen=True)
class Block:
    path: Path  # relative to the repository root
    line: int  # 1-based line of the opening fence
    language: str  # first word of the info string, "" when there is none
    text: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def skip_reason(self) -> str | None:
        return self.options.get("skip")

    @property
    def tolerance(self) -> float:
        return float(self.options.get("tolerance", "0"))

    @property
    def runs(self) -> bool:
        return self.skip_reason is None and self.language in RUN_LANGUAGES


def documents() -> list[Path]:
    """Every documentation file the test covers, relative to the repository root."""
    found: set[Path] = set()
    for pattern in DOCUMENTS:
        found.update(path.relative_to(REPO_ROOT) for path in REPO_ROOT.glob(pattern) if path.is_file())
    return sorted(found)


def parse_directive(text: str, where: str) -> dict[str, str]:
    match = _DIRECTIVE.fullmatch(text.strip())
    if match is None:
        return {}
    options: dict[str, str] = {}
    body = match["body"].strip()
    while body:
        key, _, body = (piece.strip() for piece in body.partition(":"))
        if key == "skip":  # the reason is the rest of the comment, whatever it holds
            value, body = body, ""
        else:
            value, _, body = (piece.strip() for piece in body.partition(";"))
        if key not in {"skip", "tolerance"}:
            raise DirectiveError(f"{where}: unknown doctest directive {key!r} (skip: REASON, tolerance: X)")
        if key == "skip" and not value:
            raise DirectiveError(f"{where}: 'skip' needs a reason: <!-- doctest: skip: why it cannot run here -->")
        if key == "tolerance":
            float(value)
        options[key] = value
    return options


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of ``path`` (relative to the repository root), in order."""
    source = (REPO_ROOT / path).read_text(encoding="utf-8")
    lines = source.splitlines()
    tokens = MarkdownIt("commonmark").parse(source)
    found: list[Block] = []
    comments = [token for token in tokens if token.type == "html_block" and token.map]
    for token in tokens:
        if token.type not in ("fence", "code_block") or not token.map:
            continue
        start = token.map[0]
        where = f"{path}:{start + 1}"
        options: dict[str, str] = {}
        for comment in comments:
            end = comment.map[1]  # type: ignore[index]
            if end <= start and all(not line.strip() for line in lines[end:start]) and start - end <= 1:
                options = parse_directive(comment.content, where)
        language = token.info.split()[0] if token.type == "fence" and token.info.strip() else ""
        found.append(Block(path, start + 1, language, token.content, options))
    return found
