"""The same image as a single-model endpoint (/invocations), and the memory budget (507)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving_support import Server, running_server, shared_artifacts

# Every test here starts processes or servers (tests/process_guard.py).
pytestmark = pytest.mark.integration

ZERO_ROW = ",".join(["0.0"] * 30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # A 1 MB budget: the idle server alone is over it, so every load must be refused.
    with running_server(
        tmp_path_factory.mktemp("single"),
        "--workers",
        "1",
        "--memory-budget-mb",
        "1",
        "--model-dir",
        str(shared_artifacts()["cancer"]),
    ) as live:
        yield live


def test_invocations_serve_the_model_directory(server: Server) -> None:
    status, body = server.json(
        "POST", "/invocations", ZERO_ROW + "\n" + ZERO_ROW, headers={"Content-Type": "text/csv"}
    )
    assert status == 200 and len(body["predictions"]) == 2
    assert server.json("GET", "/models") == (200, {"models": []})


def test_load_beyond_the_budget_is_507_and_nothing_changes(server: Server) -> None:
    status, body = server.json(
        "POST", "/models", {"model_name": "big", "url": str(shared_artifacts()["iris"])}
    )
    assert status == 507
    assert "memory budget" in body["message"] and "1.0 MB" in body["message"]
    assert server.json("GET", "/models") == (200, {"models": []})
    assert server.request("POST", "/invocations", ZERO_ROW, {"Content-Type": "text/csv"})[0] == 200


def test_a_killed_single_worker_comes_back(server: Server) -> None:
    (victim,) = server.worker_pids()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = server.worker_pids()
        if pids and victim not in pids:
            fresh = Server(server.process, server.port, server.log)
            if fresh.alive():
                break
        time.sleep(0.2)
    fresh = Server(server.process, server.port, server.log)
    assert fresh.request("POST", "/invocations", ZERO_ROW, {"Content-Type": "text/csv"})[0] == 200


def test_a_broken_model_directory_stops_start_up_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.joblib").write_bytes(b"not a model")
    with (
        pytest.raises(RuntimeError, match="did not start") as caught,
        running_server(tmp_path, "--workers", "1", "--model-dir", str(tmp_path / "model")),
    ):
        pass
    assert "expected model.joblib and signature.json" in str(caught.value)
