"""Serving benchmark: our server vs a plain baseline, both run here, on loopback only.

    python benchmarks/bench_serving.py [--seconds 2] [--concurrency 1,8,32]

Baseline: the plain single-request-per-predict server a SageMaker bring-your-own-container user
typically writes (the Flask/`inference.py` pattern): one Python process, threads per connection
(stdlib ThreadingHTTPServer), the request parsed with pandas through `schema.to_model_input`,
one `predict_proba` per request, stdlib json. It speaks the same multi-model API and loads the
same artifacts with the same libraries, so only the serving design differs. (AWS's own MMS
stack, process-per-model in Java, is not installable here; reference/serving.md measured it at
~400 us/request overhead and ~80 MB PSS and ~1 s per loaded model.)

Printed per server: model load time and memory growth per model, then requests/s and p50/p99
latency for one-row CSV requests at each concurrency. The load generator is an asyncio
keep-alive client in this process, identical for both servers; on a 2-core machine it shares
the CPU with the server, so compare the two columns, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODELS = {
    "logistic-regression": {},
    "xgboost": {"n_estimators": "100"},
    "random-forest": {"n_estimators": "100"},
    "lightgbm": {"n_estimators": "100"},
}
COPIES = 3  # extra copies of each artifact, loaded under other names, for the memory slope


# -- the baseline server -----------------------------------------------------------------------


def serve_baseline(port: int) -> None:
    import pandas as pd

    from container.artifact import load_model_dir
    from container.schema import csv_dtypes, to_model_input

    models: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Without it, headers and body leave in two segments and delayed ACKs add ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, document: Any) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._reply(200, {"models": [{"modelName": n} for n in sorted(models)]})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/models":
                request = json.loads(body)
                models[request["model_name"]] = load_model_dir(Path(request["url"]))
                self._reply(200, {"status": "Workers scaled"})
                return
            name = self.path.split("/")[2]
            if name not in models:
                self._reply(404, {"message": f"Model not found: {name}"})
                return
            loaded = models[name]
            schema = loaded.schema
            frame = pd.read_csv(
                io.StringIO(body.decode()),
                header=None,
                names=schema.feature_names,
                dtype=csv_dtypes(schema),
                skipinitialspace=True,
            )
            proba = loaded.estimator.predict_proba(to_model_input(frame, schema))
            labels = list(schema.classes)
            self._reply(
                200,
                {
                    "predictions": [
                        {"label": labels[int(row.argmax())], "probabilities": row.tolist()}
                        for row in proba
                    ]
                },
            )

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


# -- measurement helpers -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tree_rss(pid: int) -> int:
    pids, total = [pid], 0
    while pids:
        current = pids.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * os.sysconf(
                "SC_PAGE_SIZE"
            )
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pids += [int(child) for child in children]
    return total


async def http(
    port: int, method: str, path: str, body: bytes = b"", content_type: str = "application/json"
) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_bytes(method, path, body, content_type, close=True))
        await writer.drain()
        return await read_response(reader)
    finally:
        writer.close()


def request_bytes(
    method: str, path: str, body: bytes, content_type: str, close: bool = False
) -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, await reader.readexactly(length)


async def load_models(
    port: int, pid: int, artifacts: dict[str, Path]
) -> dict[str, tuple[float, float]]:
    """Per family: (median load ms, median MB per loaded model)."""
    figures = {}
    for family, directory in artifacts.items():
        times, growth = [], []
        for copy in range(COPIES + 1):
            before = tree_rss(pid)
            started = time.perf_counter()
            status, body = await http(
                port,
                "POST",
                "/models",
                json.dumps({"model_name": f"{family}-{copy}", "url": str(directory)}).encode(),
            )
            times.append((time.perf_counter() - started) * 1000)
            assert status == 200, body
            growth.append((tree_rss(pid) - before) / 2**20)
        # The first load of a family also pays lazy imports and first-use caches; report both.
        figures[family] = (times[0], statistics.median(times[1:]), statistics.median(growth[1:]))
    return figures


async def drive(
    port: int, path: str, body: bytes, concurrency: int, seconds: float
) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) over `seconds` with `concurrency` keep-alive connections."""
    payload = request_bytes("POST", path, body, "text/csv")
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(payload)
                status, _ = await read_response(reader)
                if status != 200:
                    raise RuntimeError(f"status {status}")
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return (
        len(latencies) / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    )


def start(command: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"GET /models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if probe.recv(12).startswith(b"HTTP/1.1 200"):
                    return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{command} did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def train(root: Path) -> dict[str, Path]:
    from tests.serving_support import breast_cancer_frame, train_artifact

    frame = breast_cancer_frame()
    return {
        family: train_artifact(
            root / family,
            frame,
            dataset="breast-cancer",
            target="target",
            family=family,
            hyperparameters=params,
        )
        for family, params in MODELS.items()
    }


async def measure(
    name: str, command: list[str], port: int, artifacts: dict[str, Path], args: argparse.Namespace
) -> dict[str, Any]:
    started = time.perf_counter()
    process = start(command, port)
    startup = time.perf_counter() - started
    try:
        idle = tree_rss(process.pid) / 2**20
        loads = await load_models(port, process.pid, artifacts)
        row = ",".join(["14.0"] * 30).encode()
        rates = {}
        for family in artifacts:
            for concurrency in args.concurrency:
                rates[(family, concurrency)] = await drive(
                    port, f"/models/{family}-0/invoke", row, concurrency, args.seconds
                )
        return {"name": name, "startup": startup, "idle": idle, "loads": loads, "rates": rates}
    finally:
        stop(process)


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print("\nstart-up to first answer and idle memory (process tree RSS)")
    for result in results:
        print(f"  {result['name']:<10} {result['startup']:6.2f} s   {result['idle']:7.1f} MB")
    print("\nmodel load (first of a family / later copies, ms) and memory per extra copy (MB)")
    print(f"  {'model':<20}" + "".join(f"{r['name']:>32}" for r in results))
    for family in MODELS:
        cells = "".join(
            f"{r['loads'][family][0]:>12.1f} /{r['loads'][family][1]:>7.1f} ms {r['loads'][family][2]:>6.2f} MB"
            for r in results
        )
        print(f"  {family:<20}{cells}")
    print("\none-row CSV invocations: requests/s, p50 / p99 latency (ms)")
    print(
        f"  {'model':<20}{'conc':>5}"
        + "".join(f"{r['name']:>30}" for r in results)
        + f"{'ratio':>8}"
    )
    for family in MODELS:
        for concurrency in args.concurrency:
            figures = [r["rates"][(family, concurrency)] for r in results]
            cells = "".join(
                f"{rate:>10.0f} r/s {p50:>6.2f} / {p99:>6.2f}" for rate, p50, p99 in figures
            )
            print(f"  {family:<20}{concurrency:>5}{cells}{figures[0][0] / figures[1][0]:>7.1f}x")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        artifacts = train(Path(tmp))
        ours_port, base_port = free_port(), free_port()
        env_root = Path(tmp) / "no-ml-root"
        os.environ["SM_ML_ROOT"] = str(env_root)
        ours = await measure(
            "ours",
            [
                sys.executable,
                "-m",
                "container",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(ours_port),
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
            ],
            ours_port,
            artifacts,
            args,
        )
        baseline = await measure(
            "baseline",
            [sys.executable, __file__, "--serve-baseline", str(base_port)],
            base_port,
            artifacts,
            args,
        )
        report([ours, baseline], args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per model and concurrency")
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32]
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_baseline:
        serve_baseline(arguments.serve_baseline)
    else:
        asyncio.run(main(arguments))
