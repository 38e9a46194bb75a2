"""One unit convention: sizes are binary and written KiB, MiB, GiB (build/units.py), in the
documentation, BENCHMARKS.md, the CLI's output and the build's report.md alike. A decimal-looking
"MB" next to a number is the other convention, and fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs.blocks import documents

from repo import REPO_ROOT

OTHER_UNIT = re.compile(r"\d(?:[\d,.]*\d)?\s?(?:[kKMGT]B|[kKMG]b)\b")


def _offending(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if OTHER_UNIT.search(line)]


@pytest.mark.parametrize("path", [*documents(), Path("BENCHMARKS.md")], ids=str)
def test_documentation_writes_binary_units(path: Path) -> None:
    assert _offending((REPO_ROOT / path).read_text(encoding="utf-8")) == []


def test_units_helper() -> None:
    from slimserve.build.units import format_bytes, mib

    assert format_bytes(31_970) == "31.2 KiB"
    assert format_bytes(51_675_260) == "49.3 MiB"
    assert format_bytes(2_576_980_378) == "2.40 GiB"
    assert mib(50 * 1024 * 1024) == "50 MiB"
    assert _offending("lambda.zip: 49.1 MB zipped") and _offending("31 KB") and not _offending("49.3 MiB, memory_mb")


@pytest.mark.slow
def test_build_output_and_report_write_binary_units(digits_build: Path) -> None:
    log = digits_build.with_name(f"{digits_build.name}.log").read_text(encoding="utf-8")
    report = (digits_build / "report.md").read_text(encoding="utf-8")
    assert "MiB zipped (limit 50 MiB for direct upload: ok)" in log
    assert "| lambda.zip zipped |" in report and "MiB (limit 50 MiB direct upload) |" in report
    assert _offending(log) == [] and _offending(report) == []
