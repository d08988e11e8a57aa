"""The SageMaker Pipeline definition: the only module that imports the SageMaker Python SDK.

One pipeline per dataset (`naming.pipeline_name`), every dataset setting a pipeline parameter
whose default is that dataset's registry value, so "Start execution" in Studio repeats the last
CI run and the local runtime can run a definition with its defaults. Steps:

    Preprocess (processing) -> Tune (one tuning job over every family)
      -> Evaluate (processing: chooses a trial by the one-standard-error rule over its fold
         scores, scores that model on the holdout; property file, and the chosen model.tar.gz)
      -> CheckMetric (condition: holdout metric >= threshold)
           -> CheckModelChanged (condition: the model's sha256 != LatestModelSha256)
                -> Register-RegisterModel (model package in the dataset's group)
                else nothing: the execution succeeds with nothing registered
           else MetricBelowThreshold (fail, with the metric, its value and the threshold)

SageMaker never caches a register step, so without CheckModelChanged every run on unchanged data
(cached Tune, the same best model) would register a new version of the same artifact. The run
command looks up the group's latest version and passes the model checksum it carries
(CustomerMetadataProperties, written here at registration) as LatestModelSha256. An unchanged
model is not a failure: a Fail step would mark the execution Failed and notify the project, so
the check's else-branch is empty and CheckModelChanged's outcome False is what says "unchanged".

There is no refit step: in cv mode the training entry point fits the model on the whole training
split after cross-validation and saves it, so every trial's artifact already is a final model.

The tuner maximises the CV mean, but the top of many noisy means favours high-variance settings
on small data, so the registered model is not simply the tuner's best trial
(`TrainingJobSummaries[0]`): Evaluate receives every trial artifact of the tuning job (the S3
key prefix `<tuning output>/<tuning job name>-`, since SageMaker names trials
`<tuning job>-<NNN>-<hash>` and writes `<training job>/output/model.tar.gz`), reads each trial's
fold scores from its signature, applies the one-standard-error rule (`container.selection`),
records the choice and its reason in the report's `selection`, evaluates the chosen model and
outputs it; Register registers that output. Why the whole prefix and not the top K of
TrainingJobSummaries (`get_top_model_s3_uri(top_k=i)`): a reference to a summary that does not
exist, or to a failed trial's missing artifact, fails the execution, and the pipeline keeps at
most 50 summaries; the prefix holds exactly the trials that saved a model. The tuning job name
comes from the Tune step's properties, so a cached Tune step leads to its own trials, and the
prefix stays per tuning job although the output path is per dataset (which keeps the Tune step
cacheable and `mme trials` able to find artifacts). Each trial also prints its fold scores and
their spread as metrics (`container.metrics.metric_definitions`), so the training jobs show
them in FinalMetricDataList and in Studio.

The definition is built offline and deterministically: the image's own entry points run every
job (no code is uploaded), job names are left to SageMaker, and no timestamp or random name
appears, so step caching can match earlier executions.

Why this file is long: it is the only module that uses the SageMaker Python SDK, by design
(the rest of the project reads the definition it writes, through modelbuild.definition), so
every step of the pipeline is built here; `build_pipeline` reads top to bottom as the pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from container.errors import InputError
from container.families import FAMILIES
from container.layout import (
    ARTIFACT_FILE,
    EXPLAINABILITY_FILE,
    MODEL_SHA256_PATH,
    REGISTER_METRIC_PATH,
)
from container.metrics import (
    MAX_CV_FOLDS,
    METRIC_NAMES,
    MIN_CV_FOLDS,
    OBJECTIVE_METRIC_NAME,
    metric_definitions,
)
from container.search_space import CategoricalRange, ContinuousRange, IntegerRange, Range
from modelbuild import environment, naming
from modelbuild.datasets import Dataset
from modelbuild.naming import Outputs, Params, Steps

# The 2.x line is pinned on purpose (3.x cannot build a multi-algorithm tuning step); its import
# banner and config-file INFO lines would otherwise print on every CLI and CI run.
os.environ.setdefault(environment.SDK_SUPPRESS_V2_WARNING, "1")
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
# sagemaker.experiments calls logging.basicConfig(level=INFO) at import, which would make every
# boto3 client print credential INFO lines; the root logger is put back as it was.
_root_logger = logging.getLogger()
_root_state = (_root_logger.level, list(_root_logger.handlers))

import boto3  # noqa: E402
from sagemaker.estimator import Estimator  # noqa: E402
from sagemaker.inputs import TrainingInput  # noqa: E402
from sagemaker.model import Model  # noqa: E402
from sagemaker.model_metrics import MetricsSource, ModelMetrics  # noqa: E402
from sagemaker.parameter import (  # noqa: E402
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    ParameterRange,
)
from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor  # noqa: E402
from sagemaker.tuner import HyperparameterTuner  # noqa: E402
from sagemaker.workflow.condition_step import ConditionStep  # noqa: E402
from sagemaker.workflow.conditions import (  # noqa: E402
    ConditionEquals,
    ConditionGreaterThanOrEqualTo,
    ConditionNot,
)
from sagemaker.workflow.execution_variables import ExecutionVariables  # noqa: E402
from sagemaker.workflow.fail_step import FailStep  # noqa: E402
from sagemaker.workflow.functions import Join, JsonGet  # noqa: E402
from sagemaker.workflow.model_step import ModelStep  # noqa: E402
from sagemaker.workflow.parameters import (  # noqa: E402
    Parameter,
    ParameterFloat,
    ParameterInteger,
    ParameterString,
)
from sagemaker.workflow.pipeline import Pipeline  # noqa: E402
from sagemaker.workflow.pipeline_context import PipelineSession  # noqa: E402
from sagemaker.workflow.properties import PropertyFile  # noqa: E402
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TuningStep  # noqa: E402

_root_logger.setLevel(_root_state[0])
_root_logger.handlers[:] = _root_state[1]

ENTRYPOINT = ("python3", "-m", "container")
PROCESSING_ROOT = "/opt/ml/processing"
# "Rejected" is a valid API value but registering a model as rejected has no use.
APPROVAL_STATUSES = ("PendingManualApproval", "Approved")
# Grid needs categorical-only spaces and Hyperband needs per-epoch metrics; our trials print one
# final cross-validation score, so only these two strategies fit.
TUNING_STRATEGIES = ("Bayesian", "Random")
CACHE_EXPIRY = "P30D"
MAX_TRIAL_SECONDS = 3600
MAX_PROCESSING_SECONDS = 3600
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
# The SDK's ModelStep appends this to the name it is given (see naming.Steps.REGISTER).
_MODEL_STEP_SUFFIX = "-RegisterModel"
# Evaluate's input holding every trial artifact, and its output holding the chosen one (the
# model Register registers).
TRIALS_INPUT = "trials"
CHOSEN_MODEL_OUTPUT = "model"
# Where Evaluate's report names the chosen trial (container.selection.Selection.to_dict) and its
# family (the evaluated model's signature): the registered version's metadata.
CHOSEN_TRIAL_PATH = "selection.chosen_trial"
CHOSEN_ALGORITHM_PATH = "algorithm"
_INSTANCE_TYPE = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
_M = TypeVar("_M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectContext(_Strict):
    """Where a definition runs: not pipeline parameters, because they never change per run."""

    project_name: str = naming.DEFAULT_PROJECT_NAME
    bucket: str
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[\w+=,.@\-/]+$")]
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] = "us-east-1"

    @model_validator(mode="after")
    def _names(self) -> ProjectContext:
        naming.check_project_name(self.project_name)
        naming.check_bucket(self.bucket)
        return self


class PipelineSettings(_Strict):
    """The values of the pipeline parameters for one dataset (the definition's defaults)."""

    dataset: str
    input_data_url: Annotated[str, Field(pattern=r"^s3://[^/]+/.+")]
    image_uri: Annotated[str, Field(pattern=r"^\S+$", max_length=255)]
    processing_instance_type: Annotated[str, Field(pattern=_INSTANCE_TYPE)] = DEFAULT_INSTANCE_TYPE
    training_instance_type: Annotated[str, Field(pattern=_INSTANCE_TYPE)] = DEFAULT_INSTANCE_TYPE
    inference_instance_type: Annotated[str, Field(pattern=_INSTANCE_TYPE)] = DEFAULT_INSTANCE_TYPE
    target: Annotated[str, Field(min_length=1)]
    positive_class: str = ""
    categorical: str = ""
    test_size: Annotated[float, Field(gt=0.0, lt=1.0)]
    random_state: Annotated[int, Field(ge=0)]
    cv_folds: Annotated[int, Field(ge=MIN_CV_FOLDS, le=MAX_CV_FOLDS)]
    metric: Literal[METRIC_NAMES]  # type: ignore[valid-type]
    tuning_strategy: Literal[TUNING_STRATEGIES] = "Bayesian"  # type: ignore[valid-type]
    max_jobs: Annotated[int, Field(ge=1, le=500)] = 60
    max_parallel_jobs: Annotated[int, Field(ge=1, le=100)] = 6
    # A wall-time budget for the whole search, fixed in the definition (not a parameter): the
    # tuning job's ResourceLimits.MaxRuntimeInSeconds, within the API's range.
    max_runtime_seconds: Annotated[int, Field(ge=120, le=15_768_000)] | None = None
    threshold: Annotated[float, Field(ge=0.0, le=1.0)]
    approval_status: Literal[APPROVAL_STATUSES] = "PendingManualApproval"  # type: ignore[valid-type]
    model_package_group: str
    # The group's latest version to compare the new model with; "" and 0: none (register).
    latest_model_sha256: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")] = ""
    latest_model_version: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSettings:
        if self.max_parallel_jobs > self.max_jobs:
            raise ValueError(
                f"max_parallel_jobs ({self.max_parallel_jobs}) exceeds max_jobs ({self.max_jobs})"
            )
        if self.max_jobs < len(FAMILIES):
            raise ValueError(
                f"max_jobs ({self.max_jobs}) is below the number of algorithm families "
                f"({len(FAMILIES)}); some families would never be tried"
            )
        try:
            naming.check_model_package_group_name(self.model_package_group)
        except InputError as error:
            raise ValueError(error.problem) from None
        return self

    @classmethod
    def for_dataset(
        cls,
        dataset: Dataset,
        *,
        project_name: str,
        input_data_url: str,
        image_uri: str,
        **overrides: Any,
    ) -> PipelineSettings:
        """Registry values, then explicit overrides (None means 'keep the registry value')."""
        values: dict[str, Any] = {
            "dataset": dataset.name,
            "input_data_url": input_data_url,
            "image_uri": image_uri,
            "target": dataset.target,
            "positive_class": dataset.positive_class or "",
            "categorical": ",".join(dataset.categorical),
            "test_size": dataset.test_size,
            "random_state": dataset.random_state,
            "cv_folds": dataset.cv_folds,
            "metric": dataset.metric,
            "max_jobs": dataset.budget.max_jobs,
            "max_parallel_jobs": dataset.budget.max_parallel_jobs,
            "max_runtime_seconds": dataset.budget.max_runtime_seconds,
            "threshold": dataset.threshold,
            "model_package_group": naming.model_package_group_name(project_name, dataset.name),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return checked(cls, values, dataset.name)

    def parameter_values(self) -> dict[str, str | int | float]:
        """Parameter name -> value, as StartPipelineExecution and the definition's defaults take."""
        return {
            Params.DATASET: self.dataset,
            Params.INPUT_DATA: self.input_data_url,
            Params.IMAGE: self.image_uri,
            Params.PROCESSING_INSTANCE: self.processing_instance_type,
            Params.TRAINING_INSTANCE: self.training_instance_type,
            Params.INFERENCE_INSTANCE: self.inference_instance_type,
            Params.TARGET: self.target,
            Params.POSITIVE_CLASS: self.positive_class,
            Params.CATEGORICAL: self.categorical,
            Params.TEST_SIZE: self.test_size,
            Params.RANDOM_STATE: self.random_state,
            Params.CV_FOLDS: self.cv_folds,
            Params.METRIC: self.metric,
            Params.STRATEGY: self.tuning_strategy,
            Params.MAX_JOBS: self.max_jobs,
            Params.MAX_PARALLEL_JOBS: self.max_parallel_jobs,
            Params.THRESHOLD: self.threshold,
            Params.APPROVAL_STATUS: self.approval_status,
            Params.MODEL_PACKAGE_GROUP: self.model_package_group,
            Params.LATEST_MODEL_SHA256: self.latest_model_sha256,
            Params.LATEST_MODEL_VERSION: self.latest_model_version,
        }


def checked(model: type[_M], values: dict[str, Any], dataset: str | None = None) -> _M:
    """Validate into `model`; a bad value becomes one InputError naming each field and problem."""
    try:
        return model(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            + (f" (got {e['input']!r})" if e["loc"] else "")
            for e in error.errors()
        )
        raise InputError(problems, dataset=dataset) from None


def _parameters(settings: PipelineSettings) -> dict[str, Parameter]:
    values = settings.parameter_values()
    enums: dict[str, list[str]] = {
        # A pipeline belongs to one dataset: pinning the name keeps an execution from writing
        # another dataset's data into this dataset's prefixes and model package group.
        Params.DATASET: [settings.dataset],
        Params.METRIC: list(METRIC_NAMES),
        Params.STRATEGY: list(TUNING_STRATEGIES),
        Params.APPROVAL_STATUS: list(APPROVAL_STATUSES),
    }
    parameters: dict[str, Parameter] = {}
    for name, value in values.items():
        if isinstance(value, int):
            parameters[name] = ParameterInteger(name=name, default_value=value)
        elif isinstance(value, float):
            parameters[name] = ParameterFloat(name=name, default_value=value)
        else:
            parameters[name] = ParameterString(
                name=name, default_value=value, enum_values=enums.get(name)
            )
    return parameters


def _search_range(spec: Range) -> ParameterRange:
    if isinstance(spec, IntegerRange):
        return IntegerParameter(spec.low, spec.high, scaling_type=spec.scale)
    if isinstance(spec, ContinuousRange):
        return ContinuousParameter(spec.low, spec.high, scaling_type=spec.scale)
    if isinstance(spec, CategoricalRange):
        return CategoricalParameter(list(spec.values))
    raise TypeError(f"unsupported search range {spec!r}")


def _flag(name: str, value: Any) -> Join | str:
    """`--name=value` as one argument: a value starting with '-' or empty still parses."""
    if isinstance(value, str):
        return f"--{name}={value}"
    return Join(on="", values=[f"--{name}=", value])


def _local(name: str) -> str:
    return f"{PROCESSING_ROOT}/{name}"


@contextmanager
def _quiet_sdk() -> Iterator[None]:
    """The SDK logs a warning for every job name it drops; for a pipeline that is the point."""
    logger = logging.getLogger("sagemaker")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Running within a PipelineSession")
            yield
    finally:
        logger.setLevel(level)


def _session(context: ProjectContext) -> PipelineSession:
    session = PipelineSession(
        boto_session=boto3.Session(region_name=context.region), default_bucket=context.bucket
    )
    # SDK defaults from a user's config.yaml (VPC, KMS keys, tags) must not leak into the
    # definition: the same code has to give the same definition on every machine.
    session.sagemaker_config = {}
    return session


def build_pipeline(settings: PipelineSettings, context: ProjectContext) -> Pipeline:
    dataset = settings.dataset
    with _quiet_sdk():
        session = _session(context)
        p = _parameters(settings)
        cache = CacheConfig(enable_caching=True, expire_after=CACHE_EXPIRY)

        def output_uri(name: str) -> Join:
            return Join(
                on="/",
                values=[
                    "s3:/",
                    context.bucket,
                    naming.pipeline_output_prefix(dataset),
                    ExecutionVariables.PIPELINE_EXECUTION_ID,
                    name,
                ],
            )

        def processor(command: str) -> Processor:
            return Processor(
                role=context.role_arn,
                image_uri=p[Params.IMAGE],
                instance_count=1,
                instance_type=p[Params.PROCESSING_INSTANCE],
                entrypoint=[*ENTRYPOINT, command],
                max_runtime_in_seconds=MAX_PROCESSING_SECONDS,
                sagemaker_session=session,
            )

        step_preprocess = ProcessingStep(
            name=Steps.PREPROCESS,
            description="Validate the dataset and write a stratified train/test split",
            cache_config=cache,
            step_args=processor("preprocess").run(
                inputs=[
                    ProcessingInput(
                        input_name="input",
                        source=p[Params.INPUT_DATA],
                        destination=_local("input"),
                    )
                ],
                outputs=[
                    ProcessingOutput(
                        output_name=name, source=_local(name), destination=output_uri(name)
                    )
                    for name in (Outputs.TRAIN, Outputs.TEST)
                ],
                arguments=[
                    _flag("dataset", p[Params.DATASET]),
                    _flag("target", p[Params.TARGET]),
                    _flag("positive-class", p[Params.POSITIVE_CLASS]),
                    _flag("categorical", p[Params.CATEGORICAL]),
                    _flag("test-size", p[Params.TEST_SIZE]),
                    _flag("random-state", p[Params.RANDOM_STATE]),
                    _flag("cv-folds", p[Params.CV_FOLDS]),
                    _flag("input", _local("input")),
                    _flag("train-dir", _local(Outputs.TRAIN)),
                    _flag("test-dir", _local(Outputs.TEST)),
                ],
            ),
        )
        split = step_preprocess.properties.ProcessingOutputConfig.Outputs

        tuning_prefix = naming.tuning_output_prefix(dataset)
        estimators = {
            family: Estimator(
                image_uri=p[Params.IMAGE],
                role=context.role_arn,
                instance_count=1,
                instance_type=p[Params.TRAINING_INSTANCE],
                output_path=naming.s3_uri(context.bucket, tuning_prefix),
                max_run=MAX_TRIAL_SECONDS,
                hyperparameters={
                    "family": family,
                    "mode": "cv",
                    "metric": p[Params.METRIC],
                    "cv_folds": p[Params.CV_FOLDS],
                    "random_state": p[Params.RANDOM_STATE],
                },
                disable_profiler=True,
                sagemaker_session=session,
            )
            for family in FAMILIES
        }
        tuner = HyperparameterTuner.create(
            estimator_dict=estimators,
            objective_metric_name_dict=dict.fromkeys(FAMILIES, OBJECTIVE_METRIC_NAME),
            hyperparameter_ranges_dict={
                name: {spec.name: _search_range(spec) for spec in family.space}
                for name, family in FAMILIES.items()
            },
            # The objective, the fold spread and every fold's score (up to MAX_CV_FOLDS, since
            # the fold count is a parameter): FinalMetricDataList and Studio's trial view.
            metric_definitions_dict={name: metric_definitions() for name in FAMILIES},
            # Every metric in container.metrics is higher-is-better.
            objective_type="Maximize",
            strategy=p[Params.STRATEGY],
            max_jobs=p[Params.MAX_JOBS],
            max_parallel_jobs=p[Params.MAX_PARALLEL_JOBS],
            max_runtime_in_seconds=settings.max_runtime_seconds,
            random_seed=p[Params.RANDOM_STATE],
        )
        step_tune = TuningStep(
            name=Steps.TUNE,
            description=f"Cross-validated search over {len(FAMILIES)} algorithm families",
            cache_config=cache,
            step_args=tuner.fit(
                inputs={
                    family: {
                        "train": TrainingInput(
                            split[Outputs.TRAIN].S3Output.S3Uri, content_type="text/csv"
                        )
                    }
                    for family in FAMILIES
                },
                # Framework class metadata is for the SDK's attach(); our trainer rejects it.
                include_cls_metadata=dict.fromkeys(FAMILIES, False),
            ),
        )
        # Every trial artifact of this tuning job and nothing else: the key prefix ends with the
        # job's name and the '-' that SageMaker puts before each trial's number.
        trial_artifacts = Join(
            on="",
            values=[
                naming.s3_uri(context.bucket, tuning_prefix) + "/",
                step_tune.properties.HyperParameterTuningJobName,
                "-",
            ],
        )

        report = PropertyFile(
            name=naming.EVALUATION_PROPERTY_FILE,
            output_name=Outputs.EVALUATION,
            path=naming.EVALUATION_REPORT_FILE,
        )
        step_evaluate = ProcessingStep(
            name=Steps.EVALUATE,
            description=(
                "Choose a trial by the one-standard-error rule over its fold scores and score "
                "it on the holdout split"
            ),
            cache_config=cache,
            property_files=[report],
            step_args=processor("evaluate").run(
                inputs=[
                    ProcessingInput(
                        input_name=TRIALS_INPUT,
                        source=trial_artifacts,
                        destination=_local(TRIALS_INPUT),
                    ),
                    ProcessingInput(
                        input_name=Outputs.TEST,
                        source=split[Outputs.TEST].S3Output.S3Uri,
                        destination=_local(Outputs.TEST),
                    ),
                ],
                outputs=[
                    ProcessingOutput(
                        output_name=Outputs.EVALUATION,
                        source=_local(Outputs.EVALUATION),
                        destination=output_uri(Outputs.EVALUATION),
                    ),
                    ProcessingOutput(
                        output_name=CHOSEN_MODEL_OUTPUT,
                        source=_local(CHOSEN_MODEL_OUTPUT),
                        destination=output_uri(CHOSEN_MODEL_OUTPUT),
                    ),
                ],
                arguments=[
                    _flag("metric", p[Params.METRIC]),
                    _flag("trials", _local(TRIALS_INPUT)),
                    _flag("tuning-job", step_tune.properties.HyperParameterTuningJobName),
                    _flag("model-output", _local(CHOSEN_MODEL_OUTPUT)),
                    _flag("test-dir", _local(Outputs.TEST)),
                    _flag("output-dir", _local(Outputs.EVALUATION)),
                ],
            ),
        )
        evaluate_outputs = step_evaluate.properties.ProcessingOutputConfig.Outputs
        evaluation_uri = evaluate_outputs[Outputs.EVALUATION].S3Output.S3Uri
        # The bytes Evaluate chose and scored; the report's model_sha256 is their checksum.
        chosen_model = Join(
            on="/", values=[evaluate_outputs[CHOSEN_MODEL_OUTPUT].S3Output.S3Uri, ARTIFACT_FILE]
        )
        holdout_value = JsonGet(
            step_name=step_evaluate.name, property_file=report, json_path=REGISTER_METRIC_PATH
        )
        model_sha256 = JsonGet(
            step_name=step_evaluate.name, property_file=report, json_path=MODEL_SHA256_PATH
        )
        chosen_trial = JsonGet(
            step_name=step_evaluate.name, property_file=report, json_path=CHOSEN_TRIAL_PATH
        )
        chosen_algorithm = JsonGet(
            step_name=step_evaluate.name, property_file=report, json_path=CHOSEN_ALGORITHM_PATH
        )

        register_args = Model(
            image_uri=p[Params.IMAGE],
            model_data=chosen_model,
            role=context.role_arn,
            sagemaker_session=session,
        ).register(
            model_package_group_name=p[Params.MODEL_PACKAGE_GROUP],
            approval_status=p[Params.APPROVAL_STATUS],
            content_types=["text/csv", "application/json"],
            response_types=["application/json"],
            inference_instances=[p[Params.INFERENCE_INSTANCE]],
            description=Join(
                on="",
                values=[
                    f"{dataset}: the tuned model chosen by the one-standard-error rule on "
                    "cross-validated ",
                    p[Params.METRIC],
                ],
            ),
            customer_metadata_properties={
                "dataset": p[Params.DATASET],
                "metric": p[Params.METRIC],
                "algorithm": chosen_algorithm,
                "training-job": chosen_trial,
                naming.MODEL_SHA256_METADATA_KEY: model_sha256,
            },
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(
                    s3_uri=Join(on="/", values=[evaluation_uri, naming.EVALUATION_REPORT_FILE]),
                    content_type="application/json",
                ),
                # Permutation importance in Clarify's analysis.json layout: Studio's
                # Explainability tab of the model version renders this slot.
                explainability=MetricsSource(
                    s3_uri=Join(on="/", values=[evaluation_uri, EXPLAINABILITY_FILE]),
                    content_type="application/json",
                ),
            ),
        )
        step_register = ModelStep(
            name=Steps.REGISTER.removesuffix(_MODEL_STEP_SUFFIX), step_args=register_args
        )
        step_fail = FailStep(
            name=Steps.FAIL,
            error_message=Join(
                on=" ",
                values=[
                    "holdout",
                    p[Params.METRIC],
                    "=",
                    holdout_value,
                    "is below the registration threshold",
                    p[Params.THRESHOLD],
                    "; the model was not registered",
                ],
            ),
        )
        step_check_changed = ConditionStep(
            name=Steps.CHECK_CHANGED,
            description=(
                "Register only a model that differs from the group's latest version; "
                "an unchanged model ends the execution successfully, registering nothing"
            ),
            conditions=[
                ConditionNot(
                    expression=ConditionEquals(
                        left=model_sha256, right=p[Params.LATEST_MODEL_SHA256]
                    )
                )
            ],
            if_steps=[step_register],
            else_steps=[],
        )
        step_check = ConditionStep(
            name=Steps.CHECK,
            description="Register only a model whose holdout metric clears the threshold",
            conditions=[
                ConditionGreaterThanOrEqualTo(left=holdout_value, right=p[Params.THRESHOLD])
            ],
            if_steps=[step_check_changed],
            else_steps=[step_fail],
        )
        return Pipeline(
            name=naming.pipeline_name(context.project_name, dataset),
            parameters=list(p.values()),
            steps=[step_preprocess, step_tune, step_evaluate, step_check],
            # Experiment tracking would add Experiments/Trials resources per execution and a
            # feature the local runtime has no counterpart for.
            pipeline_experiment_config=None,
            sagemaker_session=session,
        )


def build_definition(settings: PipelineSettings, context: ProjectContext) -> dict[str, Any]:
    pipeline = build_pipeline(settings, context)
    with _quiet_sdk():
        return json.loads(pipeline.definition())


def definition_text(definition: dict[str, Any]) -> str:
    """The JSON that is uploaded and written (the SDK's key order, which is deterministic)."""
    return json.dumps(definition, indent=2) + "\n"
