"""The run loop: an execution's record, its steps in planned order, branches, failure, stop."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from container.errors import InputError
from local.executions import DEFINITION_FILE, ExecutionRecord, StepRecord, now
from local.executor.caching import cache_hit, cache_key
from local.executor.layout import JobLayout
from local.executor.model import Listener, Outcome, ProgressEvent, StepFailure
from local.executor.planning import plan, resolve_parameters
from local.executor.steps import HANDLERS, StepContext
from local.expressions import (
    EXECUTION_VARIABLES,
    ExpressionError,
    Scope,
    StepState,
    load_json,
    resolve,
)
from local.home import LocalHome
from local.jobs import JobRunner
from local.registry import LOCAL_ACCOUNT, LOCAL_REGION
from modelbuild.definition import StepNode


class PipelineExecutor:
    def __init__(
        self,
        home: LocalHome,
        runner: JobRunner,
        *,
        use_cache: bool = True,
        listener: Listener = lambda event: None,
    ) -> None:
        self.home = home
        self.runner = runner
        self.use_cache = use_cache
        self.listener = listener

    def start(
        self,
        pipeline: str,
        definition: dict[str, Any],
        parameters: Mapping[str, Any] | None = None,
    ) -> ExecutionRecord:
        """Check, then run every step; returns the finished execution (Succeeded or Failed).

        Raises InputError, before anything runs, for a definition or parameter it cannot use.
        """
        order = plan(definition)
        values = resolve_parameters(definition, parameters)
        store = self.home.executions
        record = ExecutionRecord(
            id=store.new_id(),
            pipeline=pipeline,
            status="Executing",
            started=now(),
            parameters=values,
        )
        store.save(record)
        (store.directory(record.id) / DEFINITION_FILE).write_text(json.dumps(definition, indent=2))
        run = _Execution(self, record, order, values)
        try:
            run.run()
        except BaseException:
            record.status = "Stopped"
            record.failure_reason = "stopped before it finished"
            record.ended = now()
            for step in record.steps:
                if step.status == "Executing":
                    step.status, step.ended = "Stopped", record.ended
            store.save(record)
            raise
        return record


class _Execution:
    def __init__(
        self,
        executor: PipelineExecutor,
        record: ExecutionRecord,
        order: list[StepNode],
        parameters: dict[str, Any],
    ) -> None:
        self.executor = executor
        self.home = executor.home
        self.record = record
        self.order = order
        arn = f"arn:aws:sagemaker:{LOCAL_REGION}:{LOCAL_ACCOUNT}:pipeline/{record.pipeline.lower()}"
        execution = {
            "PipelineExecutionId": record.id,
            "PipelineExecutionArn": f"{arn}/execution/{record.id}",
            "PipelineName": record.pipeline,
            "PipelineArn": arn,
            "StartDateTime": record.started,
            "CurrentDateTime": record.started,
        }
        assert set(execution) == set(EXECUTION_VARIABLES)
        self.scope = Scope(parameters, execution, {}, self._read_json)
        self.context = StepContext(
            home=self.home,
            runner=executor.runner,
            execution_id=record.id,
            scope=self.scope,
            layout=JobLayout(self.home.executions.directory(record.id), self.home.s3),
            progress=self._emit,
        )
        self._reading_step = ""

    def _read_json(self, uri: str) -> Any:
        try:
            data = self.home.s3.get_bytes(uri)
        except InputError as error:
            raise ExpressionError(f"step '{self._reading_step}': {error.describe()}") from None
        return load_json(data, uri, self._reading_step)

    def _emit(self, step: str, kind: str, **details: Any) -> None:
        self.executor.listener(ProgressEvent(self.record.id, step, kind, **details))

    def _save(self) -> None:
        self.home.executions.save(self.record)

    def run(self) -> None:
        taken: dict[str, bool] = {}  # Condition step -> the branch it took
        done: set[str] = set()
        for node in self.order:
            if node.parent is not None and taken.get(node.parent) is not node.branch:
                continue
            if not node.depends_on <= done:
                continue  # it needs a step of a branch not taken
            outcome = self._run_step(node)
            if outcome is None:
                break
            done.add(node.name)
            if node.type == "Condition":
                taken[node.name] = bool(outcome.properties["Outcome"])
        else:
            self.record.status = "Succeeded"
        self.record.ended = now()
        self._save()

    def _run_step(self, node: StepNode) -> Outcome | None:
        step, name, kind = node.step, node.name, node.type
        entry = StepRecord(name=name, type=kind, status="Executing", started=now())
        self.record.steps.append(entry)
        self._save()
        self._emit(name, "step-started")
        self._reading_step = name
        try:
            arguments = resolve(node.arguments, self.scope, name)
            entry.cache_key = cache_key(self.record.pipeline, step, arguments)
            cached = (
                cache_hit(self.home, self.record.pipeline, step, entry.cache_key)
                if self.executor.use_cache
                else None
            )
            if cached is not None:
                entry.cached_from, outcome = cached
            else:
                outcome = HANDLERS[kind].run(self.context, step, arguments)
        except (StepFailure, InputError) as failure:
            reason = failure.reason if isinstance(failure, StepFailure) else failure.describe()
            entry.status, entry.ended, entry.failure_reason = "Failed", now(), reason
            if isinstance(failure, StepFailure):
                entry.metadata.update(failure.metadata)
                entry.logs = failure.logs
            self.record.status = "Failed"
            self.record.failure_reason = (
                reason if kind == "Fail" else f"step '{name}' failed: {reason}"
            )
            self._save()
            self._emit(name, "step-finished", status="Failed")
            return None
        entry.status, entry.ended = "Succeeded", now()
        entry.properties, entry.property_files = outcome.properties, outcome.property_files
        entry.outputs, entry.logs = outcome.outputs, outcome.logs
        entry.metadata.update(outcome.metadata)
        self.scope.steps[name] = StepState(outcome.properties, outcome.property_files)
        self._save()
        self._emit(name, "step-finished", status="Succeeded", cached=entry.cached_from is not None)
        return outcome
