"""The drift job end to end on the local runtime: a deployed model, its inference log, the CLI.

A real breast-cancer artifact is deployed to dev with the deploy logic; the inference log holds
records as the invoker writes them (payloads in the invoker's formats, the routed target model).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from click.testing import CliRunner
from moto import mock_aws

from local.commands.endpoint import endpoint as endpoint_cli
from modeldeploy import drift, drift_job
from modeldeploy.inference_log import PURPOSE_SMOKE, PURPOSE_TRAFFIC, InferenceRecord
from modeldeploy.inference_log_sqlite import SQLiteSink, local_log_path, read_local
from tests.deploy_support import PROJECT, artifacts, local_backend, offline_aws
from tests.serving_support import breast_cancer_frame

FEATURES = [c for c in breast_cancer_frame().columns if c != "target"]


def records(
    frame: pd.DataFrame, target_model: str, batch: int = 25, purpose: str = PURPOSE_TRAFFIC
) -> list[InferenceRecord]:
    """The frame's rows as invocations of `batch` rows, alternating JSON lists and CSV."""
    out = []
    now = time.time()
    for i, start in enumerate(range(0, len(frame), batch)):
        rows = frame[FEATURES].iloc[start : start + batch]
        if i % 2:
            content_type, inputs = "text/csv", rows.to_csv(header=False, index=False)
        else:
            content_type, inputs = "application/json", json.dumps(rows.to_numpy().tolist())
        out.append(
            InferenceRecord(
                request_id=uuid.uuid4().hex,
                time=now - 60 + i * 0.01,
                stage="dev",
                dataset="breast-cancer",
                status=200,
                latency_ms=5.0,
                content_type=content_type,
                inputs=inputs,
                outputs="[]",
                target_model=target_model,
                model_package_version=1,
                purpose=purpose,
            )
        )
    return out


@pytest.fixture
def deployed(tmp_path: Path) -> tuple[Path, str]:
    home = tmp_path / "home"
    backend = local_backend(home)
    backend.register("breast-cancer", artifacts()["cancer-0"])
    report = backend.deployer.deploy("dev", ["breast-cancer"])
    report.raise_for_failures()
    return home, backend.deployer.read_table("dev").routes["breast-cancer"].target_model


def run_cli(home: Path, output: Path, *extra: str) -> Any:
    return CliRunner().invoke(
        endpoint_cli,
        [
            "drift", "dev", "-d", "breast-cancer", "--home", str(home),
            "--project-name", PROJECT, "--output-dir", str(output), *extra,
        ],
    )  # fmt: skip


def test_the_cli_reports_no_drift_for_inputs_like_the_training_data(deployed, tmp_path) -> None:
    home, target = deployed
    sample = breast_cancer_frame().sample(n=400, replace=True, random_state=0)
    SQLiteSink(local_log_path(home)).write(records(sample, target))
    result = run_cli(home, tmp_path / "drift", "--fail-on-drift")
    assert result.exit_code == 0, result.output
    assert " ok " in result.output and "rows 400" in result.output
    report = json.loads((tmp_path / "drift" / "dev" / "breast-cancer" / "drift.json").read_text())
    assert report["status"] == "ok" and report["rows"] == 400
    assert report["target_model"] == target and report["requests"] == 16
    assert (tmp_path / "drift" / "dev" / "breast-cancer" / "psi.png").is_file()


def test_the_cli_reports_a_shifted_feature_and_can_fail_on_it(deployed, tmp_path) -> None:
    home, target = deployed
    frame = breast_cancer_frame()
    sample = frame.sample(n=400, replace=True, random_state=1).copy()
    sample["worst area"] *= 1.6
    sink = SQLiteSink(local_log_path(home))
    sink.write(records(sample, target))
    # Inputs another model answered (before a redeploy) are not this model's drift.
    sink.write(
        records(frame[FEATURES].sample(n=400, random_state=2) * 0 + 1, "breast-cancer/9-old.tar.gz")
    )

    result = run_cli(home, tmp_path / "drift", "--fail-on-drift")
    assert result.exit_code == 1 and "drift in breast-cancer" in result.output
    directory = tmp_path / "drift" / "dev" / "breast-cancer"
    report = json.loads((directory / "drift.json").read_text())
    assert report["drifted_features"] == ["worst area"] and report["rows"] == 400
    assert (directory / "feature-worst_area.png").is_file()
    assert run_cli(home, tmp_path / "again").exit_code == 0  # reported, not failed


