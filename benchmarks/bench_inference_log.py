"""What recording every invocation in the inference log costs the invoker.

The invoker handler against an in-process fake endpoint (so that only the invoker's own work is
timed, not the model's), one request of ten iris rows at a time, three ways:

1. baseline: no inference log;
2. the local log: a background writer into SQLite (`<home>/inference.sqlite`);
3. a log whose store is down (every write raises): what an outage costs a prediction.

Run: `.venv/bin/python benchmarks/bench_inference_log.py [--requests N]`.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from modeldeploy.inference_log import BackgroundLog, InferenceRecord  # noqa: E402
from modeldeploy.inference_log_sqlite import SQLiteSink  # noqa: E402
from modeldeploy.invoker import Invoker, request_event  # noqa: E402
from modeldeploy.routing import Route, RoutingTable  # noqa: E402

ROWS = [[5.1, 3.5, 1.4, 0.2]] * 10
BASELINE = "baseline: no inference log"
ROUTE = Route(
    target_model="iris/1-cccccccccccc.tar.gz",
    model_data_url="s3://b/dev/models/iris/1-cccccccccccc.tar.gz",
    model_package_arn="arn:aws:sagemaker:us-east-1:1:model-package/mme-iris/1",
    model_package_version=1,
    sha256="c" * 64,
    model_sha256="d" * 64,
    source_model_data_url="s3://b/pipelines/iris/model.tar.gz",
    deployed_at="2026-01-01T00:00:00+00:00",
)
TABLE = RoutingTable("dev", 1, "", {"iris": ROUTE}).to_json()
ANSWER = json.dumps(
    {"predictions": [{"label": 0}] * len(ROWS), "classes": [0, 1], "model_version": "d" * 64}
).encode()


class Runtime:
    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        return {"Body": io.BytesIO(ANSWER)}


class DownSink:
    def write(self, records: Sequence[InferenceRecord]) -> int:
        raise ConnectionError("down")


def invoker(log: BackgroundLog | None) -> Invoker:
    return Invoker(
        runtime=Runtime(), endpoint_name="mme-dev", read_table=lambda: TABLE, stage="dev",
        inference_log=log,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-log-"))
    logs = {
        "local SQLite log": BackgroundLog(SQLiteSink(home / "inference.sqlite")),
        "store down": BackgroundLog(DownSink()),
    }
    variants = {BASELINE: invoker(None), **{name: invoker(log) for name, log in logs.items()}}
    event = request_event("iris", ROWS)
    timings: dict[str, list[float]] = {name: [] for name in variants}
    # Interleaved in blocks, so that drift in the machine's load hits every variant alike.
    for _ in range(max(1, args.requests // 250)):
        for name, handler in variants.items():
            for _ in range(250):
                started = time.perf_counter()
                handler.handle(event)
                timings[name].append((time.perf_counter() - started) * 1e6)
    for log in logs.values():
        log.drain(60)
    base = statistics.median(timings[BASELINE])
    print(f"{'variant':<28}{'median us':>12}{'p99 us':>10}{'vs baseline':>13}  log")
    for name, values in timings.items():
        median = statistics.median(values)
        p99 = statistics.quantiles(values, n=100)[98]
        stats = logs[name].stats() if name in logs else None
        note = f"recorded {stats.recorded}, dropped {stats.dropped}" if stats else "-"
        print(f"{name:<28}{median:>12.1f}{p99:>10.1f}{median - base:>+12.1f}  {note}")


if __name__ == "__main__":
    main()
