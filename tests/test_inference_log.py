"""The inference log: every invocation recorded, and a store that is down or slow costs nothing.

The invoker runs against a fake SageMaker runtime (the runtime's own contract is test_invoker's
business); the stores are a real SQLite file and DynamoDB under moto, its table created as the
endpoint stack declares it.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from modeldeploy import invoker as invoker_module
from modeldeploy.build import load_template
from modeldeploy.inference_log import (
    MAX_LOGGED_INPUT_BYTES,
    PURPOSE_SMOKE,
    PURPOSE_TRAFFIC,
    BackgroundLog,
    InferenceRecord,
)
from modeldeploy.inference_log_dynamodb import DynamoDBSink, dynamodb_item, read_dynamodb
from modeldeploy.inference_log_sqlite import SQLiteSink, read_local
from modeldeploy.invoker import Invoker, request_event
from tests.deploy_support import offline_aws
from tests.test_invoker import MODEL_SHA, event, make_route, table_bytes

PREDICTION = {"label": 0, "probabilities": {"0": 0.9, "1": 0.1}}


class FakeRuntime:
    """Answers every InvokeEndpoint with one prediction per row, as the container does, except
    for the calls given a failure (in call order; None answers)."""

    def __init__(self, failures: Sequence[Exception | None] = ()) -> None:
        self.calls = 0
        self.failures = list(failures)

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        self.calls += 1
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        body = request["Body"]
        rows = (
            len(body.decode().splitlines())
            if request["ContentType"] == "text/csv"
            else len(json.loads(body))
        )
        answer = {"predictions": [PREDICTION] * rows, "classes": [0, 1], "model_version": MODEL_SHA}
        return {"Body": io.BytesIO(json.dumps(answer).encode())}


class DownSink:
    def __init__(self) -> None:
        self.attempts = 0

    def write(self, records: Sequence[InferenceRecord]) -> int:
        self.attempts += 1
        raise ConnectionError("the store is down")


class BlockedSink:
    """A store that hangs until released: the writer thread is stuck inside it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.written: list[InferenceRecord] = []

    def write(self, records: Sequence[InferenceRecord]) -> int:
        self.entered.set()
        self.release.wait()
        self.written.extend(records)
        return 0


def make_invoker(log: Any, runtime: FakeRuntime | None = None) -> Invoker:
    return Invoker(
        runtime=runtime or FakeRuntime(),
        endpoint_name="mme-dev",
        read_table=lambda: table_bytes(make_route()),
        stage="dev",
        inference_log=log,
    )


ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5]]


def test_every_invocation_is_recorded_in_the_local_store(tmp_path: Path) -> None:
    path = tmp_path / "inference.sqlite"
    log = BackgroundLog(SQLiteSink(path))
    invoker = make_invoker(log)
    started = time.time()
    ok = invoker.handle(event({"dataset": "iris", "rows": ROWS}))
    csv = invoker.handle(event({"dataset": "iris", "rows": "1,2,3,4\n"}))
    unknown = invoker.handle(event({"dataset": "nope", "rows": ROWS}))
    unreadable = invoker.handle(event("{not json"))
    assert [r["statusCode"] for r in (ok, csv, unknown, unreadable)] == [200, 200, 404, 400]
    assert log.drain(10)
    assert log.stats().recorded == 4 and log.stats().dropped == 0

    answered = list(read_local(path, "dev", "iris", since=started - 1))
    assert len(answered) == 2  # only answered calls feed drift
    first = answered[0]
    assert first.request_id and first.status == 200 and first.latency_ms > 0
    assert first.content_type == "application/json" and json.loads(first.inputs or "") == ROWS
    assert json.loads(first.outputs or "") == [PREDICTION, PREDICTION]
    assert first.target_model == make_route().target_model
    assert first.model_package_version == 3 and first.model_version == MODEL_SHA
    assert answered[1].content_type == "text/csv" and answered[1].inputs == "1,2,3,4\n"
    assert list(read_local(path, "dev", "iris", since=time.time() + 60)) == []

    import sqlite3

    with sqlite3.connect(path) as connection:
        refused = connection.execute(
            "SELECT dataset, status, error FROM inference_log WHERE status != 200 ORDER BY status"
        ).fetchall()
    assert refused[0][:2] == ("", 400) and "JSON" in refused[0][2]
    assert refused[1][:2] == ("nope", 404) and refused[1][2].startswith("NoLiveModel")