def test_smoke_test_rows_are_left_out_of_drift(deployed, tmp_path) -> None:
    home, target = deployed
    frame = breast_cancer_frame()
    sink = SQLiteSink(local_log_path(home))
    sink.write(records(frame.sample(n=400, replace=True, random_state=0), target))
    shifted = frame.sample(n=400, replace=True, random_state=5).copy()
    shifted["worst area"] *= 3
    sink.write(records(shifted, target, purpose=PURPOSE_SMOKE))

    result = run_cli(home, tmp_path / "drift", "--fail-on-drift")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "drift" / "dev" / "breast-cancer" / "drift.json").read_text())
    assert report["status"] == "ok" and report["rows"] == 400

    # Counted, the same rows are drift: the smoke marker is all that keeps them out.
    deployer = local_backend(home).deployer
    path = local_log_path(home)
    [counted] = drift_job.run(
        deployer.storage,
        deployer.read_table("dev"),
        lambda dataset, since, until: read_local(
            path, "dev", dataset, since, until, include_smoke=True
        ),
        ["breast-cancer"],
        0,
        None,
        tmp_path / "counted",
        drift.Thresholds(),
    )
    assert counted.report.status == "drift" and counted.report.rows == 800
    assert "worst area" in counted.report.drifted


def test_an_empty_log_is_insufficient_not_ok(deployed, tmp_path) -> None:
    home, _ = deployed
    result = run_cli(home, tmp_path / "drift")
    assert result.exit_code == 0 and "insufficient" in result.output


def test_a_dataset_without_a_live_model_is_named(deployed, tmp_path) -> None:
    home, _ = deployed
    result = CliRunner().invoke(
        endpoint_cli,
        ["drift", "dev", "-d", "iris", "--home", str(home), "--project-name", PROJECT],
    )
    assert result.exit_code == 1 and "no live model for iris" in result.output


def test_a_stage_with_nothing_routed_has_nothing_to_check(tmp_path) -> None:
    """The scheduled job runs before the first deploy too: that is not a failure."""
    result = CliRunner().invoke(
        endpoint_cli,
        ["drift", "prod", "--home", str(tmp_path / "home"), "--project-name", PROJECT],
    )
    assert result.exit_code == 0, result.output
    assert "prod: routes no dataset, nothing to check for drift" in result.output


def test_the_cli_default_minimum_is_the_drift_cores() -> None:
    option = next(p for p in endpoint_cli.commands["drift"].params if p.name == "min_rows")
    assert option.default == drift.MIN_ROWS


def test_metrics_are_published_per_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    offline_aws(monkeypatch)
    quiet = drift.DriftReport(
        "breast-cancer",
        [drift.numeric_drift("x", {"bin_edges": [], "bin_shares": []}, [], drift.Thresholds())],
        rows=0,
    )
    assert quiet.status == "insufficient"
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        drifted = drift.DriftReport(
            "iris",
            [
                drift.FeatureDrift(
                    "a", "numeric", "drift", 500, 0.4, 0.3, 1e-9, [], [], [], 0.0, 0.0
                )
            ],
            rows=500,
        )
        drift_job.publish_metrics(cloudwatch, "dev", [quiet, drifted])
        metrics = cloudwatch.list_metrics(Namespace=drift_job.METRIC_NAMESPACE)["Metrics"]
        names = {
            (m["MetricName"], {d["Name"]: d["Value"] for d in m["Dimensions"]}["Dataset"])
            for m in metrics
        }
    # A quiet dataset publishes only its row count: its drift alarm sees missing data.
    assert names == {
        ("LoggedRows", "breast-cancer"),
        ("LoggedRows", "iris"),
        ("MaxPSI", "iris"),
        ("DriftedFeatures", "iris"),
        ("WarnedFeatures", "iris"),
    }


