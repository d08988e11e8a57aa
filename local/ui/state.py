"""What the local web view shows, read from the local state through the runtime's own modules.

No web code here: each function takes the `LocalHome` (and the project) and returns plain data
for a template. Anything the pages serve as a file (a plot, a log) is looked up here among the
files the state names, never built from a path in the request, so a URL cannot reach outside
the state directory.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from container.errors import InputError
from modelbuild import naming as build_naming
from modeldeploy import naming
from modeldeploy.routing import RoutingTable, RoutingTableError

if TYPE_CHECKING:
    from local.executions import ExecutionRecord
    from local.home import LocalHome
    from local.registry import ModelPackage, StateChangeEvent
    from local.report_cli import ReportView

# The drift report file `mme endpoint drift` writes per stage and dataset (drift_job.REPORT_FILE;
# not imported: modeldeploy.drift_job pulls in numpy for a file name).
DRIFT_REPORT_FILE = "drift.json"
# The source name of reports in `mme endpoint drift`'s --output-dir (uploaded runs use their id).
LOCAL_DRIFT_SOURCE = "local"
_VERSION = re.compile(r"[vV]?([1-9][0-9]*)")


class NotFound(InputError):
    """What the request names does not exist (a dataset, version, execution, file)."""


# ---------------------------------------------------------------------------- executions


def execution(home: LocalHome, execution_id: str) -> ExecutionRecord:
    try:
        return home.executions.load(execution_id)
    except InputError as error:
        raise NotFound(error.problem) from None


def log_file(home: LocalHome, record: ExecutionRecord, log: str) -> Path:
    """One of the execution's job logs, by the relative name its step record lists."""
    listed = {name for step in record.steps for name in step.logs}
    directory = home.executions.directory(record.id).resolve()
    path = (directory / log).resolve()
    if log not in listed or not path.is_relative_to(directory) or not path.is_file():
        raise NotFound(f"execution {record.id} has no log '{log}'")
    return path


def has_trials(record: ExecutionRecord) -> bool:
    tune = record.step(build_naming.Steps.TUNE)
    return tune is not None and bool(tune.properties.get("TrainingJobSummaries"))


def leaderboard(home: LocalHome, record: ExecutionRecord) -> Any:
    """The execution's tuning leaderboard (`mme trials`), best first."""
    from local.trials_cli import leaderboard as board

    return board(home, record)


# ---------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class VersionRow:
    package: ModelPackage
    target: str  # what the URLs and `mme approve` call it: the dataset, or a foreign group
    algorithm: str
    holdout: str
    live: list[str]  # "dev", "prod (canary)", ...


@dataclass(frozen=True)
class GroupView:
    name: str
    target: str
    versions: list[VersionRow]


def target_of(project: str, group: str) -> str:
    return naming.dataset_of_group(project, group) or group


def parse_version(text: str) -> int:
    """`3` or `v3` (the form the tables print)."""
    match = _VERSION.fullmatch(text.strip())
    if not match:
        raise InputError(f"'{text}' is not a model version (a number such as 3 or v3)")
    return int(match[1])


def _report_uri(package: ModelPackage) -> str | None:
    uri = package.model_metrics.get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
    return uri if isinstance(uri, str) else None


def holdout(home: LocalHome, package: ModelPackage) -> str:
    """The registration metric on the holdout split, as `mme models` shows it."""
    from local.runs import read_json

    uri = _report_uri(package)
    report = read_json(home, uri) if uri else {}
    metric = report.get("register_metric", {})
    return f"{metric['name']} {metric['value']:.4f}" if "value" in metric else "-"


def live_stages(tables: list[StageTable]) -> dict[str, list[str]]:
    """Package ARN -> where it serves: `dev`, `prod (canary)`, ..."""
    live: dict[str, list[str]] = {}
    for table in tables:
        for route in table.table.routes.values() if table.table else ():
            live.setdefault(route.model_package_arn, []).append(table.stage)
            if route.canary is not None:
                live.setdefault(route.canary.model_package_arn, []).append(
                    f"{table.stage} (canary)"
                )
    return live


def version_row(
    home: LocalHome, project: str, package: ModelPackage, live: dict[str, list[str]]
) -> VersionRow:
    return VersionRow(
        package=package,
        target=target_of(project, package.group_name),
        algorithm=package.customer_metadata.get("algorithm", "-"),
        holdout=holdout(home, package),
        live=live.get(package.arn, []),
    )


def registry(home: LocalHome, project: str) -> list[GroupView]:
    """Every group with its versions, newest first."""
    live = live_stages(routing_tables(home, project))
    by_group: dict[str, list[VersionRow]] = {name: [] for name in home.registry.list_groups()}
    for package in home.registry.list_packages():
        by_group.setdefault(package.group_name, []).append(
            version_row(home, project, package, live)
        )
    return [GroupView(name, target_of(project, name), rows) for name, rows in by_group.items()]


def package(home: LocalHome, project: str, target: str, version_text: str) -> ModelPackage:
    """TARGET's VERSION: an unknown dataset or version is NotFound (naming it), a malformed
    version an InputError."""
    from local.approval import group_of

    version = parse_version(version_text)
    try:
        group = group_of(home, project, target)
    except InputError as error:
        raise NotFound(error.problem) from None
    found = {p.version: p for p in home.registry.list_packages(group)}
    if version not in found:
        raise NotFound(f"model package group '{group}' has no version {version}")
    return found[version]


@dataclass(frozen=True)
class VersionPage:
    row: VersionRow
    view: ReportView | None
    report_error: str | None
    events: list[StateChangeEvent]


