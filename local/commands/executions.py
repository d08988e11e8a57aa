"""`mme executions` and `mme steps`: the local pipeline executions and their steps."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from local.commands.common import console, duration, json_option, print_json, settings_of, when
from local.commands.datasets import dataset_of
from local.execution_summary import execution_result, step_output, unchanged_reason
from modelbuild import naming

if TYPE_CHECKING:
    pass


@click.command()
@click.option("-d", "--dataset", help="Only this dataset's pipeline.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@json_option
@click.pass_context
def executions(ctx: click.Context, dataset: str | None, limit: int, as_json: bool) -> None:
    """List pipeline executions, newest first."""
    settings = settings_of(ctx)
    pipeline_name = (
        naming.pipeline_name(settings.project, dataset_of(settings, dataset)) if dataset else None
    )
    records = settings.home.executions.list(pipeline_name)[:limit]
    if as_json:
        fields = ("id", "pipeline", "status", "started", "ended", "seconds", "failure_reason")
        print_json(
            [{**{f: getattr(r, f) for f in fields}, "result": execution_result(r)} for r in records]
        )
        return
    table = Table(title=f"Pipeline executions in {settings.home.root}")
    for column in ("execution", "pipeline", "status", "started (UTC)", "duration", "result"):
        table.add_column(column, no_wrap=column != "result")
    for record in records:
        result = execution_result(record)
        colour = {"Succeeded": "green", "Executing": "yellow"}.get(record.status, "red")
        table.add_row(
            record.id,
            record.pipeline,
            f"[{colour}]{record.status}[/]",
            when(record.started),
            duration(record.seconds),
            escape(result),
        )
    console.print(table)
    if not records:
        console.print("No executions yet: `mme run` or `mme demo` starts one.")


@click.command()
@click.argument("execution")
@click.option("--logs", is_flag=True, help="Also list every job's log file.")
@json_option
@click.pass_context
def steps(ctx: click.Context, execution: str, logs: bool, as_json: bool) -> None:
    """Show the steps of EXECUTION (an id, or a prefix of one): status, duration, outputs."""
    settings = settings_of(ctx)
    record = settings.home.executions.load(execution)
    if as_json:
        # The whole record (each step's properties are what a Describe* call returns); log
        # paths are made absolute so a script can open them.
        directory = settings.home.executions.directory(record.id)
        document = asdict(record)
        for step, raw in zip(record.steps, document["steps"], strict=True):
            raw.update(seconds=step.seconds, logs=[str(directory / log) for log in step.logs])
        print_json({**document, "seconds": record.seconds, "result": execution_result(record)})
        return
    console.print(
        f"execution [bold]{record.id}[/] of {record.pipeline}: {record.status}, "
        f"started {when(record.started)} UTC, {duration(record.seconds)}"
    )
    table = Table()
    for column in ("step", "type", "status", "duration", "cache", "outputs"):
        table.add_column(column, no_wrap=column != "outputs", overflow="fold")
    for step in record.steps:
        colour = {"Succeeded": "green", "Executing": "yellow"}.get(step.status, "red")
        cache = (
            f"hit: {step.cached_from}" if step.cached_from else ("miss" if step.cache_key else "-")
        )
        table.add_row(
            step.name,
            step.type,
            f"[{colour}]{step.status}[/]",
            duration(step.seconds),
            cache,
            escape(step_output(step)),
        )
    console.print(table)
    if record.failure_reason:
        console.print(f"[red]failure:[/] {escape(record.failure_reason)}")
    unchanged = unchanged_reason(record)
    if unchanged:
        console.print(f"[green]{escape(unchanged)}[/]")
    if logs:
        directory = settings.home.executions.directory(record.id)
        for step in record.steps:
            for log in step.logs:
                console.print(f"{step.name}: {directory / log}", highlight=False)
