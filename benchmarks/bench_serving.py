"""Serving benchmark: our server vs the raw-model floor and MLServer, on loopback only.

    python benchmarks/bench_serving.py [--seconds 10] [--concurrency 1,16,64] [--repeats 3]
        [--server-cpu 0 --client-cpu 1] [--servers ours,floor,mlserver,baseline] [--before DIR]

Servers, each started fresh and fed the same trained models (breast cancer, 30 numeric features):

- ours: `python -m container serve`, the production server (one worker per `--workers`).
- floor: the cheapest server this stack allows, what issue 16 calls the bare ASGI floor: raw
  ASGI on uvicorn (uvloop, httptools) and orjson, the JSON row parsed by orjson and numpy, the
  model called raw: LightGBM's booster, XGBoost's booster, logistic regression as coefficients
  (the scaler folded into them), the random forest's own predict_proba. No validation, no
  batching, no multi-model bookkeeping beyond a dict: a lower bound on cost, not a product.
- mlserver: MLServer 1.7.1 with mlserver-sklearn/-xgboost/-lightgbm, in its own environment
  (`.venv-bench-mlserver`, created by this script's setup step from
  `serving_baselines/requirements-mlserver*.txt`), tuned as reference/serving.md measured it
  (no parallel workers, no metrics, no gzip, no access log), serving the same models exported in
  its formats over the V2 protocol (`serving_baselines/mlserver_peer.py`).
- baseline: the plain single-request-per-predict server a SageMaker bring-your-own-container
  user typically writes (the Flask/`inference.py` pattern): stdlib ThreadingHTTPServer, the
  request turned into a DataFrame and through `schema.to_model_input`, one Pipeline
  `predict_proba` per request, stdlib json.
- before (with `--before DIR`): our server run from another checkout, e.g. the previous commit
  extracted with `git archive`, to measure a change.

Every request is one row as JSON (`[[...]]`; V2 `inputs` for MLServer). Printed per server:
model load time and memory per model, median unload time, then requests/s and p50 / p99 / worst
latency at each concurrency: the servers take turns in `--rounds` slices of each figure's time
(requests/s is the median slice, latencies are pooled), and the whole measurement runs
`--repeats` times, each figure being the median over the repeats. At concurrency 1 the slices
add up to one sequential run of `--seconds`, whose worst request is the "worst sequential"
figure. Then the issue-16 goals, each with its ratio and PASS/FAIL, and in-process each family's
request handler with Python's default collector and with the server's (`container.serving.heap`).

The load generator is an asyncio keep-alive client in this process, identical for every server,
with its own collector frozen and paused while it measures (its ~150k objects from training
would otherwise put its own full collections into the servers' latencies). Pin the server and
the client to different cores (`--server-cpu`, `--client-cpu`, through `taskset`); the load
average is printed before and after: on a shared machine, compare columns of one run.

Why this file is long: it is one benchmark run end to end (train the models, start our server,
the plain baseline and MLServer, drive each with the same load, print baseline beside ours);
its pieces share the run's ports, processes and artifacts and are no use apart.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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

from serving_baselines.mlserver_peer import SetupError, ensure_environment  # noqa: E402

from container.serving.config import serve_command  # noqa: E402

MODELS = {
    "logistic-regression": {},
    "xgboost": {"n_estimators": "100"},
    "random-forest": {"n_estimators": "100"},
    "lightgbm": {"n_estimators": "100"},
}
COPIES = 3  # extra copies of each artifact, loaded under other names, for the memory slope
ROW = [14.0] * 30  # the one-row request every server answers (breast cancer has 30 features)
# Families whose goals leave the random forest out: its own predict is ~4 ms (issue 16).
NON_RF = ("logistic-regression", "xgboost", "lightgbm")


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
            row = np.array(orjson.loads(await body(receive)), dtype=np.float64)
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
    from container.schema import to_model_input

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
            frame = pd.DataFrame(json.loads(body), columns=schema.feature_names)
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


# What each server's API looks like: SageMaker's multi-model API, or MLServer's V2 protocol
# (whose repository API loads a model by name from the repository it was started with).


def load_request(server: str, name: str, directory: Path) -> tuple[str, str, bytes]:
    if server == "mlserver":
        return "POST", f"/v2/repository/models/{name}/load", b""
    return "POST", "/models", json.dumps({"model_name": name, "url": str(directory)}).encode()


def unload_request(server: str, name: str) -> tuple[str, str]:
    if server == "mlserver":
        return "POST", f"/v2/repository/models/{name}/unload"
    return "DELETE", f"/models/{name}"


def invoke_request(server: str, family: str, name: str) -> tuple[str, bytes]:
    if server == "mlserver":
        from serving_baselines.mlserver_peer import infer_body

        return f"/v2/models/{name}/infer", infer_body(family, ROW)
    return f"/models/{name}/invoke", json.dumps([ROW]).encode()


async def load_models(
    server: str, port: int, pid: int, artifacts: dict[str, Path]
) -> dict[str, Any]:
    """Per family: first load ms, median later load ms, median MB per extra copy."""
    figures = {}
    for family, directory in artifacts.items():
        times, growth = [], []
        for copy in range(COPIES + 1):
            before = tree_rss(pid)
            started = time.perf_counter()
            status, body = await http(port, *load_request(server, f"{family}-{copy}", directory))
            times.append((time.perf_counter() - started) * 1000)
            assert status == 200, body
            growth.append((tree_rss(pid) - before) / 2**20)
        # The first load of a family also pays lazy imports and first-use caches; report both.
        figures[family] = (times[0], statistics.median(times[1:]), statistics.median(growth[1:]))
    return figures


async def unload_copies(server: str, port: int, artifacts: dict[str, Path]) -> float:
    """Median ms of an unload (the extra copies; copy 0 of each family stays for the runs)."""
    times = []
    for family in artifacts:
        for copy in range(1, COPIES + 1):
            started = time.perf_counter()
            status, body = await http(port, *unload_request(server, f"{family}-{copy}"))
            times.append((time.perf_counter() - started) * 1000)
            assert status == 200, body
    return statistics.median(times)


async def drive(
    port: int, path: str, body: bytes, concurrency: int, seconds: float
) -> tuple[float, list[float]]:
    """(requests/s, every latency in s) over `seconds` with `concurrency` keep-alive clients."""
    payload = request_bytes("POST", path, body, "application/json")
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


def start(
    command: list[str], port: int, cwd: Path, ready: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(
                    f"GET {ready} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
                )
                if probe.recv(12).startswith(b"HTTP/1.1 200"):
                    return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    _, stderr = process.communicate()
    tail = "\n".join(stderr.decode(errors="replace").splitlines()[-10:])
    raise RuntimeError(f"{' '.join(command)} did not start:\n{tail}")


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


def server_command(
    name: str, port: int, args: argparse.Namespace, artifacts: dict[str, Path], tmp: Path
) -> tuple[list[str], Path, str, dict[str, str]]:
    """(command, working directory, readiness path, environment) of one server."""
    # One thread per server: each owns one core, and every library then computes alike.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ready = "/models"
    if name in ("ours", "before"):
        root = args.before if name == "before" else REPO
        command = serve_command(
            "127.0.0.1", port, "--workers", str(args.workers), "--log-level", "warning"
        )
    elif name == "mlserver":
        from serving_baselines import mlserver_peer

        python = mlserver_peer.ensure_environment()
        repository = mlserver_peer.export_repository(
            artifacts, COPIES, tmp / "mlserver-repository", port, free_port()
        )
        root, ready = repository, "/v2/health/live"
        command = mlserver_peer.server_command(python, repository)
        env = {**mlserver_peer.server_environment(), "OMP_NUM_THREADS": "1"}
    else:
        root = REPO
        command = [sys.executable, __file__, f"--serve-{name}", str(port)]
    if args.server_cpu is not None:
        command = ["taskset", "-c", args.server_cpu, *command]
    return command, root, ready, env


async def launch(
    name: str, artifacts: dict[str, Path], args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    port = free_port()
    command, root, ready, env = server_command(name, port, args, artifacts, tmp)
    started = time.perf_counter()
    process = start(command, port, root, ready, env)
    startup = time.perf_counter() - started
    idle = tree_rss(process.pid) / 2**20
    loads = await load_models(name, port, process.pid, artifacts)
    unload = await unload_copies(name, port, artifacts)
    return {
        "name": name,
        "process": process,
        "port": port,
        "startup": startup,
        "idle": idle,
        "loads": loads,
        "unload": unload,
        "repeats": [],
        "rates": {},
    }


async def measure_rates(
    servers: list[dict[str, Any]], artifacts: dict[str, Path], args: argparse.Namespace
) -> None:
    """Every server in turn, in short slices, rotating the order each round: a neighbour's burst
    on a shared machine then lands on all of them instead of on whichever ran at that moment."""
    rates: dict[str, dict[tuple[str, int], tuple[float, ...]]] = {s["name"]: {} for s in servers}
    for family in artifacts:
        for concurrency in args.concurrency:
            slices: dict[str, list[tuple[float, list[float]]]] = {s["name"]: [] for s in servers}
            for round_ in range(args.rounds):
                for server in servers[round_ % len(servers) :] + servers[: round_ % len(servers)]:
                    path, body = invoke_request(server["name"], family, f"{family}-0")
                    slices[server["name"]].append(
                        await drive(
                            server["port"], path, body, concurrency, args.seconds / args.rounds
                        )
                    )
            for server in servers:
                rates[server["name"]][(family, concurrency)] = summarise(slices[server["name"]])
    for server in servers:
        server["repeats"].append(rates[server["name"]])
        # Each figure: the median over the repeats so far (of rates, p50s, p99s and worsts).
        server["rates"] = {
            key: tuple(
                statistics.median(repeat[key][k] for repeat in server["repeats"]) for k in range(4)
            )
            for key in server["repeats"][0]
        }


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
    print(
        f"\none-row JSON invocations: requests/s, p50 / p99 / worst latency (ms); median of "
        f"{len(results[0]['repeats'])} repeat(s)"
    )
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
    summary(results, args)


def summary(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Issue 16's figures, ours beside the floor and MLServer, then each goal and its verdict."""
    by_name = {r["name"]: r for r in results}
    if "ours" not in by_name:
        return
    shown = [by_name[n] for n in ("ours", "floor", "mlserver") if n in by_name]
    conc = set(args.concurrency)
    figures: list[tuple[str, int, int, str]] = []  # (label, concurrency, stat index, format)
    for c, k, label in (
        (1, 0, "req/s conc 1"),
        (16, 0, "req/s conc 16"),
        (64, 2, "p99 ms conc 64"),
    ):
        if c in conc:
            figures.append((label, c, k, ".0f" if k == 0 else ".2f"))
    if 1 in conc:
        figures.append((f"worst ms, {args.seconds:g} s sequential", 1, 3, ".2f"))
    print("\nissue 16 figures (median of repeats)")
    print(f"  {'figure':<28}{'model':<21}" + "".join(f"{r['name']:>12}" for r in shown))
    for label, c, k, fmt in figures:
        for family in MODELS:
            cells = "".join(f"{r['rates'][(family, c)][k]:>12{fmt}}" for r in shown)
            print(f"  {label:<28}{family:<21}{cells}")
    print(
        f"  {'unload median ms':<28}{'(all)':<21}" + "".join(f"{r['unload']:>12.2f}" for r in shown)
    )

    ours = by_name["ours"]
    goals: list[tuple[str, str, float, str, bool]] = []  # (goal, model, value, unit, met)

    def ratio(goal: str, family: str, c: int, peer: str, target: float) -> None:
        if peer in by_name and c in conc:
            value = ours["rates"][(family, c)][0] / by_name[peer]["rates"][(family, c)][0]
            goals.append((goal, family, value, "x", value >= target))

    for family in MODELS:
        ratio("conc 1 >= 1.2x MLServer", family, 1, "mlserver", 1.2)
    for family in MODELS:
        ratio("conc 1 >= 0.8x floor", family, 1, "floor", 0.8)
    ratio("conc 16 >= 3x MLServer", "lightgbm", 16, "mlserver", 3.0)
    for family in NON_RF:
        if 1 in conc:
            value = ours["rates"][(family, 1)][3]
            goals.append(("worst sequential <= 5 ms", family, value, " ms", value <= 5.0))
    for family in NON_RF:
        if 64 in conc:
            value = ours["rates"][(family, 64)][2]
            goals.append(("p99 conc 64 <= 15 ms", family, value, " ms", value <= 15.0))
    goals.append(("unload median <= 5 ms", "(all)", ours["unload"], " ms", ours["unload"] <= 5.0))
    print("\nissue 16 goals (ours)")
    for goal, family, value, unit, met in goals:
        print(f"  {goal:<28}{family:<21}{value:>10.2f}{unit:<4}{'PASS' if met else 'FAIL':>6}")
    passed = sum(1 for *_, met in goals if met)
    print(f"  {passed} of {len(goals)} goals met")


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
    row = orjson.dumps([ROW])
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/models/m/invoke",
        "raw_path": b"/models/m/invoke",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(row)),
        ],
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
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        # One at a time, so a start-up or a load never overlaps another server's measurement.
        results = []
        try:
            for name in args.servers:
                try:
                    results.append(await launch(name, artifacts, args, Path(tmp)))
                except SetupError as error:
                    print(f"MLServer left out: its environment could not be set up: {error}")
            # The client's heap (training imported scikit-learn & co.) is frozen and its
            # collector paused while it measures: its pauses are not the servers' latency.
            gc.collect()
            gc.freeze()
            gc.disable()
            try:
                for repeat in range(args.repeats):
                    await measure_rates(results, artifacts, args)
                    print(f"repeat {repeat + 1} of {args.repeats} done", flush=True)
            finally:
                gc.enable()
        finally:
            for result in results:
                stop(result["process"])
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
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
        "--repeats", type=int, default=3, help="whole measurements; figures are their medians"
    )
    parser.add_argument(
        "--servers",
        type=lambda s: s.split(","),
        default=["ours", "floor", "mlserver", "baseline"],
        help="any of ours, floor, mlserver, baseline, before (needs --before)",
    )
    parser.add_argument(
        "--setup-only",
        action="store_true",
        help="create or update the MLServer environment, then stop",
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
    if arguments.setup_only:
        print(f"MLServer environment ready: {ensure_environment()}")
    elif arguments.gc_probe:
        gc_probe(arguments.gc_probe[0], Path(arguments.gc_probe[1]), arguments.seconds)
    elif arguments.serve_baseline:
        serve_baseline(arguments.serve_baseline)
    elif arguments.serve_floor:
        serve_floor(arguments.serve_floor)
    else:
        if "before" in arguments.servers and arguments.before is None:
            parser.error("--servers before needs --before DIR")
        asyncio.run(main(arguments))