def version_page(home: LocalHome, project: str, target: str, version_text: str) -> VersionPage:
    from local.report_cli import describe

    found = package(home, project, target, version_text)
    live = live_stages(routing_tables(home, project))
    view, error = None, None
    try:
        view = describe(home, project, found.group_name, str(found.version))
    except InputError as problem:
        error = problem.describe()
    events = [e for e in home.registry.events() if e.detail.get("ModelPackageArn") == found.arn]
    return VersionPage(version_row(home, project, found, live), view, error, events)


def headline(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) of the evaluation's headline metrics, as `mme report` lists them."""
    from local.report_cli import HEADLINE

    rows = []
    register = report.get("register_metric", {})
    if isinstance(register.get("value"), float):
        spread = register.get("standard_deviation")
        plus = f" ± {spread:.4f} (bootstrap)" if isinstance(spread, float) else ""
        rows.append((f"{register['name']} (registration)", f"{register['value']:.4f}{plus}"))
    flat = report.get("metrics", {})
    for name in (*HEADLINE, "log_loss"):
        if isinstance(flat.get(name), float) and name != register.get("name"):
            rows.append((name, f"{flat[name]:.4f}"))
    cv = report.get("cv") or {}
    if isinstance(cv.get("mean"), float):
        spread = f" ± {cv['std']:.4f}" if isinstance(cv.get("std"), float) else ""
        folds = f" ({cv['folds']} folds)" if "folds" in cv else ""
        rows.append((f"cv {cv.get('metric', '')}", f"{cv['mean']:.4f}{spread}{folds}"))
    if "test_rows" in report:
        rows.append(("holdout rows", str(report["test_rows"])))
    return rows


def plot_file(page: VersionPage, name: str) -> Path:
    for plot in page.view.plots if page.view else []:
        if plot.name == name:
            return plot
    raise NotFound(f"version {page.row.package.version} has no plot '{name}'")


# ---------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class StageTable:
    stage: str
    uri: str
    path: Path
    table: RoutingTable | None  # None: nothing deployed to the stage yet, or unreadable
    error: str | None = None


def routing_tables(home: LocalHome, project: str) -> list[StageTable]:
    """Each stage's live routing table in local S3 (what the stage's invoker reads)."""
    bucket = naming.local_bucket(project)
    tables = []
    for stage in naming.STAGES:
        uri = naming.routing_table_uri(bucket, stage)
        path = home.s3.path(uri)
        if not path.is_file():
            tables.append(StageTable(stage, uri, path, None))
            continue
        try:
            table = RoutingTable.from_json(path.read_bytes(), str(path))
        except (OSError, RoutingTableError) as error:
            tables.append(StageTable(stage, uri, path, None, str(error)))
            continue
        tables.append(StageTable(stage, uri, path, table))
    return tables


# ---------------------------------------------------------------------------- drift


@dataclass(frozen=True)
class DriftEntry:
    source: str  # an uploaded run's id (its UTC time), or LOCAL_DRIFT_SOURCE
    stage: str
    dataset: str
    path: Path
    report: dict[str, Any] = field(hash=False)
    error: str | None = None

    @property
    def plots(self) -> list[Path]:
        """The overview (psi.png) first, then the features that warn or drift."""
        return sorted(self.path.parent.glob("*.png"), key=lambda p: (p.name != "psi.png", p.name))


def _drift_entry(source: str, stage: str, dataset: str, path: Path) -> DriftEntry:
    try:
        report = json.loads(path.read_text())
        if not isinstance(report, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        return DriftEntry(source, stage, dataset, path, {}, f"unreadable drift report: {error}")
    return DriftEntry(source, stage, dataset, path, report)


def drift_reports(home: LocalHome, project: str, drift_dir: Path | None) -> list[DriftEntry]:
    """Every drift report on this machine, newest run first: the runs `mme endpoint drift
    --upload-reports` copied to local S3 (<bucket>/<stage>/drift/<run>/<dataset>/), then the
    latest local run in its --output-dir (<drift_dir>/<stage>/<dataset>/)."""
    bucket = naming.local_bucket(project)
    entries = []
    for stage in naming.STAGES:
        prefix = naming.s3_uri(bucket, f"{stage}/{naming.DRIFT_FOLDER}/")
        for uri in home.s3.list(prefix):
            parts = uri[len(prefix) :].split("/")
            if len(parts) == 3 and parts[2] == DRIFT_REPORT_FILE:
                entries.append(_drift_entry(parts[0], stage, parts[1], home.s3.path(uri)))
    entries.sort(key=lambda e: (e.source, e.stage, e.dataset), reverse=True)
    if drift_dir is not None:
        for stage in naming.STAGES:
            for path in sorted((drift_dir / stage).glob(f"*/{DRIFT_REPORT_FILE}")):
                entries.append(_drift_entry(LOCAL_DRIFT_SOURCE, stage, path.parent.name, path))
    return entries


def drift_report(
    home: LocalHome, project: str, drift_dir: Path | None, source: str, stage: str, dataset: str
) -> DriftEntry:
    for entry in drift_reports(home, project, drift_dir):
        if (entry.source, entry.stage, entry.dataset) == (source, stage, dataset):
            return entry
    raise NotFound(f"no drift report for {dataset} in {stage} (run {source})")


def drift_plot(entry: DriftEntry, name: str) -> Path:
    for plot in entry.plots:
        if plot.name == name:
            return plot
    raise NotFound(f"the drift report of {entry.dataset} has no plot '{name}'")
