"""Run a SageMaker pipeline definition (the JSON modelbuild produces) on this machine.

The executor reads only the definition: its parameters (defaults, overridden per execution),
its steps and their expressions (`local.expressions`). Processing, training and tuning jobs run
the image's entry points on warm worker processes (`local.jobs`) with /opt/ml remapped into the
execution's directory; S3 is `local.s3`, the model registry `local.registry`. Everything is
checked before the first step starts: a step type, expression or entry point the executor cannot
run is an error naming the step, and nothing runs.

Tuning draws each trial from the training job definitions' ranges with the strategy's proposer
(`local.sampling`: `Random` at random, `Bayesian` with a model-based sampler that learns from
earlier trials; both seeded by RandomSeed, so an execution is reproducible), runs at most
MaxParallelTrainingJobs at once, starts no trial after ResourceLimits.MaxRuntimeInSeconds,
reads every trial's metrics from its log with the definition's MetricDefinitions regexes, and
sorts TrainingJobSummaries best first by the objective's type, which is what the definition's
`TrainingJobSummaries[0]` references rely on.

Step caching follows SageMaker: a step with CacheConfig enabled is reused from the newest
earlier successful run of the same pipeline whose cache key matches, within ExpireAfter. The
key hashes the attributes SageMaker's documentation lists per step type, resolved, plus the
local image's identity (the container code and library versions, which is what a new image URI
would mean on AWS); outputs go to per-execution prefixes, so they are not part of it. A hit is
used only if the outputs it recorded still exist in local S3.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from container.errors import InputError
from container.search_space import CategoricalRange, ContinuousRange, IntegerRange, Range
from local.executions import DEFINITION_FILE, ExecutionRecord, StepRecord, now
from local.expressions import (
    EXECUTION_VARIABLES,
    ExpressionError,
    Scope,
    StepState,
    check_condition,
    check_expression,
    condition_holds,
    expressions,
    load_json,
    referenced_steps,
    resolve,
    text,
)
from local.home import LocalHome
from local.jobs import (
    IMAGE_ENTRYPOINT,
    TRAIN_COMMAND,
    Job,
    JobError,
    JobResult,
    JobRunner,
    remap,
)
from local.jobs import python_module as check_python_module
from local.registry import LOCAL_ACCOUNT, LOCAL_REGION
from local.sampling import STRATEGIES, proposer

STEP_TYPES = ("Processing", "Training", "Tuning", "Condition", "RegisterModel", "Fail")
# What SageMaker compares to decide a cache hit (Developer Guide, "Default cache key attributes
# by pipeline step type").
CACHE_ATTRIBUTES = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": (
        "AlgorithmSpecification",
        "CheckpointConfig",
        "DebugHookConfig",
        "DebugRuleConfigurations",
        "Environment",
        "HyperParameters",
        "InputDataConfig",
    ),
    "Tuning": ("HyperParameterTuningJobConfig",),
}
TUNING_DEFINITION_CACHE_ATTRIBUTES = (
    "AlgorithmSpecification",
    "HyperParameterRanges",
    "InputDataConfig",
    "StaticHyperParameters",
    "TuningObjective",
)
_IMAGE_LIBRARIES = ("scikit-learn", "xgboost-cpu", "lightgbm", "numpy", "pandas", "joblib")
_DURATION = re.compile(
    r"^P(?:(?P<Y>\d+)Y)?(?:(?P<M>\d+)M)?(?:(?P<W>\d+)W)?(?:(?P<D>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$",
    re.IGNORECASE,
)
_NAME_CHARS = re.compile(r"[^A-Za-z0-9-]+")


class DefinitionError(InputError):
    """The definition cannot be run locally; raised before any step starts."""


class StepFailure(Exception):
    def __init__(
        self, reason: str, metadata: dict[str, Any] | None = None, logs: list[str] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.metadata = metadata or {}
        self.logs = logs or []


@dataclass(frozen=True)
class ProgressEvent:
    execution_id: str
    step: str
    kind: str  # "step-started", "step-finished", "job-finished"
    status: str = ""
    done: int = 0
    total: int = 0
    cached: bool = False


Listener = Callable[[ProgressEvent], None]


@dataclass
class _Outcome:
    properties: dict[str, Any] = field(default_factory=dict)
    property_files: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Node:
    step: dict[str, Any]
    parent: str | None = None  # the Condition step whose branch holds this step
    branch: bool | None = None  # True: IfSteps, False: ElseSteps

    @property
    def name(self) -> str:
        return self.step["Name"]


# ---------------------------------------------------------------------------- parameters


def resolve_parameters(
    definition: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Declared defaults, then overrides (strings from a command line are converted by type)."""
    declared = {p["Name"]: p for p in definition.get("Parameters") or []}
    unknown = sorted(set(overrides or {}) - set(declared))
    if unknown:
        raise InputError(
            f"unknown pipeline parameter(s) {', '.join(unknown)}; the definition declares "
            f"{', '.join(declared) or 'none'}"
        )
    values = {}
    for name, parameter in declared.items():
        if overrides and name in overrides:
            value = _typed(name, parameter.get("Type", "String"), overrides[name])
        elif "DefaultValue" in parameter:
            value = _typed(name, parameter.get("Type", "String"), parameter["DefaultValue"])
        else:
            raise InputError(f"pipeline parameter {name} has no default and no value was given")
        allowed = parameter.get("EnumValues")
        if allowed and value not in allowed:
            raise InputError(f"pipeline parameter {name}={value!r} is not one of {allowed}")
        values[name] = value
    return values


