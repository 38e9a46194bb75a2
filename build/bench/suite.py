"""``slimserve bench``: the benchmark suite, side by side in one process tree.

For each example (built first when ``dist/<name>/lambda.zip`` is missing):

1. model speed: PyTorch eager fp32, ONNX Runtime fp32, the shipped model; 1 and 2 threads;
   batch 1 x 16 tokens and 8 x 64 (build/bench/speed.py);
2. size: fp32 ONNX, shipped model, lambda.zip zipped / unzipped vs Lambda's limits
   (build/bench/size.py);
3. cold start: fresh interpreter to first answer, against the floor and the baselines
   (build/bench/cold.py, build/bench/baselines/);
4. warm request overhead: handler path vs bare session.run (build/bench/warm.py);
5. load through ``slimserve local`` at concurrency 1, 8, 32 (build/bench/load.py);

plus JSON vs binary tensors for a 1 MiB FP32 input. Writes ``<out>/results.json`` (machine
description and every number with its unit), ``<out>/*.png`` and BENCHMARKS.md (generated from
results.json: tables and the issue's targets, met or missed by how much). ``quick=True`` runs
the same code with far fewer iterations (CI: it keeps the suite from rotting; its numbers are
not for quoting).

    from slimserve.build.bench.suite import run_bench
    results = run_bench([Path("examples/digits"), Path("examples/minilm")])
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from slimserve.build.bench.common import PROJECT_ROOT, Example, load_average, machine_description
from slimserve.build.bench.stats import UNITS

RESULTS_FILE = "results.json"
BENCHMARKS_FILE = "BENCHMARKS.md"
SECTIONS = ("size", "speed", "warm", "cold_start", "load")
ALL_SECTIONS = (*SECTIONS, "json_vs_binary")
RESULTS_SCHEMA = 1


def _settings(quick: bool) -> dict[str, Any]:
    from slimserve.build.bench.load import FULL_LEVELS, QUICK_LEVELS

    if quick:
        return {
            "speed": {"min_runs": 10, "max_runs": 100, "budget_s": 0.5, "warmup": 3},
            "cold_start": {"runs": 2, "warmup": 0},
            "warm": {"runs": 60, "warmup": 5},
            "json_vs_binary": {"runs": 3, "warmup": 0},
            "load": {"levels": QUICK_LEVELS},
        }
    return {
        "speed": {"min_runs": 50, "max_runs": 1000, "budget_s": 5.0, "warmup": 10},
        "cold_start": {"runs": 5, "warmup": 1},
        "warm": {"runs": 400, "warmup": 20},
        "json_vs_binary": {"runs": 10, "warmup": 2},
        "load": {"levels": FULL_LEVELS},
    }


@contextmanager
def _scratch_cwd() -> Iterator[None]:
    """onnxruntime's symbolic shape inference may drop a model-sized temp file into the working
    directory during a build: keep it out of the repository."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="slimserve-bench-build-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(previous)


