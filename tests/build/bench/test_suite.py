"""`slimserve bench`: where its defaults point (the checkout, never the current directory or
site-packages), and the quick suite end to end on the digits build (slow: the reduced version CI
runs so the suite cannot rot). Speed targets are reported, never asserted."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slimserve.build.bench import suite
from slimserve.build.bench.provenance import TIMED_SECTIONS
from slimserve.build.cli import app
from slimserve.build.errors import EXIT_USAGE, UsageError

from repo import REPO_ROOT

DIGITS = REPO_ROOT / "examples" / "digits"
runner = CliRunner()


@pytest.fixture()
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """slimserve as a wheel in site-packages: no checkout around it."""
    monkeypatch.setattr(suite, "checkout_root", lambda: None)


# --- defaults ------------------------------------------------------------------------------------


def test_defaults_resolve_against_the_checkout_not_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert suite.default_examples() == [REPO_ROOT / "examples" / "digits", REPO_ROOT / "examples" / "minilm"]
    assert suite.default_out([tmp_path / "anything"]) == REPO_ROOT / "dist" / "bench"
    assert suite.benchmark_pages(tmp_path, None, quick=False) == [tmp_path / "BENCHMARKS.md", REPO_ROOT / "BENCHMARKS.md"]
    assert suite.benchmark_pages(tmp_path, None, quick=True) == [tmp_path / "BENCHMARKS.md"]
    assert suite.benchmark_pages(tmp_path, tmp_path / "page.md", quick=False) == [tmp_path / "BENCHMARKS.md", tmp_path / "page.md"]


@pytest.mark.usefixtures("installed")
def test_an_installed_copy_needs_the_examples_named_and_writes_beside_them(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as raised:
        suite.default_examples()
    assert raised.value.exit_code == EXIT_USAGE
    assert str(raised.value) == (
        "name the example folders to benchmark (e.g. slimserve bench path/to/example): the default examples "
        "(examples/digits, examples/minilm) exist only in a slimserve checkout"
    )
    assert suite.default_out([tmp_path / "mine", tmp_path / "other"]) == tmp_path / "mine" / "dist" / "bench"
    # A full run writes only its own output folder's page: there is no checkout page to update.
    assert suite.benchmark_pages(tmp_path / "out", None, quick=False) == [tmp_path / "out" / "BENCHMARKS.md"]


@pytest.mark.usefixtures("installed")
def test_cli_outside_a_checkout_without_examples_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["bench", "--quick"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: name the example folders to benchmark (e.g. slimserve bench path/to/example): the default examples "
        "(examples/digits, examples/minilm) exist only in a slimserve checkout"
    ]
    assert list(tmp_path.iterdir()) == []  # nothing written where it was run


def test_cli_bench_on_a_folder_without_slimserve_toml_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", str(tmp_path / "nothing"), "--quick", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "slimserve.toml" in result.output


# --- the quick suite end to end ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_suite_on_digits_end_to_end(digits_build: Path, tmp_path: Path) -> None:
    root_page = REPO_ROOT / "BENCHMARKS.md"
    root_before = root_page.stat().st_mtime_ns if root_page.exists() else None
    out = tmp_path / "bench"
    page = tmp_path / "BENCHMARKS.md"
    results = suite.run_bench(
        [DIGITS], out, quick=True, builds={DIGITS: digits_build}, benchmarks_md=page, cache_dir=REPO_ROOT / ".cache"
    )
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["examples"].keys() == results["examples"].keys() == {"digits"}
    assert not suite.bench_failed(results), json.dumps({k: v.get("errors") for k, v in results["examples"].items()})
    machine = on_disk["machine"]
    assert machine["cpu"]["model"] and machine["cpu"]["logical_cores"] >= 1 and machine["python"]
    assert machine["packages"]["onnxruntime"] and machine["date_utc"]
    digits = on_disk["examples"]["digits"]
    host = {"cpu": machine["cpu"]["model"], "architecture": machine["cpu"]["machine"], "int8_flags": machine["cpu"]["int8_flags"]}
    for section in TIMED_SECTIONS:  # every timed figure carries the instruction sets it ran under
        record = on_disk["json_vs_binary"] if section == "json_vs_binary" else digits[section]
        assert record["machine"] == host, section
    assert "machine" not in digits["size"]
    explain = digits["explain"]  # warm, default method and budget
    assert explain["method"] == "kernel-shap" and explain["latency"]["runs"] == 5 and explain["residual"] < 1e-3

    speed = digits["speed"]
    assert {(cell["threads"], cell["shape"]) for cell in speed["cells"]} == {(1, "1x16"), (1, "8x64"), (2, "1x16"), (2, "8x64")}
    for cell in speed["cells"]:
        assert set(cell["engines"]) == {"pytorch_eager_fp32", "onnxruntime_fp32", "slimserve"}
        for engine in cell["engines"].values():
            assert engine["runs"] >= 10 and 0 < engine["median_ms"] <= engine["p90_ms"]
        assert cell["output_agreement"]["onnxruntime_fp32_vs_pytorch"]["max_abs_diff"] < 1e-3

    size = digits["size"]
    assert size["fp32_onnx_bytes"] == (digits_build / "work" / "fp32.onnx").stat().st_size
    assert size["shipped_model_bytes"] == (digits_build / "model.onnx").stat().st_size
    assert size["zip_zipped_bytes"] == (digits_build / "lambda.zip").stat().st_size
    with zipfile.ZipFile(digits_build / "lambda.zip") as archive:
        assert size["zip_unzipped_bytes"] == sum(info.file_size for info in archive.infolist())
    assert size["zip_unzipped_bytes"] > size["zip_zipped_bytes"] > size["shipped_model_bytes"]
    assert size["fits_direct_upload"] and size["fits_unzipped"]

    cold = digits["cold_start"]
    if "skipped" not in cold:  # the zip's target Python is installed here
        contenders = cold["contenders"]
        assert cold["errors"] == 0
        assert 0 < contenders["floor"]["median_total_ms"] < contenders["slimserve"]["median_total_ms"]
        assert contenders["pytorch_fastapi"]["median_total_ms"] > 0
        assert contenders["slimserve"]["runs"] == 2
        assert cold["slimserve_vs_floor_x"] > 1

    warm = digits["warm"]
    assert warm["paths"]["handler_main"]["median_ms"] > warm["paths"]["bare_session_run"]["median_ms"] > 0

    load = digits["load"]
    assert [level["concurrency"] for level in load["levels"]] == [1, 8, 32]
    for level in load["levels"]:
        assert level["errors"] == 0 and level["warmup_errors"] == 0 and level["requests"] > 0
        assert level["throughput_rps"] > 0 and 0 < level["p50_ms"] <= level["p99_ms"]
        assert level["rss_after"]["total_bytes"] > 0 and level["environments_replaced"] == 0

    binary = on_disk["json_vs_binary"]
    assert binary["binary_request_bytes"] > 1024 * 1024 and binary["json_request_bytes"] > binary["binary_request_bytes"]
    assert binary["paths"]["json"]["median_ms"] > 0 and binary["paths"]["binary"]["median_ms"] > 0

    assert on_disk["targets"] and all(row["met"] in (True, False, None) for row in on_disk["targets"])
    assert set(on_disk["plots"]) == {"latency.png", "cold_start.png", "size.png", "load.png"} or "skipped" in cold
    for plot in on_disk["plots"]:
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert "## Targets" in text and machine["cpu"]["model"] in text and "QUICK" in text
    assert f"Measured on {host['cpu']} ({host['architecture']})" in text
    assert (out / "BENCHMARKS.md").read_text() != ""
    # A quick run never overwrites the repository's quoted numbers.
    assert (root_page.stat().st_mtime_ns if root_page.exists() else None) == root_before
