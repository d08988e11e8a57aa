"""The pipeline definition: its steps, parameters, wiring, determinism and container contracts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from container.errors import InputError
from container.families import FAMILIES
from container.layout import MODEL_SHA256_PATH, REGISTER_METRIC_PATH
from container.metrics import (
    CV_STD_METRIC_NAME,
    OBJECTIVE_METRIC_NAME,
    OBJECTIVE_METRIC_REGEX,
    fold_metric_name,
    metric_definitions,
)
from container.search_space import CategoricalRange, ContinuousRange, IntegerRange
from modelbuild import naming
from modelbuild.datasets import default_registry, get_dataset, materialize
from modelbuild.naming import Outputs, Params, Steps
from tests.pipeline_fixtures import (
    BUCKET,
    IMAGE_URI,
    PROJECT,
    ROLE_ARN,
    Built,
    build,
    definitions,
    offline,
    step,
)

__all__ = ["definitions", "offline"]  # fixtures used by name
# The SDK's dependencies carry regex literals that Python 3.12+ warns about when compiling them.
pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")


def _get(reference: str) -> dict[str, str]:
    return {"Get": reference}


def _output(step_name: str, output: str) -> dict[str, str]:
    return _get(f"Steps.{step_name}.ProcessingOutputConfig.Outputs['{output}'].S3Output.S3Uri")


def test_a_definition_is_built_for_every_registered_dataset(
    definitions: dict[str, Built],
) -> None:
    assert set(definitions) == set(default_registry())
    for built in definitions.values():
        top = [(s["Name"], s["Type"]) for s in built.definition["Steps"]]
        assert top == [
            (Steps.PREPROCESS, "Processing"),
            (Steps.TUNE, "Tuning"),
            (Steps.EVALUATE, "Processing"),
            (Steps.CHECK, "Condition"),
        ]
        check = step(built.definition, Steps.CHECK)["Arguments"]
        assert [(s["Name"], s["Type"]) for s in check["IfSteps"]] == [
            (Steps.CHECK_CHANGED, "Condition")
        ]
        assert [(s["Name"], s["Type"]) for s in check["ElseSteps"]] == [(Steps.FAIL, "Fail")]
        # An unchanged model is not a failure: the else-branch holds no Fail step.
        changed = step(built.definition, Steps.CHECK_CHANGED)["Arguments"]
        assert [(s["Name"], s["Type"]) for s in changed["IfSteps"]] == [
            (Steps.REGISTER, "RegisterModel")
        ]
        assert changed["ElseSteps"] == []


def test_parameters_default_to_the_registry_values(definitions: dict[str, Built]) -> None:
    for name, built in definitions.items():
        dataset = get_dataset(name)
        declared = {p["Name"]: p for p in built.definition["Parameters"]}
        defaults = {n: p["DefaultValue"] for n, p in declared.items()}
        assert defaults == built.settings.parameter_values()
        assert defaults[Params.DATASET] == name
        assert declared[Params.DATASET]["EnumValues"] == [name]
        assert defaults[Params.TARGET] == dataset.target
        assert defaults[Params.METRIC] == dataset.metric
        assert defaults[Params.THRESHOLD] == dataset.threshold
        assert defaults[Params.CV_FOLDS] == dataset.cv_folds
        assert defaults[Params.MAX_JOBS] == dataset.budget.max_jobs
        assert defaults[Params.MAX_PARALLEL_JOBS] == dataset.budget.max_parallel_jobs
        assert defaults[Params.APPROVAL_STATUS] == "PendingManualApproval"
        assert declared[Params.APPROVAL_STATUS]["EnumValues"] == [
            "PendingManualApproval",
            "Approved",
        ]
        assert defaults[Params.MODEL_PACKAGE_GROUP] == f"{PROJECT}-{name}"
        # Nothing to compare with unless the run command passes the group's latest version.
        assert defaults[Params.LATEST_MODEL_SHA256] == ""
        assert defaults[Params.LATEST_MODEL_VERSION] == 0
        assert defaults[Params.IMAGE] == IMAGE_URI
        assert declared[Params.MAX_JOBS]["Type"] == "Integer"
        assert declared[Params.THRESHOLD]["Type"] == "Float"
        assert re.fullmatch(
            rf"s3://{BUCKET}/datasets/{name}/[0-9a-f]{{64}}\.csv", defaults[Params.INPUT_DATA]
        )


def test_every_job_runs_the_image_entry_points_and_uploads_no_code(
    definitions: dict[str, Built],
) -> None:
    definition = definitions["breast-cancer"].definition
    for name, command in ((Steps.PREPROCESS, "preprocess"), (Steps.EVALUATE, "evaluate")):
        app = step(definition, name)["Arguments"]["AppSpecification"]
        assert app["ContainerEntrypoint"] == ["python3", "-m", "container", command]
        assert app["ImageUri"] == _get(f"Parameters.{Params.IMAGE}")
        assert step(definition, name)["Arguments"]["RoleArn"] == ROLE_ARN
    for job in step(definition, Steps.TUNE)["Arguments"]["TrainingJobDefinitions"]:
        assert job["AlgorithmSpecification"]["TrainingImage"] == _get(f"Parameters.{Params.IMAGE}")
        assert not any(k.startswith(("sagemaker_", "_")) for k in job["StaticHyperParameters"])
    text = json.dumps(definition)
    assert "sourcedir" not in text and "/code/" not in text


def test_the_definition_is_deterministic(definitions: dict[str, Built]) -> None:
    again = build("wine").definition
    assert again == definitions["wine"].definition
    text = json.dumps(again)
    # No timestamped names (the SDK's sagemaker_job_name is one) and no experiment tracking.
    assert not re.search(r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}", text)
    assert "sagemaker_job_name" not in text
    assert again.get("PipelineExperimentConfig") is None
    for s in again["Steps"]:
        if s["Type"] in ("Processing", "Tuning"):
            assert s["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}


def _sdk_range(spec: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, IntegerRange):
        return "IntegerParameterRanges", {
            "Name": spec.name,
            "MinValue": str(spec.low),
            "MaxValue": str(spec.high),
            "ScalingType": spec.scale,
        }
    if isinstance(spec, ContinuousRange):
        return "ContinuousParameterRanges", {
            "Name": spec.name,
            "MinValue": str(spec.low),
            "MaxValue": str(spec.high),
            "ScalingType": spec.scale,
        }
    assert isinstance(spec, CategoricalRange)
    return "CategoricalParameterRanges", {"Name": spec.name, "Values": list(spec.values)}


def test_one_tuning_job_searches_every_family_with_the_shared_spaces(
    definitions: dict[str, Built],
) -> None:
    from container.train import STATIC_KEYS

    tune = step(definitions["breast-cancer"].definition, Steps.TUNE)["Arguments"]
    config = tune["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == _get(f"Parameters.{Params.STRATEGY}")
    assert config["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": _get(f"Parameters.{Params.MAX_JOBS}"),
        "MaxParallelTrainingJobs": _get(f"Parameters.{Params.MAX_PARALLEL_JOBS}"),
    }
    jobs = {job["DefinitionName"]: job for job in tune["TrainingJobDefinitions"]}
    assert set(jobs) == set(FAMILIES)
    for name, family in FAMILIES.items():
        job = jobs[name]
        expected: dict[str, list[dict[str, Any]]] = {
            "IntegerParameterRanges": [],
            "ContinuousParameterRanges": [],
            "CategoricalParameterRanges": [],
        }
        for spec in family.space:
            kind, entry = _sdk_range(spec)
            expected[kind].append(entry)
        ranges = job["HyperParameterRanges"]
        for kind, entries in expected.items():
            assert sorted(ranges[kind], key=lambda r: r["Name"]) == sorted(
                entries, key=lambda r: r["Name"]
            ), (name, kind)
        static = job["StaticHyperParameters"]
        assert set(static) == set(STATIC_KEYS)
        assert static["family"] == name and static["mode"] == "cv"
        assert static["metric"] == _get(f"Parameters.{Params.METRIC}")
        assert job["TuningObjective"] == {"Type": "Maximize", "MetricName": OBJECTIVE_METRIC_NAME}
        declared = job["AlgorithmSpecification"]["MetricDefinitions"]
        assert declared[0] == {"Name": OBJECTIVE_METRIC_NAME, "Regex": OBJECTIVE_METRIC_REGEX}
        # The fold spread and each fold's score, from the one list container.metrics keeps.
        assert declared == metric_definitions()
        channels = job["InputDataConfig"]
        assert [c["ChannelName"] for c in channels] == ["train"]
        assert channels[0]["DataSource"]["S3DataSource"]["S3Uri"] == _output(
            Steps.PREPROCESS, Outputs.TRAIN
        )


def test_a_time_budget_becomes_the_tuning_jobs_max_runtime() -> None:
    """`budget.max_runtime_seconds` is ResourceLimits.MaxRuntimeInSeconds, within botocore's range."""
    import botocore.session

    from modelbuild.pipeline import PipelineSettings

    shape = (
        botocore.session.get_session().get_service_model("sagemaker").shape_for("ResourceLimits")
    )
    bounds = shape.members["MaxRuntimeInSeconds"].metadata
    timed = build("wine", max_runtime_seconds=bounds["min"])
    limits = step(timed.definition, Steps.TUNE)["Arguments"]["HyperParameterTuningJobConfig"][
        "ResourceLimits"
    ]
    assert limits["MaxRuntimeInSeconds"] == bounds["min"]
    assert set(limits) <= set(shape.members)
    for outside in (bounds["min"] - 1, bounds["max"] + 1):
        with pytest.raises(InputError, match="max_runtime_seconds"):
            PipelineSettings.for_dataset(
                get_dataset("wine"), project_name=PROJECT, input_data_url="s3://b/k.csv",
                image_uri=IMAGE_URI, max_runtime_seconds=outside,
            )  # fmt: skip
    from modelbuild.datasets import Budget

    budgeted = get_dataset("wine").model_copy(update={"budget": Budget(max_runtime_seconds=900)})
    settings = PipelineSettings.for_dataset(
        budgeted, project_name=PROJECT, input_data_url="s3://b/k.csv", image_uri=IMAGE_URI
    )
    assert settings.max_runtime_seconds == 900


