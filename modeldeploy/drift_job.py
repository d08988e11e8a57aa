"""The drift job: for each routed dataset of a stage, its logged inputs against its live model's
training baseline, written as a report (JSON + PNG plots) and, on AWS, CloudWatch metrics.

Only inputs the live model itself answered count (`target_model` matches the route): inputs
logged before a redeploy belong to another model, trained on other data, with another baseline.
Only real traffic counts: the log's readers leave out the smoke tests' calls by default, whose
training-like rows would pull every feature toward its baseline.

Report layout: <output>/<stage>/<dataset>/drift.json, psi.png, feature-<name>.png; uploaded
(the scheduled job on AWS) to <bucket>/<stage>/drift/<run>/<dataset>/ (modeldeploy.naming).
Metrics (namespace MME/Drift, dimensions Stage and Dataset): MaxPSI, DriftedFeatures,
WarnedFeatures, LoggedRows; the project template's per-dataset drift alarm watches
DriftedFeatures in prod.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from container.errors import InputError
from modeldeploy.artifacts import verify_archive
from modeldeploy.drift import DriftError, DriftReport, Thresholds, columns_from_payloads, compare
from modeldeploy.inference_log import InferenceRecord
from modeldeploy.interfaces import Storage
from modeldeploy.routing import Route, RoutingTable

METRIC_NAMESPACE = "MME/Drift"
REPORT_FILE = "drift.json"

# (dataset, since, until) -> the dataset's answered real-traffic invocations (no smoke tests) in
# that window, in time order: `read_local` and `read_dynamodb` with their defaults.
RecordReader = Callable[[str, float, float | None], Iterable[InferenceRecord]]


@dataclass(frozen=True)
class DriftOutcome:
    report: DriftReport
    files: list[Path]


def live_signature(storage: Storage, route: Route) -> dict[str, Any]:
    """The signature inside the live artifact, checked the way deployment checks it."""
    with tempfile.TemporaryDirectory(prefix="drift-") as scratch:
        archive = Path(scratch) / "model.tar.gz"
        storage.download(route.model_data_url, archive)
        return verify_archive(archive, route.model_data_url).signature


def dataset_drift(
    storage: Storage,
    stage: str,
    dataset: str,
    route: Route,
    records: RecordReader,
    since: float,
    until: float | None,
    thresholds: Thresholds,
) -> DriftReport:
    signature = live_signature(storage, route)
    feature_names = [feature["name"] for feature in signature["schema"]["features"]]
    served = [
        (record.content_type, record.inputs)
        for record in records(dataset, since, until)
        if record.target_model == route.target_model and record.inputs is not None
    ]
    columns = columns_from_payloads(served, feature_names)
    context = {
        "stage": stage,
        "target_model": route.target_model,
        "model_package_version": route.model_package_version,
        "model_package_arn": route.model_package_arn,
        "window_start": _iso(since),
        "window_end": _iso(until) if until is not None else None,
        "requests": len(served),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        report = compare(signature, columns, thresholds, context)
    except DriftError as error:
        raise InputError(str(error), dataset=dataset) from None
    # The routed name, which metrics and alarms use, whatever the schema was trained as.
    return replace(report, dataset=dataset)


def run(
    storage: Storage,
    table: RoutingTable,
    records: RecordReader,
    datasets: list[str],
    since: float,
    until: float | None,
    output_dir: Path,
    thresholds: Thresholds,
) -> list[DriftOutcome]:
    """A report per dataset; a dataset with no live model in the stage is an InputError."""
    from modeldeploy.drift_plots import write_plots  # matplotlib only once there is work

    missing = [name for name in datasets if name not in table.routes]
    if missing:
        live = ", ".join(sorted(table.routes)) or "none"
        raise InputError(
            f"stage {table.stage} has no live model for {', '.join(missing)} "
            f"(datasets with a live model: {live})"
        )
    outcomes = []
    for dataset in datasets:
        report = dataset_drift(
            storage, table.stage, dataset, table.routes[dataset], records, since, until, thresholds
        )
        directory = output_dir / table.stage / dataset
        directory.mkdir(parents=True, exist_ok=True)
        report_path = directory / REPORT_FILE
        report_path.write_text(report.to_json() + "\n")
        outcomes.append(DriftOutcome(report, [report_path, *write_plots(report, directory)]))
    return outcomes


def run_id(epoch: float) -> str:
    """A drift run's folder name: its UTC time, sortable (20261122T060000Z)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%dT%H%M%SZ")


def upload(storage: Storage, outcome: DriftOutcome, local_root: Path, destination: str) -> None:
    """Copy one dataset's report files under the destination URI, keeping their layout."""
    for path in outcome.files:
        storage.upload(path, f"{destination}/{path.relative_to(local_root).as_posix()}")


def publish_metrics(cloudwatch: Any, stage: str, reports: Iterable[DriftReport]) -> None:
    """Per-dataset drift metrics; a dataset with too few rows publishes only its row count, so
    that an alarm on DriftedFeatures treats a quiet window as missing data, not as no drift."""
    for report in reports:
        dimensions = [
            {"Name": "Stage", "Value": stage},
            {"Name": "Dataset", "Value": report.dataset},
        ]
        data = [{"MetricName": "LoggedRows", "Value": float(report.rows), "Unit": "Count"}]
        if report.status != "insufficient":
            data += [
                {"MetricName": "MaxPSI", "Value": report.max_psi, "Unit": "None"},
                {"MetricName": "DriftedFeatures", "Value": len(report.drifted), "Unit": "Count"},
                {"MetricName": "WarnedFeatures", "Value": len(report.warned), "Unit": "Count"},
            ]
        cloudwatch.put_metric_data(
            Namespace=METRIC_NAMESPACE,
            MetricData=[{**datum, "Dimensions": dimensions} for datum in data],
        )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
