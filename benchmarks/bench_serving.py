"""Serving benchmark: our server vs the raw-model floor and a plain baseline, on loopback only.

    python benchmarks/bench_serving.py [--seconds 5] [--concurrency 1,16,64]
        [--server-cpu 0 --client-cpu 1] [--servers ours,floor,baseline] [--before DIR]

Servers, each started fresh and fed the same artifacts (breast cancer, 30 numeric features):

- ours: `python -m container serve`, the production server (one worker per `--workers`).
- floor: the cheapest server this stack allows, what issue 16 calls the bare ASGI floor: raw
  ASGI on uvicorn (uvloop, httptools) and orjson, the CSV row parsed by numpy, the model called
  raw: LightGBM's booster, XGBoost's booster, logistic regression as coefficients (the scaler
  folded into them), the random forest's own predict_proba. No validation, no batching, no
  multi-model bookkeeping beyond a dict: a lower bound on cost, not a product.
- baseline: the plain single-request-per-predict server a SageMaker bring-your-own-container
  user typically writes (the Flask/`inference.py` pattern): stdlib ThreadingHTTPServer, the
  request parsed with pandas through `schema.to_model_input`, one Pipeline `predict_proba` per
  request, stdlib json.
- before (with `--before DIR`): our server run from another checkout, e.g. the previous commit
  extracted with `git archive`, to measure a change.

MLServer is not run here (it needs its own environment; reference/serving.md, B.3 has its
figures from bench/peers on this machine).

Printed per server: model load time and memory per model, median unload time, then requests/s,
p50 / p99 / worst latency for one-row CSV requests at each concurrency: the servers take turns
in `--rounds` slices of each figure's time (requests/s is the median slice, latencies are
pooled). Then, in-process, each family's request handler called in turn for `--gc-seconds` with
Python's default collector and with the server's (`container.serving.heap`): the worst request
and the full collections met. The load generator is an asyncio keep-alive client in this
process, identical for every server. Pin the server and the client to different cores
(`--server-cpu`, `--client-cpu`, through `taskset`); on a shared machine, compare columns of
one run, not absolute numbers across runs.
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


# -- the floor: raw ASGI calling the raw model -------------------------------------------------


def raw_model(estimator: Any) -> Any:
    """The fitted model without scikit-learn around it: one-row float matrix -> probabilities."""
    import numpy as np

    model = estimator.steps[-1][1]
    kind = type(model).__name__
    if kind == "LGBMClassifier":
        booster = model.booster_

        def lightgbm(x: Any) -> Any:
            p = booster.predict(x, num_threads=1)
            return np.vstack((1.0 - p, p)).T

        return lightgbm
    if kind == "XGBClassifier":
        xgb_booster = model.get_booster()

        def xgboost(x: Any) -> Any:
            p = xgb_booster.inplace_predict(x, validate_features=False)
            return np.vstack((1.0 - p, p)).T

        return xgboost
    if kind == "LogisticRegression":
        scaler = estimator.steps[0][1].steps[-1][1]  # preprocess = (as-float, impute, scale)
        weights = model.coef_.ravel() / scaler.scale_
        intercept = float(model.intercept_[0] - weights @ scaler.mean_)

        def linear(x: Any) -> Any:
            p = 1.0 / (1.0 + np.exp(-(x @ weights + intercept)))
            return np.vstack((1.0 - p, p)).T

        return linear
    return model.predict_proba


def serve_floor(port: int) -> None:
    import numpy as np
    import orjson
    import uvicorn

    from container.artifact import load_model_dir

    models: dict[str, Any] = {}

    async def body(receive: Any) -> bytes:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        status, answer = 200, b"{}"
        if path == "/models" and method == "POST":
            request = orjson.loads(await body(receive))
            loaded = load_model_dir(Path(request["url"]))
            models[request["model_name"]] = (raw_model(loaded.estimator), loaded.schema.classes)
        elif path.endswith("/invoke"):
            predict, classes = models[path.split("/")[2]]
            row = np.array((await body(receive)).split(b","), dtype=np.float64).reshape(1, -1)
            proba = predict(row)[0]
            answer = orjson.dumps(
                {
                    "label": classes[int(proba.argmax())],
                    "probabilities": dict(zip(classes, proba.tolist(), strict=True)),
                }
            )
        elif method == "DELETE":
            models.pop(path.split("/")[2], None)
        elif method == "GET":
            answer = orjson.dumps({"models": [{"modelName": n} for n in sorted(models)]})
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


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

        def do_DELETE(self) -> None:
            models.pop(self.path.split("/")[2], None)
            self._reply(200, {"status": "Model unloaded"})

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


async def load_models(port: int, pid: int, artifacts: dict[str, Path]) -> dict[str, Any]:
    """Per family: first load ms, median later load ms, median MB per extra copy."""
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


async def unload_copies(port: int, artifacts: dict[str, Path]) -> float:
    """Median ms of a DELETE (the extra copies; copy 0 of each family stays for the runs)."""
    times = []
    for family in artifacts:
        for copy in range(1, COPIES + 1):
            started = time.perf_counter()
            status, body = await http(port, "DELETE", f"/models/{family}-{copy}")
            times.append((time.perf_counter() - started) * 1000)
            assert status == 200, body
    return statistics.median(times)


async def drive(
    port: int, path: str, body: bytes, concurrency: int, seconds: float
) -> tuple[float, list[float]]:
    """(requests/s, every latency in s) over `seconds` with `concurrency` keep-alive clients."""
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
    return len(latencies) / (time.perf_counter() - started), latencies


def summarise(slices: list[tuple[float, list[float]]]) -> tuple[float, float, float, float]:
    """(median requests/s over the slices, then p50, p99, worst ms of all their latencies)."""
    latencies = sorted(latency for _, run in slices for latency in run)
    return (
        statistics.median(rate for rate, _ in slices),
        latencies[len(latencies) // 2] * 1000,
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        latencies[-1] * 1000,
    )


def start(command: list[str], port: int, cwd: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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


def server_command(name: str, port: int, args: argparse.Namespace) -> tuple[list[str], Path]:
    if name in ("ours", "before"):
        root = args.before if name == "before" else REPO
        command = [
            sys.executable,
            "-m",
            "container",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
        ]
    else:
        root = REPO
        command = [sys.executable, __file__, f"--serve-{name}", str(port)]
    if args.server_cpu is not None:
        command = ["taskset", "-c", args.server_cpu, *command]
    return command, root


async def launch(name: str, artifacts: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    command, root = server_command(name, port, args)
    started = time.perf_counter()
    process = start(command, port, root)
    startup = time.perf_counter() - started
    idle = tree_rss(process.pid) / 2**20
    loads = await load_models(port, process.pid, artifacts)
    unload = await unload_copies(port, artifacts)
    return {
        "name": name,
        "process": process,
        "port": port,
        "startup": startup,
        "idle": idle,
        "loads": loads,
        "unload": unload,
        "rates": {},
    }


async def measure_rates(
    servers: list[dict[str, Any]], artifacts: dict[str, Path], args: argparse.Namespace
) -> None:
    """Every server in turn, in short slices, rotating the order each round: a neighbour's burst
    on a shared machine then lands on all of them instead of on whichever ran at that moment."""
    row = ",".join(["14.0"] * 30).encode()
    for family in artifacts:
        for concurrency in args.concurrency:
            slices: dict[str, list[tuple[float, list[float]]]] = {s["name"]: [] for s in servers}
            for round_ in range(args.rounds):
                for server in servers[round_ % len(servers) :] + servers[: round_ % len(servers)]:
                    slices[server["name"]].append(
                        await drive(
                            server["port"],
                            f"/models/{family}-0/invoke",
                            row,
                            concurrency,
                            args.seconds / args.rounds,
                        )
                    )
            for server in servers:
                server["rates"][(family, concurrency)] = summarise(slices[server["name"]])


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print("\nstart-up to first answer, idle memory (process tree RSS), median unload")
    for r in results:
        print(f"  {r['name']:<10} {r['startup']:6.2f} s {r['idle']:8.1f} MB {r['unload']:8.2f} ms")
    print("\nmodel load (first of a family / later copies, ms) and memory per extra copy (MB)")
    print(f"  {'model':<20}" + "".join(f"{r['name']:>32}" for r in results))
    for family in MODELS:
        cells = "".join(
            f"{r['loads'][family][0]:>12.1f} /{r['loads'][family][1]:>7.1f} ms "
            f"{r['loads'][family][2]:>6.2f} MB"
            for r in results
        )
        print(f"  {family:<20}{cells}")
    print("\none-row CSV invocations: requests/s, p50 / p99 / worst latency (ms)")
    ours = next((r for r in results if r["name"] == "ours"), results[0])
    others = [r for r in results if r is not ours]
    print(
        f"  {'model':<20}{'conc':>5}"
        + "".join(f"{r['name']:>36}" for r in results)
        + "".join(f"{'ours/' + r['name']:>16}" for r in others)
    )
    for family in MODELS:
        for concurrency in args.concurrency:
            cells = "".join(
                "{:>9.0f} r/s {:>6.2f} /{:>6.2f} /{:>6.1f}".format(
                    *r["rates"][(family, concurrency)]
                )
                for r in results
            )
            ratios = "".join(
                f"{ours['rates'][(family, concurrency)][0] / r['rates'][(family, concurrency)][0]:>15.2f}x"
                for r in others
            )
            print(f"  {family:<20}{concurrency:>5}{cells}{ratios}")


# -- garbage-collection pauses, in-process -----------------------------------------------------


def gc_probe(mode: str, artifact: Path, seconds: float) -> None:
    """One worker's request handler, called in turn for `seconds`, with the server's heap policy
    (`frozen`) or Python's defaults (`default`); prints the worst request and the collections."""
    import gc

    import orjson
    import sklearn

    import container.families  # noqa: F401  (the worker imports every family up front)
    from container.serving import heap
    from container.serving.app import WorkerApp
    from container.serving.config import ServerConfig
    from container.serving.model import load_served_model

    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
    app = WorkerApp(ServerConfig(), None)
    model = load_served_model("m", str(artifact), artifact)
    app.models["m"], app.batchers["m"] = model, app._batcher(model)
    if mode == "frozen":
        heap.start()
    row = ",".join(["14.0"] * 30).encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/models/m/invoke",
        "raw_path": b"/models/m/invoke",
        "headers": [(b"content-type", b"text/csv"), (b"content-length", b"%d" % len(row))],
        "query_string": b"",
    }
    pauses: list[float] = []
    began = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - began[0])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": row, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def run() -> list[float]:
        latencies = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await app(scope, receive, send)
            latencies.append(time.perf_counter() - started)
        return latencies

    gc.callbacks.append(on_gc)
    latencies = asyncio.run(run())
    gc.callbacks.remove(on_gc)
    latencies.sort()
    print(
        orjson.dumps(
            {
                "requests": len(latencies),
                "p50": latencies[len(latencies) // 2] * 1000,
                "worst": latencies[-1] * 1000,
                "full_collections": len(pauses),
                "longest_collection": max(pauses, default=0.0) * 1000,
            }
        ).decode()
    )


def gc_pauses(artifacts: dict[str, Path], args: argparse.Namespace) -> None:
    print(f"\nin-process request handler, {args.gc_seconds:.0f} s sequential per family")
    print(
        f"  {'model':<20}{'heap':>8}{'requests':>10}{'p50 ms':>9}{'worst ms':>10}"
        f"{'full GCs':>10}{'longest GC ms':>15}"
    )
    for family, directory in artifacts.items():
        for mode in ("default", "frozen"):
            command = [sys.executable, __file__, "--gc-probe", mode, str(directory)]
            command += ["--seconds", str(args.gc_seconds)]
            if args.server_cpu is not None:
                command = ["taskset", "-c", args.server_cpu, *command]
            figures = json.loads(
                subprocess.run(
                    command, cwd=REPO, capture_output=True, check=True, text=True
                ).stdout.splitlines()[-1]
            )
            print(
                f"  {family:<20}{mode:>8}{figures['requests']:>10}{figures['p50']:>9.3f}"
                f"{figures['worst']:>10.2f}{figures['full_collections']:>10}"
                f"{figures['longest_collection']:>15.1f}"
            )


async def main(args: argparse.Namespace) -> None:
    if args.client_cpu is not None:
        os.sched_setaffinity(0, {int(c) for c in args.client_cpu.split(",")})
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        artifacts = train(Path(tmp))
        os.environ["SM_ML_ROOT"] = str(Path(tmp) / "no-ml-root")
        # One at a time, so a start-up or a load never overlaps another server's measurement.
        results = []
        try:
            for name in args.servers:
                results.append(await launch(name, artifacts, args))
            await measure_rates(results, artifacts, args)
        finally:
            for result in results:
                stop(result["process"])
        report(results, args)
        if args.gc_seconds:
            gc_pauses(artifacts, args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="per server, model and concurrency"
    )
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64]
    )
    parser.add_argument("--workers", type=int, default=1, help="our server's worker processes")
    parser.add_argument("--rounds", type=int, default=5, help="slices per server and figure")
    parser.add_argument(
        "--servers",
        type=lambda s: s.split(","),
        default=["ours", "floor", "baseline"],
        help="any of ours, floor, baseline, before (needs --before)",
    )
    parser.add_argument("--before", type=Path, help="a checkout to run as the 'before' server")
    parser.add_argument("--server-cpu", help="taskset CPU list for the server, e.g. 0")
    parser.add_argument("--client-cpu", help="CPU list for the load generator, e.g. 1")
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--gc-seconds", type=float, default=10.0, help="per family, in-process GC probe (0: skip)"
    )
    parser.add_argument("--gc-probe", nargs=2, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.gc_probe:
        gc_probe(arguments.gc_probe[0], Path(arguments.gc_probe[1]), arguments.seconds)
    elif arguments.serve_baseline:
        serve_baseline(arguments.serve_baseline)
    elif arguments.serve_floor:
        serve_floor(arguments.serve_floor)
    else:
        if "before" in arguments.servers and arguments.before is None:
            parser.error("--servers before needs --before DIR")
        asyncio.run(main(arguments))