def _typed(name: str, kind: str, raw: Any) -> Any:
    try:
        if kind == "Integer":
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            return int(raw)
        if kind == "Float":
            return float(raw)
        if kind == "Boolean":
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("true", "false"):
                return str(raw).lower() == "true"
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"pipeline parameter {name} is {kind}, got {raw!r}") from None
    if kind != "String":
        raise InputError(f"pipeline parameter {name} has unknown type {kind!r}")
    return str(raw)


# ---------------------------------------------------------------------------- checking


def _nodes(
    steps: list[dict[str, Any]], parent: str | None = None, branch: bool | None = None
) -> Iterator[_Node]:
    for step in steps:
        yield _Node(step, parent, branch)
        if step.get("Type") == "Condition":
            arguments = step.get("Arguments") or {}
            yield from _nodes(arguments.get("IfSteps") or [], step.get("Name"), True)
            yield from _nodes(arguments.get("ElseSteps") or [], step.get("Name"), False)


def _own_arguments(step: dict[str, Any]) -> dict[str, Any]:
    """A step's arguments without the steps nested in a condition's branches."""
    arguments = dict(step.get("Arguments") or {})
    if step.get("Type") == "Condition":
        arguments.pop("IfSteps", None)
        arguments.pop("ElseSteps", None)
    return arguments