def test_the_store_down_leaves_predictions_alone_and_counts_the_loss() -> None:
    sink = DownSink()
    log = BackgroundLog(sink)
    logged, plain = make_invoker(log), make_invoker(None)
    for _ in range(30):
        got = logged.handle(event({"dataset": "iris", "rows": ROWS}))
        expected = plain.handle(event({"dataset": "iris", "rows": ROWS}))
        assert got["statusCode"] == 200 and got["body"] == expected["body"]
    assert log.drain(10)
    assert sink.attempts >= 1
    assert log.stats().dropped == 30 and log.stats().recorded == 0


def test_a_hung_store_never_holds_a_prediction_and_overflow_is_counted() -> None:
    sink = BlockedSink()
    log = BackgroundLog(sink, queue_size=5, batch_size=1)
    invoker = make_invoker(log)
    statuses: list[int] = []

    assert invoker.handle(event({"dataset": "iris", "rows": ROWS}))["statusCode"] == 200
    assert sink.entered.wait(10)  # the writer now holds that record inside the hung store

    def calls() -> None:
        for _ in range(39):
            statuses.append(invoker.handle(event({"dataset": "iris", "rows": ROWS}))["statusCode"])

    worker = threading.Thread(target=calls)
    worker.start()
    worker.join(timeout=60)
    # Every call has answered while the store is still hung: none waited for it.
    assert not worker.is_alive() and not sink.release.is_set()
    assert statuses == [200] * 39
    # One record is stuck in the store, five wait in the queue, the rest were dropped.
    assert log.stats().dropped == 40 - 1 - 5
    sink.release.set()
    assert log.drain(10)
    assert log.stats().recorded == len(sink.written) == 6


