"""Serving pieces in-process: micro-batching, settings, memory budget, model loading and release."""

from __future__ import annotations

import asyncio
import gc
import shutil
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from container.errors import InputError
from container.serving import heap, memory
from container.serving.app import WorkerApp
from container.serving.batching import INLINE_ROWS, MicroBatcher
from container.serving.config import (
    ServerConfig,
    config_from_json,
    config_to_json,
    parse_config,
)
from container.serving.model import load_served_model
from tests.serving_support import shared_artifacts


class CountingModel:
    """predict_proba that records each call's row count, and fails on a negative first value."""

    def __init__(self, pause: threading.Event | None = None):
        self.calls: list[int] = []
        self.pause = pause

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        if self.pause is not None:
            self.pause.wait(5)
        self.calls.append(len(matrix))
        if (matrix[:, 0] < 0).any():
            raise ValueError("negative input")
        return np.column_stack([matrix[:, 0], -matrix[:, 0]])


def rows(*values: float) -> np.ndarray:
    return np.array([[v] for v in values], dtype=np.float64)


def run(coroutine_factory):
    async def main():
        with ThreadPoolExecutor(1) as executor:
            return await coroutine_factory(executor)

    return asyncio.run(main())


def test_concurrent_requests_share_one_predict_call() -> None:
    model = CountingModel()

    async def scenario(executor: ThreadPoolExecutor) -> list[np.ndarray]:
        batcher = MicroBatcher(model, executor, max_rows=1000, max_delay=0.0)
        return await asyncio.gather(*(batcher.predict(rows(i)) for i in range(16)))

    results = run(scenario)
    assert model.calls == [16]
    assert [r.tolist() for r in results] == [[[i, -i]] for i in range(16)]


def test_max_rows_splits_batches() -> None:
    model = CountingModel()

    async def scenario(executor: ThreadPoolExecutor) -> None:
        batcher = MicroBatcher(model, executor, max_rows=4, max_delay=0.0)
        await asyncio.gather(*(batcher.predict(rows(i)) for i in range(10)))

    run(scenario)
    assert model.calls == [4, 4, 2]


def test_requests_arriving_during_a_large_predict_form_the_next_batch() -> None:
    pause = threading.Event()
    model = CountingModel(pause)

    async def scenario(executor: ThreadPoolExecutor) -> None:
        batcher = MicroBatcher(model, executor, max_rows=10_000, max_delay=0.0)
        big = asyncio.ensure_future(batcher.predict(rows(*range(INLINE_ROWS + 1))))
        await asyncio.sleep(0.05)  # the large batch is now predicting on the thread
        small = [asyncio.ensure_future(batcher.predict(rows(i))) for i in range(5)]
        await asyncio.sleep(0.05)
        assert model.calls == [] and not big.done()  # the loop stayed free meanwhile
        pause.set()
        await asyncio.gather(big, *small)

    run(scenario)
    assert model.calls == [INLINE_ROWS + 1, 5]


def test_bounded_delay_waits_for_company_then_flushes() -> None:
    model = CountingModel()

    async def scenario(executor: ThreadPoolExecutor) -> None:
        batcher = MicroBatcher(model, executor, max_rows=1000, max_delay=0.05)
        first = asyncio.ensure_future(batcher.predict(rows(1)))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(batcher.predict(rows(2)))
        await asyncio.wait_for(asyncio.gather(first, second), 2)

    run(scenario)
    assert model.calls == [2]


def test_a_failing_request_does_not_fail_its_batch() -> None:
    model = CountingModel()

    async def scenario(executor: ThreadPoolExecutor) -> list[object]:
        batcher = MicroBatcher(model, executor, max_rows=1000, max_delay=0.0)
        return await asyncio.gather(
            batcher.predict(rows(1)),
            batcher.predict(rows(-1)),
            batcher.predict(rows(2)),
            return_exceptions=True,
        )

    good, bad, other = run(scenario)
    assert good.tolist() == [[1, -1]] and other.tolist() == [[2, -2]]
    assert isinstance(bad, ValueError)