def plan(definition: Mapping[str, Any]) -> list[_Node]:
    """Every step in an order that respects its references, or a DefinitionError naming a step."""
    if not isinstance(definition, Mapping) or not isinstance(definition.get("Steps"), list):
        raise DefinitionError("a pipeline definition is a JSON object with a 'Steps' list")
    nodes = list(_nodes(definition["Steps"]))
    names = [n.step.get("Name") for n in nodes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DefinitionError(f"step name(s) used twice: {', '.join(map(str, duplicates))}")
    parameters = {p.get("Name") for p in definition.get("Parameters") or []}
    known = set(names)
    depends: dict[str, set[str]] = {}
    for node in nodes:
        _check_step(node, parameters, known)
        needs = referenced_steps(_own_arguments(node.step)) | set(node.step.get("DependsOn") or [])
        if node.parent:
            needs.add(node.parent)
        unknown = sorted(needs - known)
        if unknown:
            raise DefinitionError(
                f"step '{node.name}' depends on unknown step(s) {', '.join(unknown)}"
            )
        depends[node.name] = needs
    ordered: list[_Node] = []
    placed: set[str] = set()
    remaining = list(nodes)
    while remaining:
        ready = [n for n in remaining if depends[n.name] <= placed]
        if not ready:
            raise DefinitionError(
                "steps depend on each other in a cycle: "
                + ", ".join(sorted(n.name for n in remaining))
            )
        ordered.append(ready[0])
        placed.add(ready[0].name)
        remaining.remove(ready[0])
    return ordered


def _check_step(node: _Node, parameters: set[str], steps: set[str]) -> None:
    step, name = node.step, node.name
    kind = step.get("Type")
    if kind not in STEP_TYPES:
        raise DefinitionError(
            f"step '{name}' has type {kind!r}, which the local executor cannot run "
            f"(it runs {', '.join(STEP_TYPES)} steps)"
        )
    arguments = _own_arguments(step)
    for expression in expressions(arguments):
        try:
            check_expression(expression, name, parameters, steps)
        except ExpressionError as error:
            raise DefinitionError(error.problem) from None
    try:
        if kind == "Condition":
            for condition in arguments.get("Conditions") or []:
                check_condition(condition, name)
        elif kind == "Processing":
            _check_processing(step)
    except (ExpressionError, JobError) as error:
        raise DefinitionError(f"step '{name}': {error.problem}") from None


def _check_processing(step: dict[str, Any]) -> None:
    arguments = step.get("Arguments") or {}
    entrypoint = (arguments.get("AppSpecification") or {}).get("ContainerEntrypoint")
    if entrypoint is not None and all(isinstance(p, str) for p in entrypoint):
        check_python_module(entrypoint)
    for item in arguments.get("ProcessingInputs") or []:
        if "S3Input" not in item:
            raise JobError(
                f"processing input {item.get('InputName')!r} is not an S3Input; the local "
                "executor reads inputs from local S3 only"
            )


# ---------------------------------------------------------------------------- helpers


@cache
def image_identity() -> str:
    """What the local image is: the container code and the libraries it runs with."""
    digest = hashlib.sha256()
    root = Path(sys.modules["container"].__file__ or "").parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    for name in _IMAGE_LIBRARIES:
        try:
            digest.update(f"{name}=={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name} absent".encode())
    return digest.hexdigest()


def parse_duration(value: str) -> timedelta:
    """ISO 8601 durations as CacheConfig.ExpireAfter takes them (a year = 365 days, a month 30)."""
    match = _DURATION.match(value.strip())
    if not match or not any(match.groups()):
        raise InputError(f"CacheConfig ExpireAfter {value!r} is not an ISO 8601 duration")
    part = {k: int(v or 0) for k, v in match.groupdict().items()}
    return timedelta(
        days=part["Y"] * 365 + part["M"] * 30 + part["W"] * 7 + part["D"],
        hours=part["h"],
        minutes=part["m"],
        seconds=part["s"],
    )


def _job_name(*parts: str, limit: int = 63) -> str:
    """A SageMaker job name ([a-zA-Z0-9-], at most `limit` characters)."""
    return _NAME_CHARS.sub("-", "-".join(parts)).strip("-")[:limit].rstrip("-")


def _short_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]


def _ranges(definition: dict[str, Any], step: str) -> tuple[Range, ...]:
    """A training job definition's HyperParameterRanges as the shared search-space types."""
    raw = definition.get("HyperParameterRanges") or {}
    ranges: list[Range] = []
    for kind, spec_type, convert in (
        ("IntegerParameterRanges", IntegerRange, int),
        ("ContinuousParameterRanges", ContinuousRange, float),
    ):
        for item in raw.get(kind) or []:
            scale = item.get("ScalingType", "Auto")
            if scale not in ("Auto", "Linear", "Logarithmic"):
                raise StepFailure(
                    f"step '{step}': range {item['Name']!r} uses ScalingType {scale}, which the "
                    "local tuner does not support (Auto, Linear, Logarithmic)"
                )
            ranges.append(
                spec_type(
                    item["Name"],
                    convert(item["MinValue"]),
                    convert(item["MaxValue"]),
                    "Logarithmic" if scale == "Logarithmic" else "Linear",
                )
            )
    for item in raw.get("CategoricalParameterRanges") or []:
        ranges.append(CategoricalRange(item["Name"], tuple(str(v) for v in item["Values"])))
    return tuple(ranges)


def _metrics(log: str, definitions: list[dict[str, Any]]) -> dict[str, float]:
    """Each metric's last value in the log, read with its definition's regex."""
    found = {}
    for definition in definitions:
        values = re.findall(definition["Regex"], log)
        if values:
            last = values[-1]
            try:
                found[definition["Name"]] = float(last[0] if isinstance(last, tuple) else last)
            except ValueError:
                continue
    return found


