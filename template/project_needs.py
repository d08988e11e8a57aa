"""What the project asks of an AWS account, read from the code that asks for it.

Instances per SageMaker quota (the pipeline definitions `modelbuild.run` submits, the endpoint
stack's stage configs), the invoker's reserved concurrency per stage, and the project template's
constraints on the project name and the model package groups it creates. Nothing is re-typed
here: change a dataset's budget, a stage config or the template, and these follow. The account
preflight (template/preflight.py) compares them with what the account allows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from modelbuild import naming
from modeldeploy.build import CONFIG_DIR, load_stage_config, load_template
from modeldeploy.naming import STAGES
from template import PROJECT_TEMPLATE

if TYPE_CHECKING:
    from pathlib import Path

    from modelbuild.datasets import Dataset


USAGE_TRAINING: Final = "training job"
USAGE_PROCESSING: Final = "processing job"
USAGE_ENDPOINT: Final = "endpoint"


@dataclass(frozen=True)
class InstanceNeed:
    """Instances of one type the project runs at once, as SageMaker's quotas count them.

    Below `required` the project's jobs or endpoints are refused; below `peak` they are refused
    only at times (when autoscaling reaches its maximum, or while an endpoint update runs).
    """

    usage: str
    instance_type: str
    required: int
    peak: int
    reason: str

    @property
    def quota_name(self) -> str:
        # The SageMaker quota names in Service Quotas, e.g. "ml.m5.large for endpoint usage".
        return f"{self.instance_type} for {self.usage} usage"


def _resolve(value: Any, defaults: Mapping[str, Any]) -> Any:
    """A definition value, with a pipeline parameter reference replaced by its default."""
    if isinstance(value, dict) and set(value) == {"Get"}:
        reference = str(value["Get"])
        if reference.startswith("Parameters."):
            return defaults[reference.removeprefix("Parameters.")]
    return value


def definition_instances(definition: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """(usage, instance type) -> instances one execution of this definition holds at once.

    Steps of one kind are counted one at a time, not summed: in this pipeline each reads the
    previous one's output (Evaluate reads Tune's best model, Tune reads Preprocess's split), so
    they never overlap. A tuning step holds MaxParallelTrainingJobs trials at once.
    """
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}
    peak: dict[tuple[str, str], int] = {}

    def hold(usage: str, instance_type: Any, count: int) -> None:
        key = (usage, str(_resolve(instance_type, defaults)))
        peak[key] = max(peak.get(key, 0), count)

    for step in definition.get("Steps", []):
        arguments = step.get("Arguments", {})
        if step.get("Type") == "Processing":
            cluster = arguments["ProcessingResources"]["ClusterConfig"]
            hold(
                USAGE_PROCESSING,
                cluster["InstanceType"],
                int(_resolve(cluster["InstanceCount"], defaults)),
            )
        elif step.get("Type") == "Training":
            resources = arguments["ResourceConfig"]
            hold(
                USAGE_TRAINING,
                resources["InstanceType"],
                int(_resolve(resources["InstanceCount"], defaults)),
            )
        elif step.get("Type") == "Tuning":
            limits = arguments["HyperParameterTuningJobConfig"]["ResourceLimits"]
            parallel = int(_resolve(limits["MaxParallelTrainingJobs"], defaults))
            trainings = arguments.get("TrainingJobDefinitions") or [
                arguments["TrainingJobDefinition"]
            ]
            for training in trainings:
                resources = training.get("HyperParameterTuningResourceConfig") or training.get(
                    "ResourceConfig"
                )
                count = int(_resolve(resources["InstanceCount"], defaults))
                hold(USAGE_TRAINING, resources["InstanceType"], parallel * count)
    return peak


def pipeline_needs(
    region: str, datasets: Mapping[str, Dataset] | None = None
) -> list[InstanceNeed]:
    """Training and processing instances when `modelbuild.run` starts every dataset at once.

    The definitions are the ones the run submits (registry values, no overrides: the modelbuild
    buildspec passes none), built offline; the project's name, bucket and role do not change the
    resources they ask for, so stand-ins are used.
    """
    # The SageMaker SDK is heavy and optional (the `pipeline` extra): imported only here.
    from modelbuild.datasets import default_registry
    from modelbuild.pipeline import PipelineSettings, ProjectContext, build_definition

    datasets = default_registry() if datasets is None else datasets
    project = naming.DEFAULT_PROJECT_NAME
    context = ProjectContext(
        project_name=project,
        bucket=naming.local_bucket(project),
        role_arn=naming.local_role_arn(project),
        region=region,
    )
    totals: dict[tuple[str, str], int] = {}
    parts: dict[tuple[str, str], list[str]] = {}
    for name, dataset in datasets.items():
        settings = PipelineSettings.for_dataset(
            dataset,
            project_name=project,
            input_data_url=naming.s3_uri(context.bucket, naming.staged_data_key(name, "0" * 64)),
            image_uri=naming.LOCAL_IMAGE_URI,
        )
        for key, count in definition_instances(build_definition(settings, context)).items():
            totals[key] = totals.get(key, 0) + count
            parts.setdefault(key, []).append(f"{name} {count}")
    return [
        InstanceNeed(
            usage,
            instance_type,
            required=count,
            peak=count,
            reason="modelbuild.run starts every dataset's pipeline at once: "
            + ", ".join(parts[(usage, instance_type)]),
        )
        for (usage, instance_type), count in sorted(totals.items())
    ]


def stage_parameters(stage: str, config_dir: Path = CONFIG_DIR) -> dict[str, str]:
    """A stage's endpoint stack parameters: the stage config over the template's defaults."""
    defaults = {
        name: str(spec["Default"])
        for name, spec in load_template()["Parameters"].items()
        if "Default" in spec
    }
    return {**defaults, **load_stage_config(stage, config_dir)}


def endpoint_needs(config_dir: Path = CONFIG_DIR) -> list[InstanceNeed]:
    """Endpoint instances of every stage (all in this account and region).

    Required: each stage's EndpointInstanceCount (creating the endpoint stacks). Peak: every
    stage at MaxCapacity, plus the largest stage again, because an endpoint update (a new image
    or instance type) is blue/green: SageMaker runs the new fleet beside the old one while
    traffic shifts, and the deploy pipeline updates one stage at a time.
    """
    by_type: dict[str, list[tuple[str, int, int]]] = {}
    for stage in STAGES:
        parameters = stage_parameters(stage, config_dir)
        by_type.setdefault(parameters["EndpointInstanceType"], []).append(
            (stage, int(parameters["EndpointInstanceCount"]), int(parameters["MaxCapacity"]))
        )
    needs = []
    for instance_type, stages in sorted(by_type.items()):
        maxima = [maximum for _, _, maximum in stages]
        needs.append(
            InstanceNeed(
                USAGE_ENDPOINT,
                instance_type,
                required=sum(count for _, count, _ in stages),
                peak=sum(maxima) + max(maxima),
                reason=", ".join(
                    f"{stage} {count} (max {maximum})" for stage, count, maximum in stages
                )
                + "; a blue/green update briefly runs a second fleet",
            )
        )
    return needs


def invoker_reserved_concurrency(config_dir: Path = CONFIG_DIR) -> dict[str, int | None]:
    """Stage -> the invoker's reserved concurrency, None where it is left unreserved.

    Read at run time from the stage config over endpoint.yml's default: a positive number is
    reserved for the function; anything else (0, empty, absent) means Lambda's
    ReservedConcurrentExecutions is not set.
    """
    reserved: dict[str, int | None] = {}
    for stage in STAGES:
        value = stage_parameters(stage, config_dir).get("InvokerReservedConcurrency", "")
        number = int(value) if re.fullmatch(r"-?\d+", value.strip()) else 0
        reserved[stage] = number if number > 0 else None
    return reserved


def project_name_rule(template: Path = PROJECT_TEMPLATE) -> dict[str, Any]:
    """The SageMakerProjectName parameter of the project template (AllowedPattern, MaxLength)."""
    return dict(load_template(template)["Parameters"]["SageMakerProjectName"])


def template_datasets(template: Path = PROJECT_TEMPLATE) -> list[str]:
    """The datasets whose model package groups the project stack creates (Datasets' default)."""
    default = load_template(template)["Parameters"]["Datasets"]["Default"]
    return [name.strip() for name in str(default).split(",") if name.strip()]