def test_steps_are_wired_to_the_right_outputs(definitions: dict[str, Built]) -> None:
    from modelbuild.pipeline import (
        CHOSEN_ALGORITHM_PATH,
        CHOSEN_MODEL_OUTPUT,
        CHOSEN_TRIAL_PATH,
        TRIALS_INPUT,
    )

    definition = definitions["wine"].definition
    tune = step(definition, Steps.TUNE)["Arguments"]
    output_paths = {j["OutputDataConfig"]["S3OutputPath"] for j in tune["TrainingJobDefinitions"]}
    assert output_paths == {f"s3://{BUCKET}/{naming.tuning_output_prefix('wine')}"}
    # Evaluate gets every trial artifact of this execution's tuning job, and only those: the key
    # prefix <S3OutputPath>/<tuning job>- (trials are <tuning job>-<NNN>-<hash>, each artifact at
    # <training job>/output/model.tar.gz), the job's name read from the Tune step, so a cached
    # Tune step leads to its own trials. Not the top trial alone (TrainingJobSummaries[0]).
    tuning_job = _get(f"Steps.{Steps.TUNE}.HyperParameterTuningJobName")
    trials = {
        "Std:Join": {
            "On": "",
            "Values": [f"s3://{BUCKET}/{naming.tuning_output_prefix('wine')}/", tuning_job, "-"],
        }
    }
    evaluate = step(definition, Steps.EVALUATE)
    inputs = {i["InputName"]: i["S3Input"] for i in evaluate["Arguments"]["ProcessingInputs"]}
    assert set(inputs) == {TRIALS_INPUT, Outputs.TEST}
    assert inputs[TRIALS_INPUT]["S3Uri"] == trials
    assert inputs[TRIALS_INPUT]["S3DataType"] == "S3Prefix"
    assert "TrainingJobSummaries" not in json.dumps(evaluate)
    assert inputs[Outputs.TEST]["S3Uri"] == _output(Steps.PREPROCESS, Outputs.TEST)
    arguments = evaluate["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert f"--trials={inputs[TRIALS_INPUT]['LocalPath']}" in arguments
    assert {"Std:Join": {"On": "", "Values": ["--tuning-job=", tuning_job]}} in arguments
    outputs = {
        o["OutputName"]: o["S3Output"]
        for o in evaluate["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    }
    assert set(outputs) == {Outputs.EVALUATION, CHOSEN_MODEL_OUTPUT}
    assert f"--model-output={outputs[CHOSEN_MODEL_OUTPUT]['LocalPath']}" in arguments
    # Register registers the model Evaluate chose, scored and wrote: its output, not a trial's.
    chosen_model = {
        "Std:Join": {
            "On": "/",
            "Values": [_output(Steps.EVALUATE, CHOSEN_MODEL_OUTPUT), "model.tar.gz"],
        }
    }
    assert evaluate["PropertyFiles"] == [
        {
            "PropertyFileName": naming.EVALUATION_PROPERTY_FILE,
            "OutputName": Outputs.EVALUATION,
            "FilePath": naming.EVALUATION_REPORT_FILE,
        }
    ]
    register = step(definition, Steps.REGISTER)["Arguments"]
    container = register["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == chosen_model
    assert "TrainingJobSummaries" not in json.dumps(register)
    assert register["InferenceSpecification"]["SupportedContentTypes"] == [
        "text/csv",
        "application/json",
    ]
    assert register["ModelMetrics"]["ModelQuality"]["Statistics"] == {
        "ContentType": "application/json",
        "S3Uri": {
            "Std:Join": {
                "On": "/",
                "Values": [
                    _output(Steps.EVALUATE, Outputs.EVALUATION),
                    naming.EVALUATION_REPORT_FILE,
                ],
            }
        },
    }
    assert register["ModelPackageGroupName"] == _get(f"Parameters.{Params.MODEL_PACKAGE_GROUP}")
    assert register["ModelApprovalStatus"] == _get(f"Parameters.{Params.APPROVAL_STATUS}")

    holdout = {
        "Std:JsonGet": {
            "PropertyFile": _get(
                f"Steps.{Steps.EVALUATE}.PropertyFiles.{naming.EVALUATION_PROPERTY_FILE}"
            ),
            "Path": REGISTER_METRIC_PATH,
        }
    }
    (condition,) = step(definition, Steps.CHECK)["Arguments"]["Conditions"]
    assert condition == {
        "Type": "GreaterThanOrEqualTo",
        "LeftValue": holdout,
        "RightValue": _get(f"Parameters.{Params.THRESHOLD}"),
    }
    checksum = {
        "Std:JsonGet": {
            "PropertyFile": _get(
                f"Steps.{Steps.EVALUATE}.PropertyFiles.{naming.EVALUATION_PROPERTY_FILE}"
            ),
            "Path": MODEL_SHA256_PATH,
        }
    }
    (changed,) = step(definition, Steps.CHECK_CHANGED)["Arguments"]["Conditions"]
    assert changed == {
        "Type": "Not",
        "Condition": {
            "Type": "Equals",
            "LeftValue": checksum,
            "RightValue": _get(f"Parameters.{Params.LATEST_MODEL_SHA256}"),
        },
    }
    # The registered version carries the checksum the next run compares with.
    assert register["CustomerMetadataProperties"][naming.MODEL_SHA256_METADATA_KEY] == checksum
    # ... and names the chosen trial and its family, from the same report.
    report_file = _get(f"Steps.{Steps.EVALUATE}.PropertyFiles.{naming.EVALUATION_PROPERTY_FILE}")
    assert register["CustomerMetadataProperties"]["training-job"] == {
        "Std:JsonGet": {"PropertyFile": report_file, "Path": CHOSEN_TRIAL_PATH}
    }
    assert register["CustomerMetadataProperties"]["algorithm"] == {
        "Std:JsonGet": {"PropertyFile": report_file, "Path": CHOSEN_ALGORITHM_PATH}
    }
    message = step(definition, Steps.FAIL)["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert _get(f"Parameters.{Params.METRIC}") in message
    assert holdout in message
    assert _get(f"Parameters.{Params.THRESHOLD}") in message


def _substituted(value: Any, reference: str, replacement: str) -> Any:
    """`value` with every `{"Get": reference}` replaced: a step property a test stands in for."""
    if value == {"Get": reference}:
        return replacement
    if isinstance(value, dict):
        return {k: _substituted(v, reference, replacement) for k, v in value.items()}
    if isinstance(value, list):
        return [_substituted(v, reference, replacement) for v in value]
    return value


def _resolved_arguments(
    definition: dict[str, Any], name: str, root: Path, tuning_job: str = ""
) -> list[str]:
    """A processing step's ContainerArguments with parameter defaults, paths moved under root
    (and the Tune step's job name, where an argument reads it, as `tuning_job`)."""
    from modelbuild.validate import DefinitionChecker

    checker = DefinitionChecker(definition, None)
    checker.check_parameters()
    checker.steps = {s["Name"]: s for s in definition["Steps"]}
    arguments = _substituted(
        step(definition, name)["Arguments"]["AppSpecification"]["ContainerArguments"],
        f"Steps.{Steps.TUNE}.HyperParameterTuningJobName",
        tuning_job,
    )
    values = [checker.evaluate(name, argument)[0] for argument in arguments]
    assert all(isinstance(v, str) for v in values), values
    return [v.replace("/opt/ml/processing", str(root)) for v in values]


def test_the_definition_drives_the_container_entry_points(
    definitions: dict[str, Built], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Preprocess -> trials -> evaluate, each fed exactly what the definition passes it."""
    from container import evaluate, preprocess
    from container.artifact import pack
    from container.layout import ARTIFACT_FILE
    from container.train import train
    from modelbuild.pipeline import CHOSEN_MODEL_OUTPUT, TRIALS_INPUT

    definition = definitions["breast-cancer"].definition
    root = tmp_path / "processing"
    (root / "input").mkdir(parents=True)
    (root / "input" / "data.csv").write_bytes(
        materialize(get_dataset("breast-cancer")).read_bytes()
    )
    preprocess.main(_resolved_arguments(definition, Steps.PREPROCESS, root))
    assert (root / Outputs.TRAIN / "train.csv").is_file()
    assert (root / Outputs.TEST / "test.csv").is_file()

    from modelbuild.validate import DefinitionChecker

    checker = DefinitionChecker(definition, None)
    checker.check_parameters()
    folds = definitions["breast-cancer"].settings.cv_folds
    # Two trials of one tuning job, laid out as the Evaluate step's trials input receives them.
    tuning_job = "exec-Tune"
    signatures = {}
    for number, family in enumerate(("naive-bayes", "logistic-regression"), start=1):
        job = next(
            j
            for j in step(definition, Steps.TUNE)["Arguments"]["TrainingJobDefinitions"]
            if j["DefinitionName"] == family
        )
        hyperparameters = {
            k: str(checker.evaluate(Steps.TUNE, v)[0])
            for k, v in job["StaticHyperParameters"].items()
        }
        capsys.readouterr()
        model_dir = tmp_path / family
        signature = train(hyperparameters, root / Outputs.TRAIN, model_dir)
        log = capsys.readouterr().out
        regex = job["AlgorithmSpecification"]["MetricDefinitions"][0]["Regex"]
        assert re.search(regex, log), log
        # Every declared metric reads what the trial printed: the objective, the spread and
        # one score per fold, as SageMaker would record them in FinalMetricDataList.
        recorded = {}
        for metric in job["AlgorithmSpecification"]["MetricDefinitions"]:
            found = re.findall(metric["Regex"], log)
            if found:
                recorded[metric["Name"]] = float(found[-1])
        cv = signature["cv"]
        assert recorded == pytest.approx(
            {
                OBJECTIVE_METRIC_NAME: cv["mean"],
                CV_STD_METRIC_NAME: cv["std"],
                **{fold_metric_name(i + 1): s for i, s in enumerate(cv["fold_scores"])},
            },
            abs=1e-8,
        )
        assert len(cv["fold_scores"]) == folds
        name = f"{tuning_job}-{number:03d}-0000000{number}"
        signatures[name] = signature
        pack(model_dir, root / TRIALS_INPUT / name / "output" / ARTIFACT_FILE)

    evaluate.main(_resolved_arguments(definition, Steps.EVALUATE, root, tuning_job))
    report = json.loads((root / Outputs.EVALUATION / naming.EVALUATION_REPORT_FILE).read_text())
    value: Any = report
    for part in REGISTER_METRIC_PATH.split("."):
        value = value[part]
    assert 0.5 < float(value) <= 1.0
    assert report["register_metric"]["name"] == "roc_auc"
    selection = report["selection"]
    assert selection["rule"] == "one-standard-error"
    assert {c["trial"] for c in selection["candidates"]} <= set(signatures)
    assert selection["trials_scored"] == 2 and selection["reason"]
    chosen = selection["chosen_trial"]
    # The chosen trial's artifact, byte for byte, is the output Register registers.
    assert (root / CHOSEN_MODEL_OUTPUT / ARTIFACT_FILE).read_bytes() == (
        root / TRIALS_INPUT / chosen / "output" / ARTIFACT_FILE
    ).read_bytes()
    # CheckModelChanged reads the checksum of the model file the chosen trial saved.
    assert report[MODEL_SHA256_PATH] == signatures[chosen]["model_sha256"]
    assert report["algorithm"] == signatures[chosen]["algorithm"]
    assert re.fullmatch(r"[0-9a-f]{64}", report[MODEL_SHA256_PATH])


def test_metric_definitions_cover_every_fold_count_within_sagemakers_limits() -> None:
    """Declared once for the largest fold count the settings accept (CvFolds is a parameter),
    within the API's 40 definitions and its Name/Regex lengths; `cv_fold_1` reads fold 1 only."""
    import botocore.session

    from container.metrics import MAX_CV_FOLDS, cv_lines, parse_metrics
    from modelbuild.pipeline import PipelineSettings

    field = PipelineSettings.model_fields["cv_folds"]
    largest = next(m.le for m in field.metadata if getattr(m, "le", None) is not None)
    assert largest == MAX_CV_FOLDS
    definitions = metric_definitions()
    names = [d["Name"] for d in definitions]
    assert names == [OBJECTIVE_METRIC_NAME, CV_STD_METRIC_NAME] + [
        fold_metric_name(i) for i in range(1, largest + 1)
    ]
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.shape_for("HyperParameterAlgorithmSpecification").members["MetricDefinitions"]
    assert len(definitions) <= shape.metadata["max"]
    member = shape.member.members
    for definition in definitions:
        assert len(definition["Regex"]) <= member["Regex"].metadata["max"]
        assert len(definition["Name"]) <= member["Name"].metadata["max"]

    scores = [0.5 + i / 100 for i in range(largest)]
    log = "\n".join(cv_lines(scores, 0.25))
    parsed = parse_metrics(log)
    assert parsed[fold_metric_name(1)] == pytest.approx(0.5)
    assert parsed[fold_metric_name(10)] == pytest.approx(0.59)
    assert parsed[fold_metric_name(largest)] == pytest.approx(scores[-1])
    assert parsed[CV_STD_METRIC_NAME] == 0.25
    assert parsed[OBJECTIVE_METRIC_NAME] == pytest.approx(sum(scores) / largest)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"max_jobs": 8, "max_parallel_jobs": 10}, "max_parallel_jobs (10) exceeds max_jobs (8)"),
        ({"approval_status": "Aproved"}, "approval_status"),
        ({"tuning_strategy": "Grid"}, "tuning_strategy"),
        ({"metric": "auc"}, "metric"),
        ({"threshold": 1.5}, "threshold"),
        ({"training_instance_type": "m5.large"}, "training_instance_type"),
        ({"model_package_group": "bad_group!"}, "model package group name 'bad_group!'"),
    ],
)
def test_bad_settings_are_named(overrides: dict[str, Any], expected: str) -> None:
    from modelbuild.pipeline import PipelineSettings

    with pytest.raises(InputError, match=re.escape(expected)) as raised:
        PipelineSettings.for_dataset(
            get_dataset("wine"),
            project_name=PROJECT,
            input_data_url="s3://b/k.csv",
            image_uri=IMAGE_URI,
            **overrides,
        )
    assert raised.value.dataset == "wine"


def test_cli_writes_a_valid_definition_and_rejects_bad_input(tmp_path: Path) -> None:
    from modelbuild.cli import pipeline

    runner = CliRunner()
    target = tmp_path / "wine.json"
    result = runner.invoke(pipeline, ["definition", "wine", "-o", str(target)])
    assert result.exit_code == 0, result.output
    written = json.loads(target.read_text())
    assert written["Parameters"][0] == {
        "Name": Params.DATASET,
        "Type": "String",
        "DefaultValue": "wine",
        "EnumValues": ["wine"],
    }
    assert runner.invoke(pipeline, ["validate", str(target)]).exit_code == 0

    for args, message in [
        (["definition", "nope"], "unknown dataset 'nope'"),
        (["definition", "wine", "--max-parallel-jobs", "70"], "exceeds max_jobs"),
        (["definition", "wine", "--approval-status", "Aproved"], "approval_status"),
        (["definition", "wine", "--training-instance-type", "ml.m5.larg"], "'ml.m5.larg'"),
        (["validate", str(target), "-p", "ModelApprovalStatus=Rejected"], "is not one of"),
    ]:
        result = runner.invoke(pipeline, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output
        assert "Traceback" not in result.output
        assert not isinstance(result.exception, Exception) or isinstance(
            result.exception, SystemExit
        )


@pytest.mark.integration
def test_cli_runs_standalone() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelbuild.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert all(c in result.stdout for c in ("definition", "validate", "run"))
    # The group must not load the SDK just to list its commands (it is mounted into `mme`).
    probe = "import sys, modelbuild.cli; print('sagemaker' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )


def test_names_respect_sagemaker_limits() -> None:
    for name in default_registry():
        assert naming.pipeline_name(PROJECT, name) == f"{PROJECT}-modelbuild-{name}"
        assert naming.model_package_group_name(PROJECT, name) == f"{PROJECT}-{name}"
    longest_project = "p" * naming.PROJECT_NAME_MAX_LENGTH
    assert len(naming.model_package_group_name(longest_project, "d" * 24)) <= 63
    with pytest.raises(InputError, match="project name"):
        naming.pipeline_name("p" * 33, "wine")
    with pytest.raises(InputError, match="project name 'my_project'"):
        naming.model_package_group_name("my_project", "wine")
    with pytest.raises(InputError, match="limit is 63"):
        naming.check_model_package_group_name("g" * 64)
    with pytest.raises(InputError, match="not a valid S3 bucket name"):
        naming.check_bucket("s3://bucket")
    assert naming.staged_data_key("wine", "a" * 64) == f"datasets/wine/{'a' * 64}.csv"
    with pytest.raises(InputError, match="sha256"):
        naming.staged_data_key("wine", "xyz")