def test_settings_come_from_flags_then_environment() -> None:
    env = {
        "SAGEMAKER_BIND_TO_PORT": "9000",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
        "MME_MEMORY_BUDGET_MB": "512",
        "SAGEMAKER_MULTI_MODEL": "true",
        "SM_ML_ROOT": "/nonexistent",
    }
    config = parse_config([], env)
    assert (config.port, config.workers, config.memory_budget_bytes) == (9000, 3, 512 * 2**20)
    assert config.multi_model and config.model_dir is None
    assert config.max_request_bytes == 6 * 1024 * 1024
    config = parse_config(["--port", "8081", "--batch-max-delay-ms", "2"], env)
    assert config.port == 8081 and config.batch_max_delay_s == pytest.approx(0.002)
    assert config_from_json(config_to_json(config)) == config


def test_single_model_directory_is_found_unless_multi_model(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "signature.json").write_text("{}")
    assert parse_config([], {"SM_ML_ROOT": str(tmp_path)}).model_dir == tmp_path / "model"
    multi = {"SM_ML_ROOT": str(tmp_path), "SAGEMAKER_MULTI_MODEL": "true"}
    assert parse_config([], multi).model_dir is None


def test_budget_refuses_what_does_not_fit() -> None:
    pid = [__import__("os").getpid()]
    used = memory.process_rss(pid[0])
    assert used > 0
    assert memory.Budget(used + 10 * 2**20).refusal(pid, 1 * 2**20) is None
    refusal = memory.Budget(used + 10 * 2**20).refusal(pid, 20 * 2**20)
    assert refusal is not None and "memory budget" in refusal
    assert memory.Budget(None).refusal(pid, 1 << 50) is not None  # beyond the machine


def test_unloading_leaves_no_reference_to_the_model() -> None:
    model = load_served_model("m", "u", shared_artifacts()["iris"])
    estimator = weakref.ref(model.estimator)
    batcher = MicroBatcher(model.predict_proba, ThreadPoolExecutor(1), 10, 0.0)
    asyncio.run(batcher.predict(model.decoder.from_rows([[5.0, 3.0, 1.5, 0.2]])))
    del model, batcher
    gc.collect()
    assert estimator() is None


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda d: (d / "model.joblib").write_bytes(b"x" + (d / "model.joblib").read_bytes()),
            "checksum does not match",
        ),
        (lambda d: (d / "signature.json").unlink(), "no signature.json"),
        (
            lambda d: (d / "signature.json").write_text(
                (d / "signature.json")
                .read_text()
                .replace('"scikit-learn": "', '"scikit-learn": "0.')
            ),
            "library versions differ",
        ),
    ],
)
def test_a_damaged_artifact_is_refused_before_serving(tmp_path: Path, damage, message: str) -> None:
    directory = tmp_path / "artifact"
    shutil.copytree(shared_artifacts()["cancer"], directory)
    damage(directory)
    with pytest.raises(InputError, match=message):
        load_served_model("m", str(directory), directory)


def _worker_holding(name: str, artifact: Path) -> tuple[WorkerApp, weakref.ref]:
    app = WorkerApp(ServerConfig(), None)
    model = load_served_model(name, "u", artifact)
    app.models[name], app.batchers[name] = model, app._batcher(model)
    return app, weakref.ref(model.estimator)


def test_an_unload_frees_the_model_at_once_without_a_collection() -> None:
    app, released = _worker_holding("m", shared_artifacts()["iris"])

    async def unload() -> None:
        gc.disable()
        try:
            app._apply_unload("m")
            assert released() is None
        finally:
            gc.enable()

    asyncio.run(unload())


def test_a_model_a_cycle_keeps_alive_is_freed_after_its_unload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(heap, "FORGET_AFTER_SECONDS", 0.01)
    app, released = _worker_holding("m", shared_artifacts()["iris"])
    estimator = released()
    estimator.itself = estimator  # a cycle, as some future model's internals might hold
    del estimator

    async def unload() -> None:
        app._apply_unload("m")
        assert released() is not None  # frozen with the heap: no collection reaches it
        await asyncio.sleep(0.2)
        assert released() is None

    gc.freeze()  # as the worker's heap is, after start-up and each load
    try:
        asyncio.run(unload())
    finally:
        gc.unfreeze()