@dataclass
class _Trial:
    index: int
    definition: dict[str, Any]
    tuned: dict[str, str]
    name: str
    started: str = ""
    result: JobResult | None = None
    artifact: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- the executor


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
        order: list[_Node],
        parameters: dict[str, Any],
    ) -> None:
        self.executor = executor
        self.home = executor.home
        self.record = record
        self.order = order
        self.directory = self.home.executions.directory(record.id)
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
        self._reading_step = ""

    # -- plumbing

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

    def _log_path(self, job: str) -> Path:
        return self.directory / "logs" / f"{job}.log"

    def _ml_root(self, job: str) -> Path:
        return self.directory / "jobs" / job / "ml"

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.directory).as_posix()

    # -- the run

    def run(self) -> None:
        taken: dict[str, bool] = {}
        done: set[str] = set()
        for node in self.order:
            if node.parent is not None and taken.get(node.parent) is not node.branch:
                continue
            needs = referenced_steps(_own_arguments(node.step)) | set(
                node.step.get("DependsOn") or []
            )
            if not needs <= done:
                continue
            outcome = self._run_step(node)
            if outcome is None:
                break
            done.add(node.name)
            if node.step["Type"] == "Condition":
                taken[node.name] = bool(outcome.properties["Outcome"])
        else:
            self.record.status = "Succeeded"
        self.record.ended = now()
        self._save()

    def _run_step(self, node: _Node) -> _Outcome | None:
        step, name, kind = node.step, node.name, node.step["Type"]
        entry = StepRecord(name=name, type=kind, status="Executing", started=now())
        self.record.steps.append(entry)
        self._save()
        self._emit(name, "step-started")
        self._reading_step = name
        try:
            arguments = resolve(_own_arguments(step), self.scope, name)
            entry.cache_key = self._cache_key(step, arguments)
            cached = self._cache_hit(step, entry.cache_key)
            if cached is not None:
                source, outcome = cached
                entry.cached_from = source
            else:
                outcome = self._handler(kind)(step, arguments)
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

    def _handler(self, kind: str) -> Callable[[dict[str, Any], dict[str, Any]], _Outcome]:
        return {
            "Processing": self._processing,
            "Training": self._training,
            "Tuning": self._tuning,
            "Condition": self._condition,
            "RegisterModel": self._register,
            "Fail": self._fail,
        }[kind]

    # -- caching

    def _cache_key(self, step: dict[str, Any], arguments: dict[str, Any]) -> str | None:
        config = step.get("CacheConfig") or {}
        kind = step["Type"]
        if not config.get("Enabled") or kind not in CACHE_ATTRIBUTES:
            return None
        attributes = {k: arguments.get(k) for k in CACHE_ATTRIBUTES[kind]}
        if kind == "Tuning":
            definitions = arguments.get("TrainingJobDefinitions") or [
                arguments.get("TrainingJobDefinition") or {}
            ]
            attributes["TrainingJobDefinitions"] = [
                {k: d.get(k) for k in TUNING_DEFINITION_CACHE_ATTRIBUTES} for d in definitions
            ]
        payload = {
            "pipeline": self.record.pipeline,
            "step": step["Name"],
            "type": kind,
            "image": image_identity(),
            "attributes": attributes,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def _cache_hit(self, step: dict[str, Any], key: str | None) -> tuple[str, _Outcome] | None:
        if key is None or not self.executor.use_cache:
            return None
        expire_after = (step.get("CacheConfig") or {}).get("ExpireAfter")
        oldest = (
            datetime.now(UTC) - parse_duration(expire_after)
            if expire_after
            else datetime.min.replace(tzinfo=UTC)
        )
        candidates = self.home.executions.cache_candidates(self.record.pipeline, step["Name"], key)
        for source, previous in candidates:
            if previous.ended is None or datetime.fromisoformat(previous.ended) < oldest:
                continue
            if all(self._exists(uri) for uri in previous.outputs):
                return source, _Outcome(
                    properties=previous.properties,
                    property_files=previous.property_files,
                    outputs=previous.outputs,
                    metadata={"CacheHit": source},
                )
        return None

    def _exists(self, uri: str) -> bool:
        return next(iter(self.home.s3.list(uri)), None) is not None

    # -- jobs

    def _job_failure(self, result: JobResult, failure_file: Path | None = None) -> str:
        reason = ""
        if failure_file is not None and failure_file.is_file():
            reason = failure_file.read_text(errors="replace").strip()
        head = f"job {result.name} exited with code {result.exit_code}"
        tail = result.log_tail()
        log = self._relative(result.log)
        return (
            f"{head}: {reason}\nlog {log}, last lines:\n{tail}"
            if reason
            else (f"{head}; log {log}, last lines:\n{tail}")
        )

    def _download(self, uri: str, destination: Path, what: str) -> None:
        if not self.home.s3.download_prefix(uri, destination):
            raise StepFailure(f"{what}: no objects at {uri}")

    def _finish_job(self, job: Job, result: JobResult) -> None:
        """A successful job's /opt/ml is gone once its outputs are uploaded, as on SageMaker."""
        if result.succeeded:
            shutil.rmtree(job.ml_root.parent, ignore_errors=True)

    # -- step types

    def _processing(self, step: dict[str, Any], arguments: dict[str, Any]) -> _Outcome:
        name = step["Name"]
        job_name = _job_name("pipelines", self.record.id, name)
        ml_root = self._ml_root(job_name)
        job_dir = ml_root.parent
        app = arguments.get("AppSpecification") or {}
        command = [text(p) for p in app.get("ContainerEntrypoint") or IMAGE_ENTRYPOINT]
        command += [text(a) for a in app.get("ContainerArguments") or []]
        try:
            check_python_module(command)
        except JobError as error:
            raise StepFailure(error.problem) from None
        job = Job(
            name=job_name,
            command=tuple(command),
            ml_root=ml_root,
            log=self._log_path(job_name),
            environment={k: text(v) for k, v in (arguments.get("Environment") or {}).items()},
            max_seconds=(arguments.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"),
        )
        if job_dir.exists():
            shutil.rmtree(job_dir)
        for item in arguments.get("ProcessingInputs") or []:
            source = item["S3Input"]
            local = Path(remap(source["LocalPath"], ml_root))
            self._download(source["S3Uri"], local, f"processing input '{item['InputName']}'")
        outputs = (arguments.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        for item in outputs:
            Path(remap(item["S3Output"]["LocalPath"], ml_root)).mkdir(parents=True, exist_ok=True)
        result = self.executor.runner.run(job)
        if not result.succeeded:
            raise StepFailure(self._job_failure(result), logs=[self._relative(result.log)])
        uploaded = []
        for item in outputs:
            target = item["S3Output"]["S3Uri"]
            self.home.s3.upload_dir(Path(remap(item["S3Output"]["LocalPath"], ml_root)), target)
            uploaded.append(target)
        self._finish_job(job, result)
        files = {}
        for declared in step.get("PropertyFiles") or []:
            output = next((o for o in outputs if o["OutputName"] == declared["OutputName"]), None)
            if output is None:
                raise StepFailure(
                    f"property file {declared['PropertyFileName']!r} names output "
                    f"{declared['OutputName']!r}, which the step does not have"
                )
            uri = f"{output['S3Output']['S3Uri'].rstrip('/')}/{declared['FilePath']}"
            if not self.home.s3.exists(uri):
                raise StepFailure(
                    f"the job did not write property file {declared['PropertyFileName']!r} "
                    f"({declared['FilePath']} in output {declared['OutputName']!r})"
                )
            files[declared["PropertyFileName"]] = uri
        properties = {
            "ProcessingJobName": job_name,
            "ProcessingJobStatus": "Completed",
            "AppSpecification": app,
            "ProcessingInputs": arguments.get("ProcessingInputs") or [],
            "ProcessingOutputConfig": {"Outputs": outputs},
            "Environment": arguments.get("Environment") or {},
        }
        return _Outcome(
            properties, files, uploaded, [self._relative(result.log)], {"ProcessingJob": job_name}
        )

    def _training_job(
        self, job_name: str, spec: dict[str, Any], hyperparameters: dict[str, Any], threads: int
    ) -> Job:
        """Lay out /opt/ml for one training job as SageMaker does, and describe the job."""
        ml_root = self._ml_root(job_name)
        if ml_root.parent.exists():
            shutil.rmtree(ml_root.parent)
        algorithm = spec.get("AlgorithmSpecification") or {}
        if algorithm.get("TrainingInputMode", "File") != "File":
            raise StepFailure(f"training input mode {algorithm['TrainingInputMode']} is not local")
        config = ml_root / "input" / "config"
        config.mkdir(parents=True)
        strings = {k: text(v) for k, v in hyperparameters.items()}
        (config / "hyperparameters.json").write_text(json.dumps(strings, indent=2))
        channels = {}
        for channel in spec.get("InputDataConfig") or []:
            source = channel["DataSource"]["S3DataSource"]
            name = channel["ChannelName"]
            self._download(source["S3Uri"], ml_root / "input" / "data" / name, f"channel '{name}'")
            channels[name] = {
                "ContentType": channel.get("ContentType", ""),
                "TrainingInputMode": "File",
                "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            }
        (config / "inputdataconfig.json").write_text(json.dumps(channels, indent=2))
        (config / "resourceconfig.json").write_text(
            json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
        )
        command = [text(p) for p in algorithm.get("ContainerEntrypoint") or IMAGE_ENTRYPOINT]
        command += [text(a) for a in algorithm.get("ContainerArguments") or [TRAIN_COMMAND]]
        try:
            check_python_module(command)
        except JobError as error:
            raise StepFailure(error.problem) from None
        environment = {k: text(v) for k, v in (spec.get("Environment") or {}).items()}
        return Job(
            name=job_name,
            command=tuple(command),
            ml_root=ml_root,
            log=self._log_path(job_name),
            # Trials share the cores; a trial's folds run on what its share allows.
            environment={**environment, "MME_TRIAL_THREADS": str(threads)},
            max_seconds=(spec.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"),
        )

    def _finish_training(
        self, job: Job, result: JobResult, spec: dict[str, Any]
    ) -> tuple[str | None, dict[str, float], str | None]:
        """(artifact URI, metrics, failure reason) of a finished training job."""
        from container.artifact import pack

        metric_definitions = (spec.get("AlgorithmSpecification") or {}).get(
            "MetricDefinitions"
        ) or []
        metrics = _metrics(result.log_text(), metric_definitions)
        if not result.succeeded:
            return None, metrics, self._job_failure(result, job.ml_root / "output" / "failure")
        output_path = text((spec.get("OutputDataConfig") or {}).get("S3OutputPath", "")).rstrip("/")
        if not output_path:
            return None, metrics, "the training job has no OutputDataConfig.S3OutputPath"
        artifact = f"{output_path}/{job.name}/output/model.tar.gz"
        with tempfile.TemporaryDirectory(dir=job.ml_root.parent) as tmp:
            packed = pack(job.ml_root / "model", Path(tmp) / "model.tar.gz")
            self.home.s3.put_file(artifact, packed)
        self._finish_job(job, result)
        return artifact, metrics, None

    def _training(self, step: dict[str, Any], arguments: dict[str, Any]) -> _Outcome:
        job_name = _job_name("pipelines", self.record.id, step["Name"])
        job = self._training_job(
            job_name,
            arguments,
            arguments.get("HyperParameters") or {},
            self.executor.runner.workers,
        )
        result = self.executor.runner.run(job)
        artifact, metrics, failure = self._finish_training(job, result, arguments)
        logs = [self._relative(result.log)]
        if failure is not None:
            raise StepFailure(failure, logs=logs)
        properties = {
            "TrainingJobName": job_name,
            "TrainingJobStatus": "Completed",
            "HyperParameters": arguments.get("HyperParameters") or {},
            "ModelArtifacts": {"S3ModelArtifacts": artifact},
            "FinalMetricDataList": [{"MetricName": k, "Value": v} for k, v in metrics.items()],
        }
        return _Outcome(properties, {}, [str(artifact)], logs, {"TrainingJob": job_name})

    def _tuning(self, step: dict[str, Any], arguments: dict[str, Any]) -> _Outcome:
        name = step["Name"]
        config = arguments.get("HyperParameterTuningJobConfig") or {}
        limits = config.get("ResourceLimits") or {}
        max_jobs = int(limits.get("MaxNumberOfTrainingJobs", 1))
        max_parallel = int(limits.get("MaxParallelTrainingJobs", 1))
        max_seconds = limits.get("MaxRuntimeInSeconds")
        strategy = text(config.get("Strategy", "Bayesian"))
        if strategy not in STRATEGIES:
            raise StepFailure(
                f"tuning strategy {strategy} is not supported locally ({', '.join(STRATEGIES)} are)"
            )
        definitions = arguments.get("TrainingJobDefinitions") or [
            arguments.get("TrainingJobDefinition") or {}
        ]
        shared_objective = config.get("HyperParameterTuningJobObjective")
        objectives = {}
        for index, definition in enumerate(definitions):
            definition.setdefault("DefinitionName", f"definition-{index}")
            objective = definition.get("TuningObjective") or shared_objective
            if not objective:
                raise StepFailure(f"{definition['DefinitionName']}: no tuning objective")
            objectives[definition["DefinitionName"]] = objective
        kinds = {o["Type"] for o in objectives.values()}
        if len(kinds) != 1 or not kinds <= {"Maximize", "Minimize"}:
            raise StepFailure(f"tuning objectives must share one type, got {sorted(kinds)}")
        maximize = kinds == {"Maximize"}

        by_name = {d["DefinitionName"]: d for d in definitions}
        proposals = proposer(
            strategy,
            {d["DefinitionName"]: _ranges(d, name) for d in definitions},
            int(config.get("RandomSeed") or 0),
            maximize=maximize,
            max_parallel=max_parallel,
        )
        tuning_job = _job_name(self.record.id, name, limit=32)
        trials: list[_Trial] = []

        def record(trial: _Trial) -> None:
            value = trial.summary.get("FinalHyperParameterTuningJobObjectiveMetric", {})
            proposals.record(trial.index, value.get("Value"))

        limit = max(1, min(max_parallel, self.executor.runner.workers))
        threads = max(1, self.executor.runner.workers // limit)
        deadline = None if max_seconds is None else time.monotonic() + int(max_seconds)
        pending: deque[int] = deque(range(max_jobs))
        running: dict[Future[JobResult], tuple[_Trial, Job]] = {}
        finished = 0
        while pending or running:
            if deadline is not None and time.monotonic() >= deadline:
                pending.clear()  # past the time budget: let running trials finish, start none
            while pending and len(running) < limit and proposals.ready(pending[0]):
                index = pending.popleft()
                definition_name, tuned = proposals.propose(index)
                trial_name = _job_name(tuning_job, f"{index + 1:03d}", _short_hash(tuned))
                trial = _Trial(index, by_name[definition_name], tuned, trial_name)
                trials.append(trial)
                hyperparameters = {**(trial.definition.get("StaticHyperParameters") or {})}
                hyperparameters.update(trial.tuned)
                trial.started = now()
                try:
                    job = self._training_job(trial.name, trial.definition, hyperparameters, threads)
                except StepFailure as failure:
                    trial.summary = self._trial_summary(
                        trial, tuning_job, objectives[trial.definition["DefinitionName"]], {},
                        failure.reason,
                    )  # fmt: skip
                    record(trial)
                    finished += 1
                    continue
                running[self.executor.runner.submit(job)] = (trial, job)
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                trial, job = running.pop(future)
                trial.result = future.result()
                trial.artifact, metrics, failure = self._finish_training(
                    job, trial.result, trial.definition
                )
                trial.summary = self._trial_summary(
                    trial, tuning_job, objectives[trial.definition["DefinitionName"]], metrics,
                    failure,
                )  # fmt: skip
                record(trial)
                finished += 1
                self._emit(name, "job-finished", done=finished, total=max_jobs,
                           status=trial.summary["TrainingJobStatus"])  # fmt: skip

        def rank(trial: _Trial) -> tuple[int, float, int]:
            value = trial.summary.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get(
                "Value"
            )
            if value is None:
                return (1, 0.0, trial.index)
            return (0, -value if maximize else value, trial.index)

        if not trials:
            raise StepFailure(f"MaxRuntimeInSeconds ({max_seconds}) ended before any trial started")
        ranked = sorted(trials, key=rank)
        summaries = [t.summary for t in ranked]
        logs = [self._relative(t.result.log) for t in trials if t.result is not None]
        best = summaries[0]
        if "FinalHyperParameterTuningJobObjectiveMetric" not in best:
            reasons = sorted({s.get("FailureReason", "") for s in summaries})
            raise StepFailure(
                f"none of the {len(trials)} training jobs reported its objective; "
                f"first failure: {reasons[0] if reasons else 'unknown'}",
                logs=logs,
            )
        completed = sum(s["TrainingJobStatus"] == "Completed" for s in summaries)
        properties = {
            "HyperParameterTuningJobName": tuning_job,
            "HyperParameterTuningJobStatus": "Completed",
            "BestTrainingJob": best,
            "TrainingJobSummaries": summaries,
            "TrainingJobStatusCounters": {
                "Completed": completed,
                "NonRetryableError": len(summaries) - completed,
            },
        }
        metadata = {
            "TuningJob": tuning_job,
            "Strategy": strategy,
            "Sampling": proposals.description,
            "ParallelJobs": limit,
        }
        return _Outcome(properties, {}, [str(ranked[0].artifact)], logs, metadata)

    def _trial_summary(
        self,
        trial: _Trial,
        tuning_job: str,
        objective: dict[str, Any],
        metrics: dict[str, float],
        failure: str | None,
    ) -> dict[str, Any]:
        """The trial as HyperParameterTrainingJobSummary describes it."""
        summary: dict[str, Any] = {
            "TrainingJobDefinitionName": trial.definition["DefinitionName"],
            "TrainingJobName": trial.name,
            "TrainingJobArn": (
                f"arn:aws:sagemaker:{LOCAL_REGION}:{LOCAL_ACCOUNT}:training-job/{trial.name}"
            ),
            "TuningJobName": tuning_job,
            "CreationTime": trial.started,
            "TrainingStartTime": trial.started,
            "TrainingEndTime": now(),
            "TrainingJobStatus": "Completed" if failure is None else "Failed",
            "TunedHyperParameters": trial.tuned,
        }
        value = metrics.get(objective["MetricName"])
        if failure is None and value is None:
            failure = (
                f"the job's output has no '{objective['MetricName']}' objective line "
                "(the metric definition's regex found nothing)"
            )
            summary["TrainingJobStatus"] = "Failed"
        if failure is not None:
            summary["FailureReason"] = failure
            summary["ObjectiveStatus"] = "Failed"
            return summary
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": objective["Type"],
            "MetricName": objective["MetricName"],
            "Value": value,
        }
        summary["ObjectiveStatus"] = "Succeeded"
        return summary

    def _condition(self, step: dict[str, Any], arguments: dict[str, Any]) -> _Outcome:
        holds = all(
            condition_holds(c, self.scope, step["Name"]) for c in step["Arguments"]["Conditions"]
        )
        return _Outcome({"Outcome": holds}, metadata={"Condition": {"Outcome": str(holds)}})

    def _register(self, step: dict[str, Any], arguments: dict[str, Any]) -> _Outcome:
        specification = arguments.get("InferenceSpecification") or {}
        containers = specification.get("Containers") or []
        if not containers or not containers[0].get("ModelDataUrl"):
            raise StepFailure("the model package has no container with a ModelDataUrl")
        model_data = text(containers[0]["ModelDataUrl"])
        if not self.home.s3.exists(model_data):
            raise StepFailure(f"the model artifact {model_data} does not exist")
        metrics = {
            k: v for k, v in (arguments.get("ModelMetrics") or {}).items() if v not in ({}, None)
        }
        package = self.home.registry.register(
            text(arguments.get("ModelPackageGroupName")),
            model_data,
            approval_status=text(arguments.get("ModelApprovalStatus", "PendingManualApproval")),
            image_uri=text(containers[0].get("Image", "")),
            model_metrics=metrics,
            customer_metadata={
                k: text(v) for k, v in (arguments.get("CustomerMetadataProperties") or {}).items()
            },
            content_types=[text(t) for t in specification.get("SupportedContentTypes") or []],
            response_types=[text(t) for t in specification.get("SupportedResponseMIMETypes") or []],
            inference_instance_types=[
                text(t) for t in specification.get("SupportedRealtimeInferenceInstanceTypes") or []
            ],
        )
        properties = {
            "ModelPackageArn": package.arn,
            "ModelPackageGroupName": package.group_name,
            "ModelPackageVersion": package.version,
            "ModelApprovalStatus": package.approval_status,
        }
        return _Outcome(properties, metadata={"RegisterModel": {"Arn": package.arn}})

    def _fail(self, step: dict[str, Any], arguments: dict[str, Any]) -> _Outcome:
        message = text(arguments.get("ErrorMessage", "")) or f"step '{step['Name']}' failed"
        raise StepFailure(message, {"Fail": {"ErrorMessage": message}})