def test_the_local_store_recovers_once_it_can_be_written_again(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "inference.sqlite"
    path.parent.mkdir()
    path.mkdir()  # a directory where the database should be: it cannot be opened
    log = BackgroundLog(SQLiteSink(path))
    invoker = make_invoker(log)
    assert invoker.handle(event({"dataset": "iris", "rows": ROWS}))["statusCode"] == 200
    assert log.drain(10) and log.stats().dropped == 1
    path.rmdir()
    assert invoker.handle(event({"dataset": "iris", "rows": ROWS}))["statusCode"] == 200
    assert log.drain(10) and log.stats().recorded == 1
    assert len(list(read_local(path, "dev", "iris", since=0))) == 1


def test_inputs_too_large_for_the_store_are_left_out_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "inference.sqlite"
    log = BackgroundLog(SQLiteSink(path))
    # Over the store's limit in bytes while under the invoker's row limit: long numbers.
    big = [[1.234567890123, 2.345678901234, 3.456789012345, 4.567890123456]] * (
        MAX_LOGGED_INPUT_BYTES // 50
    )
    assert make_invoker(log).handle(event({"dataset": "iris", "rows": big}))["statusCode"] == 200
    assert log.drain(10)
    (record,) = read_local(path, "dev", "iris", since=0)
    assert record.inputs is None and "not logged" in record.error


def dynamodb_table(client: Any, name: str = "mme-dev-inference-log") -> str:
    """The inference log table with the keys and billing the endpoint stack declares."""
    declared = load_template()["Resources"]["InferenceLog"]["Properties"]
    client.create_table(
        TableName=name,
        **{key: declared[key] for key in ("KeySchema", "AttributeDefinitions", "BillingMode")},
    )
    return name


def test_dynamodb_records_every_invocation_with_a_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    offline_aws(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        table = dynamodb_table(client)
        log = BackgroundLog(DynamoDBSink(table, client, ttl_days=7))
        invoker = make_invoker(log)
        started = time.time()
        for _ in range(30):  # more than one BatchWriteItem
            assert invoker.handle(event({"dataset": "iris", "rows": ROWS}))["statusCode"] == 200
        invoker.handle(event({"dataset": "nope", "rows": ROWS}))
        assert log.drain(10) and log.stats().recorded == 31

        records = list(read_dynamodb(client, table, "iris", since=started - 1))
        assert len(records) == 30
        # Time order at the sort key's millisecond resolution.
        stamps = [int(r.time * 1000) for r in records]
        assert stamps == sorted(stamps)
        assert json.loads(records[0].inputs or "") == ROWS
        assert records[0].model_package_version == 3 and records[0].model_version == MODEL_SHA
        assert isinstance(records[0].latency_ms, float)
        item = client.scan(TableName=table, Limit=1)["Items"][0]
        expires = int(item["expires_at"]["N"])
        assert expires == pytest.approx(started + 7 * 86_400, abs=60)
        assert list(read_dynamodb(client, table, "iris", since=time.time() + 60)) == []


def model_failure(original_status: int) -> ClientError:
    """The runtime's ModelError for a container answer with that status."""
    return ClientError(
        {
            "Error": {"Code": "ModelError", "Message": "Received server error"},
            "OriginalStatusCode": original_status,
            "OriginalMessage": json.dumps({"code": original_status, "message": "it broke"}),
        },
        "InvokeEndpoint",
    )


def test_dynamodb_keeps_failed_calls_for_the_canary_and_drift_reads_without_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offline_aws(monkeypatch)
    throttled = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "InvokeEndpoint"
    )
    runtime = FakeRuntime([None, model_failure(500), model_failure(400), throttled, None])
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        table = dynamodb_table(client)
        log = BackgroundLog(DynamoDBSink(table, client))
        invoker = make_invoker(log, runtime)
        started = time.time()
        statuses = [
            invoker.handle(event({"dataset": "iris", "rows": ROWS}))["statusCode"] for _ in range(5)
        ]
        assert statuses == [200, 502, 400, 503, 200]
        assert log.drain(10) and log.stats().recorded == 5

        answered = list(read_dynamodb(client, table, "iris", since=started - 1))
        every = list(read_dynamodb(client, table, "iris", since=started - 1, include_errors=True))

    assert [r.status for r in answered] == [200, 200]
    # Calls within one millisecond share their sort key's time: compare without their order.
    assert sorted(r.status for r in every) == [200, 200, 400, 502, 503]
    failed = {r.status: r for r in every if r.status != 200}
    assert failed[502].error.startswith("EndpointError") and "status 500" in failed[502].error
    assert failed[400].error.startswith("BadRequest") and "it broke" in failed[400].error
    assert failed[503].error.startswith("EndpointBusy")
    for record in failed.values():
        # What the canary judgement needs of a failure: who was called, with what, how long.
        assert record.target_model == make_route().target_model
        assert record.model_package_version == 3 and record.model_version == ""
        assert json.loads(record.inputs or "") == ROWS and record.outputs is None
        assert isinstance(record.latency_ms, float)


Reader = Callable[..., list[InferenceRecord]]


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, Reader]]:
    """A sink and a reader of its dataset "iris" in stage dev (keyword options as the readers')."""
    if request.param == "sqlite":
        path = tmp_path / "inference.sqlite"
        yield (
            SQLiteSink(path),
            lambda **options: list(read_local(path, "dev", "iris", 0, **options)),
        )
        return
    offline_aws(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        table = dynamodb_table(client)
        yield (
            DynamoDBSink(table, client),
            lambda **options: list(read_dynamodb(client, table, "iris", 0, **options)),
        )


def test_smoke_calls_are_stored_but_read_only_when_asked(store: tuple[Any, Reader]) -> None:
    sink, read = store
    log = BackgroundLog(sink)
    invoker = make_invoker(log, FakeRuntime([None, model_failure(500)]))
    invoker.handle(request_event("iris", ROWS, purpose=PURPOSE_SMOKE))
    invoker.handle(request_event("iris", ROWS, purpose=PURPOSE_SMOKE))  # a failed one
    invoker.handle(request_event("iris", ROWS))
    assert log.drain(10) and log.stats().recorded == 3

    assert [r.purpose for r in read()] == [PURPOSE_TRAFFIC]
    assert [r.purpose for r in read(include_errors=True)] == [PURPOSE_TRAFFIC]
    assert sorted(r.purpose for r in read(include_smoke=True)) == [PURPOSE_SMOKE, PURPOSE_TRAFFIC]
    every = read(include_errors=True, include_smoke=True)
    assert sorted((r.purpose, r.status) for r in every) == [
        (PURPOSE_SMOKE, 200),
        (PURPOSE_SMOKE, 502),
        (PURPOSE_TRAFFIC, 200),
    ]


# The local store's table as the first release created it, before records had a purpose.
FIRST_SCHEMA = """
CREATE TABLE inference_log (
    request_id TEXT NOT NULL, time REAL NOT NULL, stage TEXT NOT NULL, dataset TEXT NOT NULL,
    status INTEGER NOT NULL, latency_ms REAL NOT NULL, content_type TEXT NOT NULL, inputs TEXT,
    outputs TEXT, target_model TEXT NOT NULL, model_package_version INTEGER,
    model_version TEXT NOT NULL, error TEXT NOT NULL
);
"""


def old_record(request_id: str) -> InferenceRecord:
    return InferenceRecord(request_id, time.time() - 60, "dev", "iris", 200, 1.0, inputs="[[1]]")


def test_an_older_local_store_is_read_as_traffic_and_upgraded_by_the_writer(
    tmp_path: Path,
) -> None:
    import sqlite3
    from dataclasses import asdict

    path = tmp_path / "inference.sqlite"
    old = asdict(old_record("before"))
    del old["purpose"]
    with sqlite3.connect(path) as connection:
        connection.executescript(FIRST_SCHEMA)
        connection.execute(
            f"INSERT INTO inference_log ({', '.join(old)}) VALUES ({', '.join('?' * len(old))})",
            tuple(old.values()),
        )
    connection.close()

    [before] = read_local(path, "dev", "iris", since=0)
    assert before.request_id == "before" and before.purpose == PURPOSE_TRAFFIC
    smoke = InferenceRecord("after", time.time(), "dev", "iris", 200, 1.0, purpose=PURPOSE_SMOKE)
    assert SQLiteSink(path).write([smoke]) == 0
    assert [r.request_id for r in read_local(path, "dev", "iris", since=0)] == ["before"]
    assert [
        (r.request_id, r.purpose) for r in read_local(path, "dev", "iris", 0, include_smoke=True)
    ] == [("before", PURPOSE_TRAFFIC), ("after", PURPOSE_SMOKE)]


def test_an_older_dynamodb_item_is_read_as_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    offline_aws(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        table = dynamodb_table(client)
        item = dynamodb_item(old_record("before"), ttl_days=1)
        del item["purpose"]
        client.put_item(TableName=table, Item=item)
        [record] = read_dynamodb(client, table, "iris", since=0)
    assert record.request_id == "before" and record.purpose == PURPOSE_TRAFFIC


def test_a_missing_dynamodb_table_counts_the_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    offline_aws(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        log = BackgroundLog(DynamoDBSink("no-such-table", client))
        assert (
            make_invoker(log).handle(event({"dataset": "iris", "rows": ROWS}))["statusCode"] == 200
        )
        assert log.drain(10) and log.stats().dropped == 1


def test_the_lambda_publishes_losses_as_an_embedded_metric(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STAGE", "dev")
    monkeypatch.setattr(invoker_module, "_reported_losses", 0)
    log = BackgroundLog(DownSink())
    monkeypatch.setattr(invoker_module, "_default", make_invoker(log))
    for _ in range(3):
        assert (
            invoker_module.handler(event({"dataset": "iris", "rows": ROWS}), None)["statusCode"]
            == 200
        )
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sum(m[invoker_module.LOSS_METRIC] for m in metrics) == 3
    assert metrics[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MME/Invoker"
    assert metrics[0]["Stage"] == "dev"


def test_the_local_invoker_records_into_the_homes_database(tmp_path: Path) -> None:
    import sqlite3

    from local.deploy_store import local_inference_log
    from local.endpoint import local_invoker
    from modeldeploy.inference_log_sqlite import local_log_path

    home = tmp_path / "home"
    # No routing table yet: answered 404 without reaching the (absent) endpoint, and recorded.
    invoker = local_invoker(home, "dev", "http://127.0.0.1:9")
    assert invoker.handle(event({"dataset": "iris", "rows": ROWS}))["statusCode"] == 404
    assert invoker.inference_log is local_inference_log(home)  # one writer per home
    assert local_inference_log(home).drain(10)
    with sqlite3.connect(local_log_path(home)) as connection:
        assert connection.execute(
            "SELECT stage, dataset, status FROM inference_log"
        ).fetchall() == [("dev", "iris", 404)]