def stale_handler_files(zip_path: Path) -> list[str]:
    """Files of the handler package that differ between this checkout and lambda.zip (the zip
    was built from other code: its cold-start and load numbers would not be this code's)."""
    import zipfile

    from slimserve.build.paths import HANDLER_IMPORT, HANDLER_PACKAGE

    prefix = HANDLER_IMPORT.replace(".", "/") + "/"
    with zipfile.ZipFile(zip_path) as archive:
        packed = {
            name[len(prefix) :]: archive.read(name)
            for name in archive.namelist()
            if name.startswith(prefix) and not name.endswith("/") and "__pycache__" not in name and not name.endswith(".pyc")
        }
    local = {
        path.relative_to(HANDLER_PACKAGE).as_posix(): path.read_bytes()
        for path in HANDLER_PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    return sorted(name for name in set(packed) | set(local) if packed.get(name) != local.get(name))


def prepare_example(folder: Path, dist: Path | None, console: Console, *, rebuild_stale: bool = True) -> Example:
    """The example's build output, built when lambda.zip (or the fp32 export) is missing, or when
    the zip's handler differs from this checkout's (unless ``rebuild_stale`` is False)."""
    from slimserve.build.config import load_config
    from slimserve.build.pipeline.progress import Steps
    from slimserve.build.pipeline.run import run_build

    folder = folder.resolve()
    config = load_config(folder)
    dist = (dist or Path("dist") / config.name).resolve()
    reason = None
    if not (dist / "lambda.zip").is_file() or not (dist / "work" / "fp32.onnx").is_file():
        reason = "no lambda.zip yet"
    elif rebuild_stale:
        stale = stale_handler_files(dist / "lambda.zip")
        if stale:
            reason = f"its lambda.zip holds another version of handler/{', handler/'.join(stale[:3])}"
    if reason is not None:
        console.print(f"[bold]building[/bold] {folder} -> {dist} ({reason})")
        with _scratch_cwd():
            run_build(folder, out=dist, steps=Steps(console))
    return Example(folder=folder, dist=dist)


def snapshot_build(example: Example, root: Path) -> Example:
    """A private copy of the build output (top-level files and work/fp32.onnx): everything the
    suite measures comes from one consistent build even if dist/<name> is rebuilt meanwhile."""
    import shutil

    target = root / example.dist.name
    if target.exists():
        shutil.rmtree(target)
    (target / "work").mkdir(parents=True)
    for path in example.dist.iterdir():
        if path.is_file():
            shutil.copy2(path, target / path.name)
    if example.fp32_path.is_file():
        shutil.copy2(example.fp32_path, target / "work" / example.fp32_path.name)
    return Example(folder=example.folder, dist=target)


def build_provenance(example: Example) -> dict[str, Any]:
    """What was measured: the build's files, hashes and whether its handler is this checkout's."""
    from slimserve.build.pipeline.bundle import sha256_file

    stale = stale_handler_files(example.zip_path)
    return {
        "zip_sha256": sha256_file(example.zip_path),
        "model_sha256": example.manifest.model.sha256,
        "zip_built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(example.zip_path.stat().st_mtime)),
        "handler_matches_checkout": not stale,
        "handler_files_differing": stale,
    }


def _command(examples: list[Path], out: Path, quick: bool) -> str:
    parts = ["slimserve bench", *(str(path) for path in examples)]
    if quick:
        parts.append("--quick")
    if Path(out) != Path("dist/bench"):
        parts += ["--out", str(out)]
    return " ".join(parts)


def run_bench(
    examples: list[Path],
    out: Path = Path("dist/bench"),
    *,
    quick: bool = False,
    console: Console | None = None,
    builds: Mapping[Path, Path] | None = None,
    benchmarks_md: Path | None = None,
    sections: Collection[str] = ALL_SECTIONS,
    cache_dir: Path | None = None,
    rebuild_stale: bool = True,
) -> dict[str, Any]:
    """Run the suite on ``examples`` (example folders) and write results.json, plots and
    BENCHMARKS.md. ``builds`` maps an example folder to its build output folder (default
    ``dist/<name>``). ``benchmarks_md``: where the page goes; by default the repository's
    BENCHMARKS.md for a full run and only ``<out>/BENCHMARKS.md`` for a quick one (a CI smoke run
    must not overwrite the quoted numbers). Sections that fail are recorded as errors in the
    results (and on the page); the others still run. A build whose lambda.zip carries another
    version of the handler than this checkout is rebuilt first (``rebuild_stale=False``: measured
    as is, and the page says so)."""
    from slimserve.build.bench.cold import measure_cold_start
    from slimserve.build.bench.load import measure_load
    from slimserve.build.bench.plots import write_plots
    from slimserve.build.bench.report import evaluate_targets, render_markdown
    from slimserve.build.bench.size import measure_size
    from slimserve.build.bench.speed import measure_speed
    from slimserve.build.bench.warm import measure_handler_overhead, measure_json_vs_binary
    from slimserve.build.pipeline.bundle import find_python

    console = console or Console(stderr=True)
    started = time.perf_counter()
    command = _command(examples, out, quick)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    settings = _settings(quick)
    unknown = set(sections) - set(ALL_SECTIONS)
    if unknown:
        raise ValueError(f"unknown section(s) {sorted(unknown)}; choose from {ALL_SECTIONS}")
    builds = {Path(key).resolve(): Path(value) for key, value in (builds or {}).items()}
    snapshots = out / ".builds"
    prepared = [
        snapshot_build(
            prepare_example(Path(folder), builds.get(Path(folder).resolve()), console, rebuild_stale=rebuild_stale),
            snapshots,
        )
        for folder in examples
    ]
    sources = {example.name: str(builds.get(Path(folder).resolve()) or Path("dist") / example.dist.name)
               for folder, example in zip(examples, prepared)}
    targets = sorted({example.manifest.runtime.python for example in prepared})
    target_pythons = {version: find_python(version) for version in targets}
    results: dict[str, Any] = {
        "schema": RESULTS_SCHEMA,
        "suite": "slimserve bench",
        "command": command,
        "quick": quick,
        "settings": {key: {name: (list(value) if isinstance(value, tuple) else value) for name, value in section.items()}
                     for key, section in settings.items()},
        "machine": machine_description(", ".join(f"{version}: {path or 'not found'}" for version, path in target_pythons.items())),
        "units": UNITS,
        "examples": {},
    }

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        steps_total = len(prepared) * len([s for s in SECTIONS if s in sections]) + (1 if "json_vs_binary" in sections else 0)
        task = progress.add_task("benchmarks", total=steps_total)

        def status(text: str) -> None:
            progress.update(task, description=text)

        def run_section(name: str, record: dict[str, Any], errors: dict[str, str], call: Callable[[], Any]) -> None:
            section_started = time.perf_counter()
            try:
                record[name] = call()
            except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
                errors[name] = f"{type(exc).__name__}: {exc}"
                record[name] = {"error": errors[name]}
                console.print(f"[red]{name} failed[/red]: {exc}")
                console.print(traceback.format_exc(), markup=False, highlight=False)
            else:
                if isinstance(record[name], dict):
                    record[name]["section_seconds"] = round(time.perf_counter() - section_started, 1)
            progress.advance(task)

        for example in prepared:
            record: dict[str, Any] = {
                "example": str(_display_path(example.folder)),
                "dist": sources[example.name],
                "measured_copy": str(_display_path(example.dist)),
                "task": example.manifest.task,
                "build": build_provenance(example),
                "errors": {},
            }
            results["examples"][example.name] = record
            errors = record["errors"]
            if "size" in sections:
                run_section("size", record, errors, lambda example=example: measure_size(example))
            if "speed" in sections:
                run_section("speed", record, errors, lambda example=example: measure_speed(example, status=status, **settings["speed"]))
            if "warm" in sections:
                run_section("warm", record, errors, lambda example=example: measure_handler_overhead(example, status=status, **settings["warm"]))
            if "cold_start" in sections:
                run_section(
                    "cold_start",
                    record,
                    errors,
                    lambda example=example: measure_cold_start(example, console=console, cache_dir=cache_dir, status=status, **settings["cold_start"]),
                )
            if "load" in sections:
                run_section(
                    "load", record, errors, lambda example=example: measure_load(example, cache_dir=cache_dir, status=status, **settings["load"])
                )
            gc.collect()
        if "json_vs_binary" in sections:
            holder: dict[str, Any] = {}
            global_errors: dict[str, str] = {}
            run_section("json_vs_binary", holder, global_errors, lambda: measure_json_vs_binary(status=status, **settings["json_vs_binary"]))
            results["json_vs_binary"] = holder["json_vs_binary"]
            results["errors"] = global_errors
        status("benchmarks done")

    import shutil

    shutil.rmtree(snapshots, ignore_errors=True)
    results["load_average_at_end"] = load_average()
    results["duration_s"] = time.perf_counter() - started
    results["targets"] = evaluate_targets(results)
    results["results_file"] = str(_display_path(out / RESULTS_FILE))
    results["plots"] = write_plots(results, out)
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    pages = [out / BENCHMARKS_FILE]
    if benchmarks_md is not None:
        pages.append(Path(benchmarks_md))
    elif not quick:
        pages.append(PROJECT_ROOT / BENCHMARKS_FILE)
    for page in pages:
        page.write_text(render_markdown(results, plots_dir=out, page=page), encoding="utf-8")
    _print_summary(results, console, out, pages)
    return results


def _display_path(path: Path) -> Path:
    try:
        return path.resolve().relative_to(PROJECT_ROOT)
    except ValueError:
        return path


def _print_summary(results: dict[str, Any], console: Console, out: Path, pages: list[Path]) -> None:
    table = Table(title="slimserve bench: targets", show_lines=False)
    for column in ("target", "example", "measured", "verdict"):
        table.add_column(column, overflow="fold")
    for row in results["targets"]:
        style = {True: "green", False: "red", None: "dim"}[row["met"]]
        table.add_row(row["target"], row["example"] or "—", row["measured"], f"[{style}]{row['verdict']}[/{style}]")
    console.print(table)
    failed = {name: example["errors"] for name, example in results["examples"].items() if example["errors"]}
    failed.update({"(global)": results.get("errors")} if results.get("errors") else {})
    if failed:
        console.print(f"[red]sections failed[/red]: {failed}")
    console.print(
        f"wrote {_display_path(out / RESULTS_FILE)}, {len(results['plots'])} plot(s), "
        + ", ".join(str(_display_path(page)) for page in pages)
        + f" in {results['duration_s']:.0f} s"
    )


def bench_failed(results: dict[str, Any]) -> bool:
    """True when a section errored or the load test saw errors (the CLI's exit status)."""
    if results.get("errors"):
        return True
    for example in results.get("examples", {}).values():
        if example.get("errors"):
            return True
        if (example.get("load") or {}).get("errors"):
            return True
        if (example.get("cold_start") or {}).get("errors"):
            return True
    return False
