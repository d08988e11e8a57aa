"""What an execution and its steps came to, in words: one reading for `mme executions`/`mme
steps` (local.commands.executions) and the web view (local.ui), so the two cannot disagree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelbuild import naming

if TYPE_CHECKING:
    from local.executions import ExecutionRecord, StepRecord


def execution_result(record: ExecutionRecord) -> str:
    """What an execution came to, in one line: the version it registered, or why not."""
    register = record.step(naming.Steps.REGISTER)
    if register is not None and register.status == "Succeeded":
        return f"registered version {register.properties.get('ModelPackageVersion')}"
    if record.failure_reason:
        return record.failure_reason.splitlines()[0]
    return unchanged_reason(record) or ""


def unchanged_reason(record: ExecutionRecord) -> str | None:
    """Why a succeeded execution registered nothing: CheckModelChanged found the same model."""
    # Imported here: modelbuild.versions is only needed for this message.
    from modelbuild.versions import unchanged_message

    check = record.step(naming.Steps.CHECK_CHANGED)
    if check is None or check.status != "Succeeded" or check.properties.get("Outcome") is not False:
        return None
    return unchanged_message(
        int(record.parameters.get(naming.Params.LATEST_MODEL_VERSION, 0)),
        str(record.parameters.get(naming.Params.LATEST_MODEL_SHA256, "")),
    )


def step_output(step: StepRecord) -> str:
    """A succeeded step's main output (an S3 URI, the best trial, an outcome); "" otherwise."""
    properties = step.properties
    if step.status != "Succeeded":
        return ""
    if step.type == "Processing":
        outputs = properties.get("ProcessingOutputConfig", {}).get("Outputs", [])
        return "\n".join(o["S3Output"]["S3Uri"] for o in outputs)
    if step.type == "Tuning":
        best = properties.get("BestTrainingJob", {})
        objective = best.get("FinalHyperParameterTuningJobObjectiveMetric", {})
        counts = properties.get("TrainingJobStatusCounters", {})
        value = objective.get("Value")
        score = f", {objective.get('MetricName')} {value:.4f}" if isinstance(value, float) else ""
        return (
            f"best {best.get('TrainingJobName')} ({best.get('TrainingJobDefinitionName')}{score}); "
            f"{counts.get('Completed', 0)} completed, {counts.get('NonRetryableError', 0)} failed"
        )
    if step.type == "Training":
        return str(properties.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""))
    if step.type == "Condition":
        return f"outcome {properties.get('Outcome')}"
    if step.type == "RegisterModel":
        return str(properties.get("ModelPackageArn", ""))
    return ""
