"""Training steps, and the training job layout the tuner's trials share.

A training job gets SageMaker's /opt/ml: `input/config/hyperparameters.json` (every value a
string), `inputdataconfig.json`, `resourceconfig.json`, and each channel under `input/data/`.
Its model directory is packed to `<S3OutputPath>/<job>/output/model.tar.gz`; its metrics are
every MetricDefinitions regex's last match in its log.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local.executor.layout import job_name
from local.executor.model import Outcome, StepFailure
from local.executor.steps.base import StepContext, StepHandler
from local.expressions import text
from local.jobs import IMAGE_ENTRYPOINT, TRAIN_COMMAND, Job, JobError, JobResult, python_module


def training_job(
    context: StepContext,
    name: str,
    spec: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    threads: int,
) -> Job:
    """Lay out /opt/ml for one training job as SageMaker does, and describe the job."""
    layout = context.layout
    ml_root = layout.fresh_ml_root(name)
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
        channel_name = channel["ChannelName"]
        destination = ml_root / "input" / "data" / channel_name
        layout.download(source["S3Uri"], destination, f"channel '{channel_name}'")
        channels[channel_name] = {
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
        python_module(command)
    except JobError as error:
        raise StepFailure(error.problem) from None
    environment = {k: text(v) for k, v in (spec.get("Environment") or {}).items()}
    return Job(
        name=name,
        command=tuple(command),
        ml_root=ml_root,
        log=layout.log(name),
        # Trials share the cores; a trial's folds run on what its share allows.
        environment={**environment, "MME_TRIAL_THREADS": str(threads)},
        max_seconds=(spec.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"),
    )


def finish_training(
    context: StepContext, job: Job, result: JobResult, spec: Mapping[str, Any]
) -> tuple[str | None, dict[str, float], str | None]:
    """(artifact URI, metrics, failure reason) of a finished training job."""
    from container.artifact import pack

    algorithm = spec.get("AlgorithmSpecification") or {}
    metrics = read_metrics(result.log_text(), algorithm.get("MetricDefinitions") or [])
    if not result.succeeded:
        failure = context.layout.failure(result, job.ml_root / "output" / "failure")
        return None, metrics, failure
    output_path = text((spec.get("OutputDataConfig") or {}).get("S3OutputPath", "")).rstrip("/")
    if not output_path:
        return None, metrics, "the training job has no OutputDataConfig.S3OutputPath"
    artifact = f"{output_path}/{job.name}/output/model.tar.gz"
    with tempfile.TemporaryDirectory(dir=job.ml_root.parent) as tmp:
        packed = pack(job.ml_root / "model", Path(tmp) / "model.tar.gz")
        context.home.s3.put_file(artifact, packed)
    context.layout.finish(job, result)
    return artifact, metrics, None


def read_metrics(log: str, definitions: list[dict[str, Any]]) -> dict[str, float]:
    """Each defined metric's last value in the log, read with its definition's regex (whatever
    metrics the definition declares: the objective, spreads, per-fold scores)."""
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


class TrainingStep(StepHandler):
    type = "Training"
    cache_attributes = (
        "AlgorithmSpecification",
        "CheckpointConfig",
        "DebugHookConfig",
        "DebugRuleConfigurations",
        "Environment",
        "HyperParameters",
        "InputDataConfig",
    )

    def run(
        self, context: StepContext, step: Mapping[str, Any], arguments: dict[str, Any]
    ) -> Outcome:
        name = job_name("pipelines", context.execution_id, step["Name"])
        hyperparameters = arguments.get("HyperParameters") or {}
        job = training_job(context, name, arguments, hyperparameters, context.runner.workers)
        result = context.runner.run(job)
        artifact, metrics, failure = finish_training(context, job, result, arguments)
        logs = [context.layout.relative(result.log)]
        if failure is not None:
            raise StepFailure(failure, logs=logs)
        properties = {
            "TrainingJobName": name,
            "TrainingJobStatus": "Completed",
            "HyperParameters": hyperparameters,
            "ModelArtifacts": {"S3ModelArtifacts": artifact},
            "FinalMetricDataList": [{"MetricName": k, "Value": v} for k, v in metrics.items()],
        }
        return Outcome(properties, {}, [str(artifact)], logs, {"TrainingJob": name})
