"""``slimserve bench``: the benchmark suite, side by side in one process tree.

For each example (built first, where ``slimserve build`` puts it, when its lambda.zip is
missing or holds another version of the handler; build/bench/builds.py):

1. model speed: PyTorch eager fp32, ONNX Runtime fp32, the shipped model; 1 and 2 threads;
   batch 1 x 16 tokens and 8 x 64 (build/bench/speed.py);
2. size: fp32 ONNX, shipped model, lambda.zip zipped / unzipped vs Lambda's limits
   (build/bench/size.py);
3. cold start: fresh interpreter to first answer, against the floor and the baselines
   (build/bench/cold.py, build/bench/baselines/);
4. warm request overhead: handler path vs bare session.run (build/bench/warm.py);
5. load through ``slimserve local`` at concurrency 1, 8, 32 (build/bench/load.py);
6. warm explain latency, default method and budget (build/bench/explain.py);

plus JSON vs binary tensors for a 1 MiB FP32 input. Writes ``<out>/results.json`` (machine
description and every number with its unit; every timed section also records the CPU and int8
instruction sets it ran under), ``<out>/*.png`` and BENCHMARKS.md (generated from results.json:
tables and the issue's targets, met or missed by how much; build/bench/report/). ``quick=True``
runs the same code with far fewer iterations (CI: it keeps the suite from rotting; its numbers
are not for quoting).

Defaults resolve against the slimserve checkout (``examples/digits``, ``examples/minilm``,
``<checkout>/dist/bench``, ``<checkout>/BENCHMARKS.md``), never the current directory; an
installed copy has no examples, so they must be named, and its results go to
``<first example>/dist/bench``: nothing is ever written inside site-packages.

    from slimserve.build.bench.suite import run_bench
    results = run_bench()  # in a checkout: examples/digits and examples/minilm
"""

from __future__ import annotations

import gc
import json
import shutil
import time
import traceback
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from slimserve.build.bench.builds import build_provenance, prepare_example, snapshot_build
from slimserve.build.bench.provenance import TIMED_SECTIONS, host_record, machine_description
from slimserve.build.bench.stats import UNITS
from slimserve.build.errors import UsageError
from slimserve.build.machine import load_average
from slimserve.build.paths import checkout_root, dist_dir

DEFAULT_EXAMPLES = ("examples/digits", "examples/minilm")
DEFAULT_OUT = "dist/bench"
RESULTS_FILE = "results.json"
BENCHMARKS_FILE = "BENCHMARKS.md"
SECTIONS = ("size", "speed", "warm", "cold_start", "load", "explain")
ALL_SECTIONS = (*SECTIONS, "json_vs_binary")
RESULTS_SCHEMA = 1


def _settings(quick: bool) -> dict[str, Any]:
    """Iterations per section: a quick run (CI smoke) or a full one."""
    from slimserve.build.bench.load import FULL_LEVELS, QUICK_LEVELS

    quick_and_full = {
        "speed": (
            {"min_runs": 10, "max_runs": 100, "budget_s": 0.5, "warmup": 3},
            {"min_runs": 50, "max_runs": 1000, "budget_s": 5.0, "warmup": 10},
        ),
        "cold_start": ({"runs": 2, "warmup": 0}, {"runs": 5, "warmup": 1}),
        "warm": ({"runs": 60, "warmup": 5}, {"runs": 400, "warmup": 20}),
        "json_vs_binary": ({"runs": 3, "warmup": 0}, {"runs": 10, "warmup": 2}),
        "load": ({"levels": QUICK_LEVELS}, {"levels": FULL_LEVELS}),
        "explain": ({"runs": 5, "warmup": 1}, {"runs": 30, "warmup": 3}),
    }
    return {section: pair[0] if quick else pair[1] for section, pair in quick_and_full.items()}


def default_examples() -> list[Path]:
    """The checkout's examples; an installed copy has none, so they must be named."""
    root = checkout_root()
    if root is None:
        raise UsageError(
            "name the example folders to benchmark (e.g. slimserve bench path/to/example): the default "
            f"examples ({', '.join(DEFAULT_EXAMPLES)}) exist only in a slimserve checkout"
        )
    return [root / example for example in DEFAULT_EXAMPLES]


def default_out(examples: Sequence[Path]) -> Path:
    """``<checkout>/dist/bench``; for an installed copy ``<first example>/dist/bench``, as
    `slimserve build` puts a build in ``<project>/dist/<name>``."""
    root = checkout_root()
    return (root / DEFAULT_OUT).resolve() if root is not None else dist_dir(examples[0], "bench")


def _command(examples: list[Path], out: Path, default: Path, quick: bool) -> str:
    parts = ["slimserve bench", *(str(_display_path(path)) for path in examples)]
    if quick:
        parts.append("--quick")
    if out != default:
        parts += ["--out", str(_display_path(out))]
    return " ".join(parts)