def test_on_aws_the_cli_reads_dynamodb_and_publishes_metrics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from modeldeploy import naming
    from modeldeploy.inference_log_dynamodb import DynamoDBSink
    from tests.deploy_support import aws_backend
    from tests.test_inference_log import dynamodb_table

    offline_aws(monkeypatch)
    with aws_backend() as backend:
        backend.register("breast-cancer", artifacts()["cancer-0"])
        backend.deployer.deploy("dev", ["breast-cancer"]).raise_for_failures()
        target = backend.deployer.read_table("dev").routes["breast-cancer"].target_model
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        table = dynamodb_table(dynamodb, naming.inference_log_table(PROJECT, "dev"))
        sample = breast_cancer_frame().sample(n=300, replace=True, random_state=4).copy()
        sample["mean smoothness"] += 2 * sample["mean smoothness"].std()
        logged = records(sample, target)
        for start in range(0, len(logged), 25):
            DynamoDBSink(table, dynamodb).write(logged[start : start + 25])

        result = CliRunner().invoke(
            endpoint_cli,
            [
                "drift", "dev", "--aws", "--bucket", backend.bucket, "--project-name", PROJECT,
                "--output-dir", str(tmp_path), "--publish-metrics", "--upload-reports",
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "drift" in result.output and "mean smoothness" in result.output
        # The reports, in the stage's drift folder of the project bucket, under the run's time.
        uploaded = [
            key.removeprefix(f"{backend.bucket}/dev/{naming.DRIFT_FOLDER}/")
            for key in backend.objects()
            if key.startswith(f"{backend.bucket}/dev/{naming.DRIFT_FOLDER}/")
        ]
        runs = {key.split("/")[0] for key in uploaded}
        assert len(runs) == 1 and re.fullmatch(r"\d{8}T\d{6}Z", runs.pop())
        assert {key.split("/", 1)[1] for key in uploaded} >= {
            f"breast-cancer/{drift_job.REPORT_FILE}",
            "breast-cancer/psi.png",
        }
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        drifted = cloudwatch.get_metric_statistics(
            Namespace=drift_job.METRIC_NAMESPACE,
            MetricName="DriftedFeatures",
            Dimensions=[
                {"Name": "Stage", "Value": "dev"},
                {"Name": "Dataset", "Value": "breast-cancer"},
            ],
            StartTime=time.time() - 600,
            EndTime=time.time() + 600,
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        assert [point["Maximum"] for point in drifted] == [1.0]


def test_csv_with_a_header_row_counts_rows_not_headers(deployed, tmp_path) -> None:
    """150 rows sent as CSV with a header (as a caller pastes a file) are 150 rows, with no
    phantom missing value per feature; a reordered header still lines the columns up."""
    home, target = deployed
    sample = breast_cancer_frame().sample(n=150, replace=True, random_state=0)
    logged = records(sample, target)
    for i, record in enumerate(logged):
        rows = sample[FEATURES].iloc[i * 25 : (i + 1) * 25]
        if i == 1:
            rows = rows[list(reversed(FEATURES))]
        logged[i] = replace(record, content_type="text/csv", inputs=rows.to_csv(index=False))
    SQLiteSink(local_log_path(home)).write(logged)
    result = run_cli(home, tmp_path / "drift", "--min-rows", "100")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "drift" / "dev" / "breast-cancer" / "drift.json").read_text())
    assert report["rows"] == 150 and report["requests"] == 6
    assert all(f["rows"] == 150 and f["live_missing_share"] == 0 for f in report["features"])
