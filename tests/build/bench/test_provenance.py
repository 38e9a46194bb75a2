"""Where the numbers come from: the run's machine description and the host record every timed
section carries."""

from __future__ import annotations

import re

import pytest

from slimserve.build.bench import provenance
from slimserve.build.bench.provenance import TIMED_SECTIONS, host_record, machine_description


def test_the_host_record_is_the_cpu_and_its_int8_instruction_sets() -> None:
    machine = {"cpu": {"model": "Xeon Test", "machine": "x86_64", "int8_flags": ["avx2", "avx512_vnni"], "logical_cores": 2}}
    assert host_record(machine) == {"cpu": "Xeon Test", "architecture": "x86_64", "int8_flags": ["avx2", "avx512_vnni"]}
    assert set(TIMED_SECTIONS) == {"speed", "warm", "cold_start", "load", "json_vs_binary", "explain"}  # not "size": bytes


def test_machine_description_in_a_checkout_names_the_commit() -> None:
    machine = machine_description("3.12: /usr/bin/python3.12")
    assert machine["cpu"]["model"] and isinstance(machine["cpu"]["int8_flags"], list)
    assert machine["target_python"] == "3.12: /usr/bin/python3.12" and machine["packages"]["numpy"]
    assert re.fullmatch(r"[0-9a-f]{40}", machine["git"]["commit"] or "")


def test_an_installed_copy_asks_git_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # site-packages may sit inside some other repository: its commit is not slimserve's.
    monkeypatch.setattr(provenance, "checkout_root", lambda: None)
    assert machine_description()["git"] == {"commit": None, "uncommitted_changes": None}
