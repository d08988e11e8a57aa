"""What the invoker costs on top of the endpoint, and what caching the routing table saves.

Three ways to get one iris prediction from the local multi-model endpoint (the real serving
container behind the SageMaker Runtime API), one request at a time:

1. baseline: a boto3 `sagemaker-runtime` client calling InvokeEndpoint with the target model;
2. the invoker handler with its routing table cached (TTL 10 s, the default);
3. the invoker handler reading the routing table on every request (TTL 0), which is what the
   seed's invoker did.

Run: `.venv/bin/python benchmarks/bench_invoker.py [--requests N]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from local.endpoint import LocalEndpoint, local_invoker, runtime_client  # noqa: E402
from modeldeploy import naming  # noqa: E402
from tests.deploy_support import PROJECT, artifacts, local_backend  # noqa: E402

ROW = [5.1, 3.5, 1.4, 0.2]
BASELINE = "baseline: boto3 InvokeEndpoint"


def measure(calls: dict[str, Callable[[], None]], requests: int) -> dict[str, list[float]]:
    """Interleaved in blocks, so that drift in the machine's load hits every variant alike."""
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        for _ in range(20):  # warm: model loaded, connections open
            call()
    block = 50
    for _ in range(0, requests, block):
        for name, call in calls.items():
            for _ in range(block):
                start = time.perf_counter()
                call()
                timings[name].append(time.perf_counter() - start)
    return timings


def summary(name: str, timings: list[float], baseline: list[float] | None) -> str:
    median = statistics.median(timings) * 1000
    p99 = statistics.quantiles(timings, n=100)[98] * 1000
    rate = len(timings) / sum(timings)
    extra = ""
    if baseline is not None:
        extra = f"  ({median - statistics.median(baseline) * 1000:+.2f} ms median vs baseline)"
    return f"{name:<34} {rate:8.0f} req/s  p50 {median:6.2f} ms  p99 {p99:6.2f} ms{extra}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-invoker-") as scratch:
        home = Path(scratch)
        backend = local_backend(home)
        backend.register("iris", artifacts()["iris"])
        backend.deployer.deploy("dev", ["iris"])
        target = backend.deployer.read_table("dev").routes["iris"].target_model
        with LocalEndpoint(home, PROJECT) as endpoint:
            client = runtime_client(endpoint.url)
            body = json.dumps([ROW])
            event = {
                "requestContext": {"http": {"method": "POST"}},
                "body": json.dumps({"dataset": "iris", "rows": [ROW]}),
            }

            def direct() -> None:
                client.invoke_endpoint(
                    EndpointName=naming.endpoint_name(PROJECT, "dev"),
                    TargetModel=target,
                    ContentType="application/json",
                    Accept="application/json",
                    Body=body,
                )["Body"].read()

            cached = local_invoker(home, "dev", endpoint.url, PROJECT)
            uncached = local_invoker(home, "dev", endpoint.url, PROJECT)
            uncached.ttl_seconds = 0.0

            def through(invoker: object) -> Callable[[], None]:
                def call() -> None:
                    response = invoker.handle(event)  # type: ignore[attr-defined]
                    assert response["statusCode"] == 200, response

                return call

            results = measure(
                {
                    BASELINE: direct,
                    "invoker, table cached (TTL 10 s)": through(cached),
                    "invoker, table read per request": through(uncached),
                },
                args.requests,
            )
    print(f"{args.requests} sequential requests each, one row, local endpoint + container")
    baseline = results[BASELINE]
    for name, timings in results.items():
        print(summary(name, timings, None if name == BASELINE else baseline))


if __name__ == "__main__":
    main()