def run_bench(
    examples: Sequence[Path] | None = None,
    out: Path | None = None,
    *,
    quick: bool = False,
    console: Console | None = None,
    builds: Mapping[Path, Path] | None = None,
    benchmarks_md: Path | None = None,
    sections: Collection[str] = ALL_SECTIONS,
    cache_dir: Path | None = None,
    rebuild_stale: bool = True,
) -> dict[str, Any]:
    """Run the suite on ``examples`` (example folders; default_examples()) and write
    results.json, plots and BENCHMARKS.md to ``out`` (default_out()). ``builds`` maps an example
    folder to its build output folder (default: `slimserve build`'s, ``<example>/dist/<name>``).
    ``benchmarks_md``: where the page goes besides ``<out>/BENCHMARKS.md``; by default the
    checkout's BENCHMARKS.md for a full run and none for a quick one (a CI smoke run must not
    overwrite the quoted numbers) or outside a checkout. Sections that fail are recorded as
    errors in the results (and on the page); the others still run. A build whose lambda.zip
    carries another version of the handler than this checkout is rebuilt first
    (``rebuild_stale=False``: measured as is, and the page says so)."""
    from slimserve.build.bench.cold import measure_cold_start
    from slimserve.build.bench.explain import measure_explain
    from slimserve.build.bench.load import measure_load
    from slimserve.build.bench.plots import write_plots
    from slimserve.build.bench.report.page import render_markdown
    from slimserve.build.bench.report.targets import evaluate_targets
    from slimserve.build.bench.size import measure_size
    from slimserve.build.bench.speed import measure_speed
    from slimserve.build.bench.warm import measure_handler_overhead, measure_json_vs_binary
    from slimserve.build.pipeline.bundle import find_python

    console = console or Console(stderr=True)
    started = time.perf_counter()
    folders = [Path(folder).resolve() for folder in (examples or default_examples())]
    default = default_out(folders)
    out = Path(out).resolve() if out is not None else default
    command = _command(folders, out, default, quick)
    out.mkdir(parents=True, exist_ok=True)
    settings = _settings(quick)
    unknown = set(sections) - set(ALL_SECTIONS)
    if unknown:
        raise ValueError(f"unknown section(s) {sorted(unknown)}; choose from {ALL_SECTIONS}")
    builds = {Path(key).resolve(): Path(value) for key, value in (builds or {}).items()}
    snapshots = out / ".builds"
    originals = [prepare_example(folder, builds.get(folder), console, rebuild_stale=rebuild_stale) for folder in folders]
    prepared = [snapshot_build(example, snapshots) for example in originals]
    sources = {example.name: str(_display_path(example.dist)) for example in originals}
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
    host = host_record(results["machine"])

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
                    if name in TIMED_SECTIONS:  # a time holds only for the instruction sets it ran under
                        record[name]["machine"] = host
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
            if "explain" in sections:
                run_section(
                    "explain", record, errors, lambda example=example: measure_explain(example, status=status, **settings["explain"])
                )
            gc.collect()
        if "json_vs_binary" in sections:
            holder: dict[str, Any] = {}
            global_errors: dict[str, str] = {}
            run_section("json_vs_binary", holder, global_errors, lambda: measure_json_vs_binary(status=status, **settings["json_vs_binary"]))
            results["json_vs_binary"] = holder["json_vs_binary"]
            results["errors"] = global_errors
        status("benchmarks done")

    shutil.rmtree(snapshots, ignore_errors=True)
    results["load_average_at_end"] = load_average()
    results["duration_s"] = time.perf_counter() - started
    results["targets"] = evaluate_targets(results)
    results["results_file"] = str(_display_path(out / RESULTS_FILE))
    results["plots"] = write_plots(results, out)
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    pages = benchmark_pages(out, benchmarks_md, quick)
    for page in pages:
        page.write_text(render_markdown(results, plots_dir=out, page=page), encoding="utf-8")
    _print_summary(results, console, out, pages)
    return results


def benchmark_pages(out: Path, benchmarks_md: Path | None, quick: bool) -> list[Path]:
    """Where BENCHMARKS.md goes: always ``<out>``; also ``benchmarks_md`` when given, else the
    checkout's own page after a full run (a quick run's numbers are not for quoting, and an
    installed copy has no page of its own: site-packages is never written)."""
    pages = [out / BENCHMARKS_FILE]
    checkout = checkout_root()
    if benchmarks_md is not None:
        pages.append(Path(benchmarks_md))
    elif not quick and checkout is not None:
        pages.append(checkout / BENCHMARKS_FILE)
    return pages


def _display_path(path: Path) -> Path:
    """Relative to the checkout when inside it (results.json and the page travel with it)."""
    root = checkout_root()
    try:
        return path.resolve().relative_to(root) if root is not None else path
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
