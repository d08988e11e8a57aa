"""`mme models`, `approve`, `reject` and `events`: the local model registry."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from local.commands.common import (
    Settings,
    console,
    json_option,
    print_json,
    settings_of,
    when,
)
from local.commands.datasets import group_of

if TYPE_CHECKING:
    from local.registry import ModelPackage


def _holdout(settings: Settings, package: ModelPackage) -> str:
    from local.runs import read_json

    uri = package.model_metrics.get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
    report = read_json(settings.home, uri) if uri else {}
    metric = report.get("register_metric", {})
    return f"{metric['name']} {metric['value']:.4f}" if "value" in metric else "-"


def models_table(settings: Settings, packages: list[ModelPackage]) -> Table:
    table = Table(title="Model registry")
    for column in ("group", "version", "status", "algorithm", "holdout", "created (UTC)",
                   "artifact", "approval description"):  # fmt: skip
        table.add_column(column, no_wrap=column not in ("artifact", "approval description"))
    colours = {"Approved": "green", "Rejected": "red", "PendingManualApproval": "yellow"}
    for package in packages:
        table.add_row(
            package.group_name,
            str(package.version),
            f"[{colours[package.approval_status]}]{package.approval_status}[/]",
            package.customer_metadata.get("algorithm", "-"),
            _holdout(settings, package),
            when(package.creation_time),
            package.model_data_url,
            escape(package.approval_description),
        )
    return table


@click.command()
@click.argument("dataset", required=False)
@click.option(
    "--status",
    type=click.Choice(["PendingManualApproval", "Approved", "Rejected"]),
    help="Only versions with this approval status.",
)
@json_option
@click.pass_context
def models(ctx: click.Context, dataset: str | None, status: str | None, as_json: bool) -> None:
    """List model versions (all groups, or DATASET's), newest first."""
    settings = settings_of(ctx)
    group = group_of(settings, dataset) if dataset else None
    packages = settings.home.registry.list_packages(group, status)  # type: ignore[arg-type]
    if as_json:
        print_json([asdict(package) for package in packages])
        return
    console.print(models_table(settings, packages))
    if not packages:
        console.print("No model versions yet: `mme run` registers one per dataset that passes.")


def say(outcome: Any) -> None:
    verdict = "" if outcome.ok else "[red]"
    console.print(f"  {verdict}{escape(outcome.text)}")


class _Version(click.ParamType):
    """A model package version as the tables print it: `v2` (the run summary) or `2`."""

    name = "VERSION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        digits = str(value).strip().removeprefix("v").removeprefix("V")
        if not digits.isdigit() or int(digits) < 1:
            self.fail(f"{value!r} is not a model version (1, 2, ... or v1, v2, ...)", param, ctx)
        return int(digits)


VERSION = _Version()

_deploy_option = click.option(
    "--deploy/--no-deploy",
    default=True,
    show_default=True,
    help="Deploy the change to dev and smoke-test it, as EventBridge does on AWS.",
)


def _decide(
    ctx: click.Context,
    target: str,
    version: int | None,
    status: str,
    note: str,
    deploy: bool,
    canary: bool = False,
) -> None:
    from local.approval import decide

    settings = settings_of(ctx)
    if canary and not deploy:
        raise click.UsageError("--canary deploys to dev; it cannot go with --no-deploy")
    decision = decide(
        settings.home,
        settings.project,
        target,
        version,
        status,  # type: ignore[arg-type]
        note,
        deploy=deploy,
        canary=canary,
        report=say,
    )
    package = decision.package
    if not decision.changed:
        console.print(f"{package.arn} was already {status}; nothing changed")
        return
    console.print(f"{package.arn}: {decision.before} -> {status}")


@click.command()
@click.argument("dataset")
@click.argument("version", type=VERSION, required=False)
@click.option("-m", "--description", default="", help="Approval description.")
@_deploy_option
@click.option(
    "--canary",
    is_flag=True,
    help="Deploy a version newer than dev's live one as dev's canary beside it, with dev's "
    "Canary.Weight, instead of replacing it.",
)
@click.pass_context
def approve(
    ctx: click.Context,
    dataset: str,
    version: int | None,
    description: str,
    deploy: bool,
    canary: bool,
) -> None:
    """Approve VERSION (default: the newest) of DATASET's model package group."""
    _decide(ctx, dataset, version, "Approved", description, deploy, canary)


@click.command()
@click.argument("dataset")
@click.argument("version", type=VERSION, required=False)
@click.option("-m", "--description", default="", help="Why it was rejected.")
@_deploy_option
@click.pass_context
def reject(
    ctx: click.Context, dataset: str, version: int | None, description: str, deploy: bool
) -> None:
    """Reject VERSION (default: the newest) of DATASET's model package group; on dev, a
    rejected live version rolls back to the newest approved one."""
    _decide(ctx, dataset, version, "Rejected", description, deploy)


@click.command()
@click.option("--after", type=click.IntRange(0), default=0, help="Only events after this id.")
@json_option
@click.pass_context
def events(ctx: click.Context, after: int, as_json: bool) -> None:
    """List model package state change events (what EventBridge would deliver)."""
    settings = settings_of(ctx)
    found = settings.home.registry.events(after)
    if as_json:
        print_json([asdict(event) for event in found])
        return
    table = Table(title="SageMaker Model Package State Change events")
    for column in ("id", "time (UTC)", "group", "version", "status", "description"):
        table.add_column(column)
    for event in found:
        table.add_row(
            str(event.id),
            when(event.time),
            event.group_name,
            str(event.detail["ModelPackageVersion"]),
            event.approval_status,
            escape(event.detail.get("ApprovalDescription", "")),
        )
    console.print(table)
