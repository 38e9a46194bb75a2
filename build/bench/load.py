"""Section 5, load through ``slimserve local`` on 127.0.0.1.

For each client concurrency (1, 8, 32) the built lambda.zip is served by
``slimserve.build.local.run.running(dist, concurrency=c)``: the real awslambdaric runtime client in ``c``
execution environments (Lambda gives each concurrent request its own environment) behind the
API-Gateway-shaped front. A separate client process (build/bench/client.py, keep-alive
HTTP/1.1, one connection per client thread) sends the example's infer request until a fixed
count is issued or a time cap passes. Reported: throughput, p50/p90/p99, errors (must be 0),
environments lost (cold starts after init), and the resident memory (VmRSS) of the function
processes after init, after a warm-up and after the measured run. The longest run (10,000
requests at concurrency 8 in the full suite) is the leak check.
Environments start one after another (FunctionPool.start), about a second each on 2 cores.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from slimserve.build.bench.common import Example, infer_body

# (client concurrency, execution environments, request count, time cap in s). The full suite
# gives every concurrent request its own environment, as Lambda does; the quick one (CI) shares
# 4 environments between the 8 and 32 clients, so it does not spend half a minute starting 32.
# The 10,000-request memory check runs at concurrency 8 (its highest throughput): a leak grows
# the environments' total RSS by (leak per request) x (requests), however they are spread.
FULL_LEVELS = ((1, 1, 1_000, 20.0), (8, 8, 10_000, 150.0), (32, 32, 3_000, 30.0))
QUICK_LEVELS = ((1, 1, 200, 8.0), (8, 4, 150, 6.0), (32, 4, 150, 6.0))


def rss_bytes(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _memory(pids: Sequence[int | None]) -> dict[str, Any]:
    values = [rss_bytes(pid) for pid in pids]
    known = [value for value in values if value is not None]
    return {
        "per_environment_bytes": values,
        "total_bytes": sum(known) if known else None,
        "max_environment_bytes": max(known) if known else None,
    }


def _client(url: str, body_file: Path, *, concurrency: int, count: int, time_cap_s: float, raw: bool = False) -> dict[str, Any]:
    arguments = {
        "url": url, "body_file": str(body_file), "concurrency": concurrency, "count": count, "time_cap_s": time_cap_s, "raw": raw,
    }
    completed = subprocess.run(
        [sys.executable, "-m", "slimserve.build.bench.client", json.dumps(arguments)],
        capture_output=True,
        text=True,
        timeout=time_cap_s + 120,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"load client failed ({completed.returncode}): {completed.stderr.strip()[-1500:]}")
    return json.loads(lines[-1])


def _merge(parts: list[dict[str, Any]], *, count: int, time_cap_s: float) -> dict[str, Any]:
    """One summary of consecutive client runs (percentiles from every request's latency)."""
    from slimserve.build.bench.stats import percentile

    latencies = [value for part in parts for value in part.pop("latencies_ms", [])]
    requests = sum(part["requests"] for part in parts)
    wall = sum(part["wall_s"] for part in parts)
    return {
        "concurrency": parts[0]["concurrency"],
        "requests": requests,
        "requested": count,
        "time_cap_s": time_cap_s,
        "stopped_by": "count" if requests >= count else "time cap",
        "errors": sum(part["errors"] for part in parts),
        "error_samples": [sample for part in parts for sample in part["error_samples"]][:5],
        "wall_s": wall,
        "throughput_rps": requests / wall if wall > 0 else None,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else None,
        "mean_ms": sum(latencies) / len(latencies) if latencies else None,
        "client_runs": len(parts),
    }


def measure_load(
    example: Example,
    *,
    levels: Sequence[tuple[int, int, int, float]] = FULL_LEVELS,
    cache_dir: Path | None = None,
    status: Callable[[str], None] = lambda text: None,
) -> dict[str, Any]:
    from slimserve.build.local.options import LocalRunOptions
    from slimserve.build.local.run import running

    quiet = Console(file=open(os.devnull, "w"), quiet=True)  # noqa: SIM115 - closed with the console
    results: list[dict[str, Any]] = []
    emulated = None
    with tempfile.TemporaryDirectory(prefix="slimserve-bench-load-") as scratch:
        body_file = Path(scratch) / "body.json"
        body_file.write_bytes(infer_body(example))
        longest = max(level[2] for level in levels)
        by_environments: dict[int, list[tuple[int, int, float]]] = {}
        for concurrency, environments, count, time_cap_s in levels:
            by_environments.setdefault(environments, []).append((concurrency, count, time_cap_s))
        for environments, group in by_environments.items():
            status(f"{example.name}: load, starting {environments} environment(s)")
            options = LocalRunOptions(concurrency=environments, cache_dir=cache_dir)
            with running(example.dist, options, console=quiet) as server:
                emulated = server.emulated
                instances = server.function.pool.instances
                pids = [instance.pid for instance in instances]
                url = server.url + example.infer_path
                memory_init = _memory(pids)
                for concurrency, count, time_cap_s in group:
                    status(f"{example.name}: load, {concurrency} client(s), warm-up")
                    warm = _client(url, body_file, concurrency=concurrency, count=max(20, 4 * concurrency), time_cap_s=60.0)
                    memory_before = _memory(pids)
                    status(
                        f"{example.name}: load, {concurrency} client(s) on {environments} environment(s), "
                        f"up to {count} requests / {time_cap_s:.0f} s"
                    )
                    lost_before = sum(instance.cold_starts for instance in instances)
                    # The longest run goes in two halves with an RSS sample between: growth that goes on
                    # in the second half is a leak, growth only in the first is warm-up.
                    halves = 2 if count == longest and count >= 1000 else 1
                    parts, trace = [], [memory_before["total_bytes"]]
                    remaining_s = time_cap_s
                    for index in range(halves):
                        part_count = count // halves + (count % halves if index == halves - 1 else 0)
                        part = _client(url, body_file, concurrency=concurrency, count=part_count, time_cap_s=remaining_s, raw=True)
                        parts.append(part)
                        remaining_s = max(1.0, remaining_s - part["wall_s"])
                        trace.append(_memory(pids)["total_bytes"])
                    measured = _merge(parts, count=count, time_cap_s=time_cap_s)
                    pids_after = [instance.pid for instance in instances]
                    memory_after = _memory(pids_after)
                    growth = None
                    if memory_before["total_bytes"] is not None and memory_after["total_bytes"] is not None:
                        growth = memory_after["total_bytes"] - memory_before["total_bytes"]
                    results.append(
                        {
                            **measured,
                            "environments": environments,
                            "init_ms": server.init_ms,
                            "warmup_requests": warm["requests"],
                            "warmup_errors": warm["errors"],
                            "environments_replaced": sum(instance.cold_starts for instance in instances) - lost_before,
                            "same_processes": pids == pids_after,
                            "rss_after_init": memory_init,
                            "rss_before": memory_before,
                            "rss_after": memory_after,
                            "rss_growth_bytes": growth,
                            "rss_total_trace_bytes": trace,
                            "rss_growth_halves_bytes": [
                                None if a is None or b is None else b - a for a, b in itertools.pairwise(trace)
                            ],
                            "rss_growth_per_1000_requests_bytes": None
                            if growth is None or not measured["requests"]
                            else growth * 1000 / measured["requests"],
                        }
                    )
    quiet.file.close()
    return {
        "method": (
            "slimserve.build.local.run.running(dist, concurrency=c): c awslambdaric environments behind the local HTTP API "
            "front on 127.0.0.1; separate client process, c threads with keep-alive connections; bounded by "
            "request count and time cap; RSS = VmRSS of the function processes"
        ),
        "request": f"POST {example.infer_path}, batch 1 ({len(infer_body(example))} bytes of JSON)",
        "emulated": emulated,
        "levels": results,
        "errors": sum(level["errors"] + level["warmup_errors"] for level in results),
    }
