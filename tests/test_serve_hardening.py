"""The serving container under faults (issue 13, items 4, 5 and 8): a broken archive or a bug in
a load answers at once instead of holding the request, no answer names a file on the server,
`serve --help` works, the supervisor stays free of pandas, and a local run binds loopback.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from container.artifact import pack
from container.serving.config import DEFAULT_BUDGET_FRACTION, parse_config
from container.serving.control import Channel, RemoteError
from tests.artifact_faults import corrupt_mid_stream, not_a_model
from tests.serving_support import REPO, Server, running_server, shared_artifacts


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("hardening"), "--workers", "1") as live:
        yield live


def load(server: Server, name: str, url: Path) -> tuple[int, Any, float]:
    started = time.monotonic()
    status, body = server.json("POST", "/models", {"model_name": name, "url": str(url)})
    return status, body, time.monotonic() - started


@pytest.mark.integration
def test_a_gzip_stream_corrupt_mid_way_is_refused_at_once(server: Server, tmp_path: Path) -> None:
    packed = pack(shared_artifacts()["iris"], tmp_path / "good.tar.gz")
    corrupt = corrupt_mid_stream(packed, tmp_path / "model.tar.gz")

    status, body, seconds = load(server, "corrupt", corrupt)

    assert status == 422 and "not a readable tar.gz" in body["message"], body
    assert seconds < 20  # not the 330 s a lost reply waits for
    assert "cannot load model corrupt" in body["message"]
    assert str(tmp_path) not in body["message"] and "mme-serve-" not in body["message"]
    assert server.json("GET", "/models/corrupt")[0] == 404
    assert server.alive()


@pytest.mark.integration
def test_a_model_that_fails_to_load_is_named_without_server_paths(
    server: Server, tmp_path: Path
) -> None:
    packed = pack(shared_artifacts()["iris"], tmp_path / "good.tar.gz")
    broken = not_a_model(packed, tmp_path / "model.tar.gz")

    status, body, _ = load(server, "broken", broken)

    assert status == 422 and "cannot load model broken: " in body["message"]
    assert "no predict_proba" in body["message"]
    # Unpacked into the server's scratch directory, whose path the caller must not see.
    assert "/tmp" not in body["message"] and "signature.json" not in body["message"]


def test_a_handler_that_raises_still_answers_its_caller() -> None:
    """Any unexpected exception in a load or unload: the caller gets an error at once."""

    async def scenario() -> tuple[BaseException | None, float]:
        ours, theirs = socket.socketpair()
        caller, callee = await Channel.open(ours), await Channel.open(theirs)

        async def broken(message: dict[str, Any]) -> dict[str, Any]:
            raise KeyError("url")

        async def unused(message: dict[str, Any]) -> dict[str, Any]:
            raise AssertionError("the caller is never called")

        tasks = [
            asyncio.create_task(callee.serve(broken)),
            asyncio.create_task(caller.serve(unused)),
        ]
        started = time.monotonic()
        try:
            await caller.call({"op": "load"}, timeout=10)
            failure: BaseException | None = None
        except BaseException as error:  # the test looks at which
            failure = error
        elapsed = time.monotonic() - started
        for sock in (ours, theirs):
            sock.close()
        for task in tasks:
            task.cancel()
        return failure, elapsed

    failure, elapsed = asyncio.run(scenario())
    assert isinstance(failure, RemoteError) and "KeyError" in str(failure)
    assert elapsed < 5


@pytest.mark.integration
def test_serve_help_prints_every_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "container", "serve", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"{DEFAULT_BUDGET_FRACTION:.0%} of the machine" in " ".join(result.stdout.split())


@pytest.mark.integration
def test_the_supervisor_unpacks_without_pandas(tmp_path: Path) -> None:
    """The supervisor unpacks a model.tar.gz (the local endpoint hands it one) with the standard
    library: importing pandas there costs ~67 MB, which a budget sized from idle would miss."""
    packed = pack(shared_artifacts()["iris"], tmp_path / "model.tar.gz")
    script = (
        "import sys\n"
        "from container.serving.config import ServerConfig\n"
        "from container.serving.supervisor import Supervisor\n"
        "supervisor = Supervisor(ServerConfig(memory_budget_bytes=1 << 30))\n"
        f"directory, unpacked = supervisor._resolve({str(packed)!r}, 'm')\n"
        "assert unpacked and (directory / 'model.joblib').is_file()\n"
        "print(sorted(m for m in ('pandas', 'sklearn', 'joblib', 'numpy') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_local_run_binds_loopback_and_the_image_every_interface() -> None:
    assert parse_config([], {}).host == "127.0.0.1"
    dockerfile = (REPO / "container" / "Dockerfile").read_text()
    environment = dict(re.findall(r"\b(MME_\w+)=(\S+)", dockerfile))
    assert parse_config([], environment).host == "0.0.0.0"
    assert parse_config(["--host", "::1"], environment).host == "::1"


@pytest.mark.integration
def test_the_server_started_without_a_host_listens_on_loopback_only(tmp_path: Path) -> None:
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "container", "serve", "--port", str(number), "--workers", "1"],
            cwd=REPO,
            env={"PATH": "/usr/bin:/bin", "SM_ML_ROOT": str(tmp_path / "none")},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "serving on" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.2)
        assert re.search(rf"serving on 127\.0\.0\.1:{number}\b", log.read_text()), log.read_text()
    finally:
        process.terminate()
        process.wait(30)


@pytest.mark.integration
def test_no_answer_names_the_model_directory(server: Server, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("model.joblib", "signature.json"):
        (damaged / name).write_bytes((shared_artifacts()["cancer"] / name).read_bytes())
    signature = json.loads((damaged / "signature.json").read_text())
    signature["library_versions"]["scikit-learn"] = "0.1"
    (damaged / "signature.json").write_text(json.dumps(signature))

    status, body, _ = load(server, "old", damaged)

    assert status == 422 and "library versions differ" in body["message"]
    assert str(damaged) not in body["message"]
