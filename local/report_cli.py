"""`mme report DATASET [VERSION]`: a registered model's evaluation, from the local registry.

Where the report, plots and explainability file are on this machine (the registry records
`s3://` URIs; local S3 keeps each object at a plain path), the headline holdout metrics, any
warning the evaluation raised, and the most important features.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from container.errors import InputError
from modelbuild import naming

if TYPE_CHECKING:
    from local.home import LocalHome
    from local.registry import ModelPackage

TOP_FEATURES = 10
# Headline metrics in the order they are printed, by their name in the report's `metrics`.
HEADLINE = ("roc_auc", "accuracy", "balanced_accuracy", "f1", "f1_macro", "precision", "recall")


@dataclass(frozen=True)
class ReportView:
    package: ModelPackage
    report_path: Path
    report: dict[str, Any]
    plots: list[Path]
    explainability_path: Path | None


def _version(text: str) -> int:
    """`3` or `v3` (the form the tables print)."""
    match = re.fullmatch(r"[vV]?([1-9][0-9]*)", text.strip())
    if not match:
        raise InputError(f"'{text}' is not a model version (a number such as 3 or v3)")
    return int(match[1])


def _group(home: LocalHome, project: str, dataset: str) -> str:
    groups = home.registry.list_groups()
    if dataset in groups:
        return dataset
    group = naming.model_package_group_name(project, dataset)
    if group not in groups:
        known = ", ".join(g.removeprefix(f"{project}-") for g in groups) or "none yet"
        raise InputError(
            f"dataset '{dataset}' has no registered model (model package group '{group}'; "
            f"datasets with models: {known})"
        )
    return group


def _local_path(home: LocalHome, package: ModelPackage, slot: str, field: str) -> Path | None:
    uri = package.model_metrics.get(slot, {}).get(field, {}).get("S3Uri")
    return home.s3.path(uri) if uri else None


def describe(home: LocalHome, project: str, dataset: str, version: str | None) -> ReportView:
    """The evaluation registered with DATASET's VERSION (default: the latest version)."""
    import json

    group = _group(home, project, dataset)
    if version is None:
        package = home.registry.list_packages(group)[0]
    else:
        package = home.registry.get(group, _version(version))
    report_path = _local_path(home, package, "ModelQuality", "Statistics")
    if report_path is None:
        raise InputError(f"{group} version {package.version} was registered without a report")
    if not report_path.is_file():
        raise InputError("the evaluation report is missing", file=report_path)
    try:
        report = json.loads(report_path.read_text())
    except ValueError as error:
        raise InputError(f"the evaluation report is not JSON: {error}", file=report_path) from None
    explainability = _local_path(home, package, "Explainability", "Report")
    return ReportView(
        package=package,
        report_path=report_path,
        report=report,
        plots=sorted(report_path.parent.glob("*.png")),
        explainability_path=explainability if explainability and explainability.is_file() else None,
    )


def _metric_lines(report: dict[str, Any]) -> list[str]:
    section = next((v for k, v in report.items() if k.endswith("_classification_metrics")), {})
    register = report.get("register_metric", {})
    lines = []
    if "value" in register:
        spread = register.get("standard_deviation")
        plus = f" ± {spread:.4f} (bootstrap)" if isinstance(spread, float) else ""
        lines.append(f"  {register['name']:<18} {register['value']:.4f}{plus}  [registration]")
    flat = report.get("metrics", {})
    for name in HEADLINE:
        if name in flat and name != register.get("name"):
            lines.append(f"  {name:<18} {flat[name]:.4f}")
    if "log_loss" in flat:
        lines.append(f"  {'log_loss':<18} {flat['log_loss']:.4f}")
    cv = report.get("cv") or {}
    if "mean" in cv:
        spread = f" ± {cv['std']:.4f}" if "std" in cv else ""
        folds = f" ({cv['folds']} folds)" if "folds" in cv else ""
        lines.append(f"  {'cv ' + str(cv.get('metric', '')):<18} {cv['mean']:.4f}{spread}{folds}")
    if "confusion_matrix" in section:
        lines.append(f"  holdout rows       {report.get('test_rows', '-')}")
    return lines


@click.command()
@click.argument("dataset")
@click.argument("version", required=False)
@click.pass_context
def report(ctx: click.Context, dataset: str, version: str | None) -> None:
    """Show the evaluation of DATASET's model VERSION (default: the latest): file paths,
    holdout metrics, warnings and the most important features."""
    settings = ctx.find_root().obj
    view = describe(settings.home, settings.project, dataset, version)
    package, content = view.package, view.report
    click.echo(
        f"{package.group_name} version {package.version} ({package.approval_status}): "
        f"{content.get('algorithm', package.customer_metadata.get('algorithm', '-'))}, "
        f"registered {package.creation_time[:19].replace('T', ' ')} UTC"
    )
    click.echo(f"report:          {view.report_path}")
    if view.explainability_path:
        click.echo(f"explainability:  {view.explainability_path}")
    for plot in view.plots:
        click.echo(f"plot:            {plot}")
    click.echo("holdout metrics:")
    for line in _metric_lines(content):
        click.echo(line)
    for warning in content.get("warnings", []):
        click.secho(f"warning: {warning}", fg="yellow")
    importance = content.get("importance")
    if importance:
        click.echo(
            f"feature importance (drop in holdout {importance['metric']} when shuffled, "
            f"{importance['repeats']} repeats on {importance['rows']} rows):"
        )
        for feature in importance["features"][:TOP_FEATURES]:
            click.echo(f"  {feature['name']:<28} {feature['mean']:+.4f} ± {feature['std']:.4f}")
