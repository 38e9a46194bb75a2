"""Does a command's output match what the documentation shows?

The shown lines must match the output's lines one for one, in order, except:

- a line that is only ``...`` stands for any number of lines (none included);
- ``...`` inside a line stands for any text;
- whitespace is not compared (terminals and JSON printers space things differently);
- a number followed by a time unit (``9.8 s``, ``680 ms``) may be any number: times depend on
  the machine;
- a number followed by a size unit (``29.9 MiB``, ``31 KiB``) may differ by ``SIZE_TOLERANCE``
  (relative): sizes move with the pinned dependencies;
- any other number must be equal, or within the block's ``tolerance`` (absolute).

Labels, shapes, field names, messages and counts are therefore compared exactly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

SIZE_TOLERANCE = 0.05
ELLIPSIS = "..."
# 14,180 is one number; [1,3] (compact JSON) is two.
_NUMBER = r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
_TIME_UNIT = re.compile(r"\s?(?:s|ms|µs|us)\b")
_SIZE_UNIT = re.compile(r"\s?(?:B|KiB|MiB|GiB)\b")
_TOKEN = re.compile(rf"(?P<ellipsis>\.\.\.)|(?P<number>{_NUMBER})|(?P<space>\s+)")


@dataclass(frozen=True)
class _Number:
    value: float
    kind: str  # "time", "size" or "plain"


@dataclass(frozen=True)
class LinePattern:
    text: str
    regex: re.Pattern[str]
    numbers: tuple[_Number, ...]

    def matches(self, line: str, tolerance: float) -> bool:
        found = self.regex.fullmatch(line.strip())
        if found is None:
            return False
        for expected, actual in zip(self.numbers, found.groups()):
            if not _close(expected, _to_float(actual), tolerance):
                return False
        return True


def _to_float(text: str) -> float:
    return float(text.replace(",", ""))


def _close(expected: _Number, actual: float, tolerance: float) -> bool:
    if expected.kind == "time":
        return True
    if expected.kind == "size":
        return math.isclose(actual, expected.value, rel_tol=SIZE_TOLERANCE)
    return math.isclose(actual, expected.value, rel_tol=0.0, abs_tol=tolerance + 1e-12)


def compile_line(text: str) -> LinePattern:
    """The pattern of one documented line (whitespace: any amount, also none)."""
    text = text.strip()
    parts: list[str] = []
    numbers: list[_Number] = []
    position = 0
    for token in _TOKEN.finditer(text):
        parts.append(_literal(text[position : token.start()]))
        position = token.end()
        if token["ellipsis"]:
            parts.append(".*?")
        elif token["space"]:
            parts.append(r"\s*")
        elif token["number"]:
            before, rest = text[: token.start()][-1:], text[token.end() :]
            unit = "time" if _TIME_UNIT.match(rest) else "size" if _SIZE_UNIT.match(rest) else None
            # A number glued to a word (x86_64, p1, int8, sha256, 2xx) is part of the word.
            factor = rest[:1] == "x" and not rest[1:2].isalpha()  # 1.62x
            if before.isalpha() or before == "_" or (rest[:1].isalpha() and unit is None and not factor):
                parts.append(re.escape(token["number"]))
                continue
            numbers.append(_Number(_to_float(token["number"]), unit or "plain"))
            parts.append(f"({_NUMBER})")
    parts.append(_literal(text[position:]))
    return LinePattern(text, re.compile("".join(parts), re.DOTALL), tuple(numbers))


def _literal(text: str) -> str:
    """Literal text; optional whitespace after each punctuation character (``{"a":1}`` and
    ``{"a": 1}`` are the same JSON)."""
    return "".join(re.escape(char) + ("" if char.isalnum() else r"\s*") for char in text)


@dataclass
class Mismatch:
    expected: list[str]
    actual: list[str]
    reason: str

    def __str__(self) -> str:
        shown = "\n".join(f"    {line}" for line in self.expected)
        got = "\n".join(f"    {line}" for line in self.actual[:80])
        more = f"\n    ... ({len(self.actual) - 80} more lines)" if len(self.actual) > 80 else ""
        return f"{self.reason}\n  shown:\n{shown}\n  actual output:\n{got}{more}"


def match_output(expected: list[str], actual: list[str], *, tolerance: float = 0.0, partial: bool = False) -> Mismatch | None:
    """None when ``actual`` (lines) matches ``expected`` (the documented lines); ``partial``:
    the documented lines may be a contiguous part of the output (a background server's log)."""
    wanted = [line for line in expected if line.strip()]
    got = [line.rstrip() for line in actual if line.strip()]
    if partial:
        wanted = [ELLIPSIS, *wanted, ELLIPSIS]
    patterns = [None if line.strip() == ELLIPSIS else compile_line(line) for line in wanted]

    # Longest prefix of ``patterns`` matched, for the message; memoised search over positions.
    failures: dict[int, int] = {}
    seen: set[tuple[int, int]] = set()

    def search(i: int, j: int) -> bool:
        if (i, j) in seen:
            return False
        seen.add((i, j))
        if i == len(patterns):
            return j == len(got)
        pattern = patterns[i]
        if pattern is None:
            return any(search(i + 1, k) for k in range(j, len(got) + 1))
        if j < len(got) and pattern.matches(got[j], tolerance):
            return search(i + 1, j + 1)
        failures[i] = max(failures.get(i, -1), j)
        return False

    if search(0, 0):
        return None
    first = min(failures) if failures else len(patterns)
    line = wanted[first] if first < len(wanted) else "(end of output)"
    return Mismatch(expected, actual, f"no output line matches the shown line {line.strip()!r}")
