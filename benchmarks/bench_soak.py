"""A bounded soak over loopback: requests, errors, latency and memory slope over the run.

Two phases of the same length and concurrency against the local multi-model endpoint (the real
serving container behind the SageMaker Runtime API), one iris model:

1. baseline: threads calling InvokeEndpoint directly with a boto3 `sagemaker-runtime` client;
2. the invoker: threads POSTing `{"dataset", "rows"}` to the invoker's local HTTP adapter, which
   routes by the routing table and records every call in the inference log, as on AWS.

Memory is sampled every second for this process (the endpoint proxy, the invoker and its log
writer) and for the serving container (supervisor and workers); the slope is a least-squares
fit over the phase after its first fifth (warm-up). A leak shows as a slope that does not
shrink with a longer run.

Run: `.venv/bin/python benchmarks/bench_soak.py [--seconds 60] [--concurrency 8]`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from container.serving.memory import process_rss  # noqa: E402
from local.deploy_store import local_inference_log  # noqa: E402
from local.endpoint import LocalEndpoint, local_invoker, runtime_client  # noqa: E402
from local.invoker_http import InvokerHTTPServer  # noqa: E402
from tests.deploy_support import PROJECT, artifacts, local_backend  # noqa: E402

ROW = [5.1, 3.5, 1.4, 0.2]
MB = 1024 * 1024


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    memory: list[tuple[float, int, int]] = field(default_factory=list)  # (t, own, container)
    lock: threading.Lock = field(default_factory=threading.Lock)


def container_rss(endpoint: LocalEndpoint) -> int:
    process = endpoint.serving.process
    if process is None:
        return 0
    pids = [process.pid]
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    if children.exists():
        pids += [int(pid) for pid in children.read_text().split()]
    return sum(process_rss(pid) for pid in pids)


def slope_mb_per_minute(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of memory over time, after the first fifth of the run."""
    kept = [(t, rss / MB) for t, rss in samples[len(samples) // 5 :]]
    if len(kept) < 3:
        return float("nan")
    mean_t = statistics.fmean(t for t, _ in kept)
    mean_v = statistics.fmean(v for _, v in kept)
    spread = sum((t - mean_t) ** 2 for t, _ in kept)
    if spread == 0:
        return float("nan")
    return sum((t - mean_t) * (v - mean_v) for t, v in kept) / spread * 60


def soak(
    phase: Phase,
    make_call: Callable[[], Callable[[], bool]],
    endpoint: LocalEndpoint,
    seconds: float,
    concurrency: int,
) -> Phase:
    stop = time.monotonic() + seconds
    started = time.monotonic()

    def worker() -> None:
        call = make_call()  # one connection per thread, as a pooled client keeps
        latencies, errors = [], 0
        while time.monotonic() < stop:
            begin = time.perf_counter()
            try:
                ok = call()
            except Exception:
                ok = False
            latencies.append(time.perf_counter() - begin)
            errors += not ok
        with phase.lock:
            phase.latencies += latencies
            phase.errors += errors

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        phase.memory.append(
            (time.monotonic() - started, process_rss(os.getpid()), container_rss(endpoint))
        )
        time.sleep(1.0)
    for thread in threads:
        thread.join()
    return phase


def report(phase: Phase, seconds: float) -> str:
    requests = len(phase.latencies)
    p50 = statistics.median(phase.latencies) * 1000 if requests else float("nan")
    p99 = statistics.quantiles(phase.latencies, n=100)[98] * 1000 if requests > 100 else p50
    own = slope_mb_per_minute([(t, own) for t, own, _ in phase.memory])
    serving = slope_mb_per_minute([(t, rss) for t, _, rss in phase.memory])
    return (
        f"{phase.name:<30} {requests:8d} requests  {phase.errors:4d} errors  "
        f"{requests / seconds:7.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
        f"memory slope: this process {own:+6.2f} MB/min, container {serving:+6.2f} MB/min"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as scratch:
        home = Path(scratch)
        backend = local_backend(home)
        backend.register("iris", artifacts()["iris"])
        backend.deployer.deploy("dev", ["iris"]).raise_for_failures()
        target = backend.deployer.read_table("dev").routes["iris"].target_model
        with LocalEndpoint(home, PROJECT, workers=2) as endpoint:
            adapter = InvokerHTTPServer(
                ("127.0.0.1", 0), {"dev": local_invoker(home, "dev", endpoint.url, PROJECT)}
            ).start()
            try:
                body = json.dumps([ROW])

                def direct() -> Callable[[], bool]:
                    client = runtime_client(endpoint.url)

                    def call() -> bool:
                        client.invoke_endpoint(
                            EndpointName=f"{PROJECT}-dev",
                            TargetModel=target,
                            ContentType="application/json",
                            Body=body,
                        )["Body"].read()
                        return True

                    return call

                request = json.dumps({"dataset": "iris", "rows": [ROW]}).encode()
                host, port = adapter.url.removeprefix("http://").split(":")

                def through_invoker() -> Callable[[], bool]:
                    connection = http.client.HTTPConnection(host, int(port), timeout=60)

                    def call() -> bool:
                        connection.request(
                            "POST",
                            "/dev",
                            body=request,
                            headers={"Content-Type": "application/json"},
                        )
                        response = connection.getresponse()
                        response.read()
                        return response.status == 200

                    return call

                baseline = soak(
                    Phase("baseline: boto3 InvokeEndpoint"),
                    direct,
                    endpoint,
                    args.seconds,
                    args.concurrency,
                )
                invoker = soak(
                    Phase("invoker over HTTP (+ log)"),
                    through_invoker,
                    endpoint,
                    args.seconds,
                    args.concurrency,
                )
                log = local_inference_log(home)
                drained = log.drain(30)
                stats = log.stats()
            finally:
                adapter.stop()
    print(f"soak: {args.seconds:.0f} s per phase, concurrency {args.concurrency}, loopback only")
    print(report(baseline, args.seconds))
    print(report(invoker, args.seconds))
    lost = len(invoker.latencies) - stats.recorded
    print(
        f"inference log: {stats.recorded} recorded, {stats.dropped} dropped, "
        f"{lost} unaccounted for{'' if drained else ' (still draining)'}"
    )


if __name__ == "__main__":
    main()
