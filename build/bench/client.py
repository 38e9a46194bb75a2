"""Load client for ``slimserve bench`` (section 5), run as its own process so its threads do not
compete for the GIL with the local gateway it measures:

    python -m slimserve.build.bench.client '{"url": ..., "body_file": ..., "concurrency": 8,
                                   "count": 3000, "time_cap_s": 30}'

``concurrency`` threads, each with one keep-alive HTTP/1.1 connection to 127.0.0.1, send POST
requests until ``count`` have been issued or ``time_cap_s`` has passed (whichever first). A
request succeeds when the status is 200 and the body is a V2 response (``"outputs"``).
Prints one JSON line: counts, errors (with the first few messages), wall time, throughput and
latency percentiles in milliseconds.
"""

from __future__ import annotations

import http.client
import json
import math
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit


def run_load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    count: int,
    time_cap_s: float,
    headers: dict[str, str] | None = None,
    raw: bool = False,
) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the load client only talks to this machine, not {parts.hostname}")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request_headers = {"content-type": "application/json", "content-length": str(len(body)), **(headers or {})}
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors: list[str] = []
    error_count = 0
    started = time.perf_counter()
    deadline = started + time_cap_s
    finished_at = [started]

    def worker() -> None:
        nonlocal issued, error_count
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        local: list[float] = []
        while True:
            with lock:
                if issued >= count or time.perf_counter() >= deadline:
                    break
                issued += 1
            begin = time.perf_counter()
            problem = None
            try:
                connection.request("POST", path, body=body, headers=request_headers)
                response = connection.getresponse()
                data = response.read()
                if response.status != 200 or b'"outputs"' not in data:
                    problem = f"status {response.status}: {data[:200]!r}"
                if response.getheader("connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                connection.close()
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            end = time.perf_counter()
            local.append(end - begin)
            if problem is not None:
                with lock:
                    error_count += 1
                    if len(errors) < 5:
                        errors.append(problem)
        connection.close()
        with lock:
            latencies.extend(local)
            finished_at[0] = max(finished_at[0], time.perf_counter())

    threads = [threading.Thread(target=worker, name=f"load-{index}") for index in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = max(finished_at[0] - started, 1e-9)
    latencies.sort()

    def pick(q: float) -> float | None:
        if not latencies:
            return None
        # nearest-rank percentile over every request
        index = min(len(latencies) - 1, max(0, math.ceil(q / 100 * len(latencies)) - 1))
        return latencies[index] * 1e3

    result: dict[str, Any] = {
        "concurrency": concurrency,
        "requests": len(latencies),
        "requested": count,
        "time_cap_s": time_cap_s,
        "stopped_by": "count" if len(latencies) >= count else "time cap",
        "errors": error_count,
        "error_samples": errors,
        "wall_s": wall,
        "throughput_rps": len(latencies) / wall,
        "p50_ms": pick(50),
        "p90_ms": pick(90),
        "p99_ms": pick(99),
        "max_ms": latencies[-1] * 1e3 if latencies else None,
        "mean_ms": (sum(latencies) / len(latencies) * 1e3) if latencies else None,
    }
    if raw:
        result["latencies_ms"] = [round(value * 1e3, 4) for value in latencies]
    return result


def main(argv: list[str] | None = None) -> int:
    args = json.loads((argv or sys.argv[1:])[0])
    with open(args["body_file"], "rb") as stream:
        body = stream.read()
    result = run_load(
        args["url"],
        body,
        concurrency=int(args["concurrency"]),
        count=int(args["count"]),
        time_cap_s=float(args["time_cap_s"]),
        headers=args.get("headers"),
        raw=bool(args.get("raw")),
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
