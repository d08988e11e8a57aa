"""The local executor runs the real pipeline definitions: end to end, caching, Fail, faults."""

from __future__ import annotations

import copy
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from container.families import FAMILIES
from local.executions import ExecutionRecord
from local.executor import DefinitionError, PipelineExecutor
from local.home import LocalHome
from local.jobs import JobRunner
from local.runs import Pipeline, build
from modelbuild import naming
from modelbuild.datasets import default_registry, get_dataset
from modelbuild.naming import Params, Steps
from tests.local_support import SMALL_BUDGET, runner

__all__ = ["runner"]  # fixture used by name
pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning"),
]
PROJECT = "mme"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> LocalHome:
    return LocalHome(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def pipelines(home: LocalHome) -> dict[str, Pipeline]:
    return {name: build(get_dataset(name), home, PROJECT, None) for name in default_registry()}


@pytest.fixture(scope="module")
def first_runs(
    home: LocalHome, pipelines: dict[str, Pipeline], runner: JobRunner
) -> dict[str, ExecutionRecord]:
    executor = PipelineExecutor(home, runner)
    return {
        name: executor.start(p.name, p.definition, SMALL_BUDGET) for name, p in pipelines.items()
    }


def _start(home: LocalHome, runner: JobRunner, pipeline: Pipeline, **parameters: Any):
    return PipelineExecutor(home, runner).start(
        pipeline.name, pipeline.definition, {**SMALL_BUDGET, **parameters}
    )


def _versions(home: LocalHome) -> list[tuple[str, int]]:
    return [(p.group_name, p.version) for p in home.registry.list_packages()]


def test_every_dataset_runs_the_real_definition_end_to_end(
    home: LocalHome, pipelines: dict[str, Pipeline], first_runs: dict[str, ExecutionRecord]
) -> None:
    for name, record in first_runs.items():
        assert record.status == "Succeeded", (name, record.failure_reason)
        assert [s.name for s in record.steps] == [
            Steps.PREPROCESS, Steps.TUNE, Steps.EVALUATE, Steps.CHECK, Steps.CHECK_CHANGED,
            Steps.REGISTER,
        ]  # fmt: skip
        tune = record.step(Steps.TUNE)
        assert tune is not None
        summaries = tune.properties["TrainingJobSummaries"]
        assert len(summaries) == len(FAMILIES)
        assert {s["TrainingJobDefinitionName"] for s in summaries} == set(FAMILIES)
        values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in summaries]
        assert values == sorted(values, reverse=True), "best first, as TrainingJobSummaries[0]"

        # Each objective is what the definition's regex reads from that trial's own log.
        definition = pipelines[name].definition
        tune_step = next(s for s in definition["Steps"] if s["Name"] == Steps.TUNE)
        regex = tune_step["Arguments"]["TrainingJobDefinitions"][0]["AlgorithmSpecification"][
            "MetricDefinitions"
        ][0]["Regex"]
        directory = home.executions.directory(record.id)
        for summary, value in zip(summaries, values, strict=True):
            log = (directory / "logs" / f"{summary['TrainingJobName']}.log").read_text()
            assert float(re.findall(regex, log)[-1]) == value
        hyperparameters = json.loads(
            (directory / "definition.json").read_text()
        )  # the definition the execution ran is kept beside it
        assert hyperparameters == definition

        best = summaries[0]
        output_path = tune_step["Arguments"]["TrainingJobDefinitions"][0]["OutputDataConfig"][
            "S3OutputPath"
        ]
        artifact = f"{output_path}/{best['TrainingJobName']}/output/model.tar.gz"
        assert home.s3.exists(artifact)

        package = home.registry.get(f"{PROJECT}-{name}", 1)
        assert package.approval_status == "PendingManualApproval"
        report_uri = package.model_metrics["ModelQuality"]["Statistics"]["S3Uri"]
        report = json.loads(home.s3.get_bytes(report_uri))
        # Evaluate chose among the trials (one-SE rule) and Register took Evaluate's copy of the
        # chosen trial's artifact, byte for byte.
        evaluate = record.step(Steps.EVALUATE)
        assert evaluate is not None
        chosen_copy = next(o for o in evaluate.outputs if o.endswith("/model"))
        assert package.model_data_url == f"{chosen_copy}/model.tar.gz"
        chosen = report["selection"]["chosen_trial"]
        assert home.s3.get_bytes(package.model_data_url) == home.s3.get_bytes(
            f"{output_path}/{chosen}/output/model.tar.gz"
        )
        assert package.customer_metadata["algorithm"] == report["algorithm"]
        assert package.customer_metadata["training-job"] == chosen
        # The checksum the next run compares with: the registered model's, from its report.
        assert package.customer_metadata[naming.MODEL_SHA256_METADATA_KEY] == report["model_sha256"]
        assert report["selection"]["best_mean"] == pytest.approx(values[0])
        assert report["selection"]["best_trial"] == best["TrainingJobName"]
        assert report["dataset"] == name


def test_an_unchanged_step_is_reused_and_a_changed_one_runs_again(
    home: LocalHome,
    pipelines: dict[str, Pipeline],
    first_runs: dict[str, ExecutionRecord],
    runner: JobRunner,
) -> None:
    first = first_runs["wine"]
    again = _start(home, runner, pipelines["wine"])
    assert again.status == "Succeeded"
    cached = {s.name: s.cached_from for s in again.steps}
    assert cached[Steps.PREPROCESS] == cached[Steps.TUNE] == cached[Steps.EVALUATE] == first.id
    assert cached[Steps.REGISTER] is None  # registration is never cached: a new version
    assert not (home.executions.directory(again.id) / "logs").exists()
    assert again.step(Steps.REGISTER).properties["ModelPackageVersion"] == 2  # type: ignore[union-attr]

    # A tuning parameter changes the Tune step's attributes but not Preprocess's.
    bigger = _start(home, runner, pipelines["wine"], MaxTuningJobs=7)
    assert bigger.step(Steps.PREPROCESS).cached_from == first.id  # type: ignore[union-attr]
    tune = bigger.step(Steps.TUNE)
    assert tune is not None and tune.cached_from is None
    assert len(tune.properties["TrainingJobSummaries"]) == 7

    # Outputs that have disappeared from S3 are not reused.
    for uri in first.step(Steps.PREPROCESS).outputs + bigger.step(Steps.PREPROCESS).outputs:  # type: ignore[union-attr]
        for key in list(home.s3.list(uri)):
            home.s3.delete(key)
    rebuilt = _start(home, runner, pipelines["wine"])
    assert rebuilt.step(Steps.PREPROCESS).cached_from is None  # type: ignore[union-attr]


def test_the_checksum_parameter_decides_registration_and_register_is_never_cached(
    home: LocalHome,
    pipelines: dict[str, Pipeline],
    first_runs: dict[str, ExecutionRecord],
    runner: JobRunner,
) -> None:
    """The executor runs CheckModelChanged as SageMaker would; only the parameter the run
    command passes keeps an equal model from being registered, never a cached register step."""
    group = f"{PROJECT}-banknote"
    latest = home.registry.list_packages(group)[0]
    checksum = latest.customer_metadata[naming.MODEL_SHA256_METADATA_KEY]
    same = _start(home, runner, pipelines["banknote"], LatestModelSha256=checksum)
    assert same.status == "Succeeded"
    assert same.step(Steps.EVALUATE).cached_from == first_runs["banknote"].id  # type: ignore[union-attr]
    assert same.step(Steps.CHECK_CHANGED).properties == {"Outcome": False}  # type: ignore[union-attr]
    assert same.step(Steps.REGISTER) is None
    assert home.registry.list_packages(group)[0] == latest

    other = _start(home, runner, pipelines["banknote"], LatestModelSha256="0" * 64)
    register = other.step(Steps.REGISTER)
    assert register is not None and register.cached_from is None
    assert register.properties["ModelPackageVersion"] == latest.version + 1
    package = home.registry.list_packages(group)[0]
    assert package.customer_metadata[naming.MODEL_SHA256_METADATA_KEY] == checksum


def test_a_threshold_out_of_reach_fails_the_execution_and_registers_nothing(
    home: LocalHome, pipelines: dict[str, Pipeline], first_runs: dict[str, ExecutionRecord],
    runner: JobRunner,
) -> None:  # fmt: skip
    before = _versions(home)
    record = _start(home, runner, pipelines["breast-cancer"], RegistrationThreshold=2.0)
    assert record.status == "Failed"
    assert "holdout roc_auc =" in (record.failure_reason or "")
    assert "is below the registration threshold 2.0" in (record.failure_reason or "")
    assert [s.name for s in record.steps][-2:] == [Steps.CHECK, Steps.FAIL]
    assert record.step(Steps.CHECK).properties == {"Outcome": False}  # type: ignore[union-attr]
    assert _versions(home) == before


def _with_entrypoint(pipeline: Pipeline, *command: str) -> dict[str, Any]:
    definition = copy.deepcopy(pipeline.definition)
    definition["Steps"][0]["Arguments"]["AppSpecification"]["ContainerEntrypoint"] = list(command)
    return definition


@pytest.mark.parametrize(
    ("how", "expected"), [("raise", "RuntimeError: the job broke on purpose"), ("exit", "died")]
)
def test_a_crashing_job_fails_the_execution_with_its_log_tail(
    home: LocalHome, pipelines: dict[str, Pipeline], runner: JobRunner, how: str, expected: str
) -> None:
    before = _versions(home)
    definition = _with_entrypoint(pipelines["wine"], "python3", "-m", "tests.local_support", how)
    record = PipelineExecutor(home, runner).start("crash", definition, SMALL_BUDGET)
    assert record.status == "Failed"
    assert [s.name for s in record.steps] == [Steps.PREPROCESS]
    reason = record.failure_reason or ""
    assert reason.startswith(f"step '{Steps.PREPROCESS}' failed: job ")
    assert "about to fail" in reason and expected in reason
    assert (home.executions.directory(record.id) / record.steps[0].logs[0]).is_file()
    assert _versions(home) == before
    # The pool survives a job that killed its worker.
    healthy = PipelineExecutor(home, runner, use_cache=False).start(
        "healthy", pipelines["wine"].definition, {**SMALL_BUDGET, Params.THRESHOLD: 2.0}
    )
    assert healthy.step(Steps.PREPROCESS).status == "Succeeded"  # type: ignore[union-attr]


def test_a_job_that_fails_with_a_clear_reason_reports_it(
    home: LocalHome, pipelines: dict[str, Pipeline], runner: JobRunner
) -> None:
    record = _start(home, runner, pipelines["wine"], TargetColumn="no_such_column")
    assert record.status == "Failed"
    assert "no_such_column" in (record.failure_reason or "")


def test_a_step_type_the_executor_does_not_know_is_refused_before_anything_runs(
    home: LocalHome, pipelines: dict[str, Pipeline], runner: JobRunner
) -> None:
    definition = copy.deepcopy(pipelines["wine"].definition)
    definition["Steps"].append({"Name": "Notify", "Type": "Lambda", "Arguments": {}})
    before = len(home.executions.list())
    with pytest.raises(DefinitionError, match=r"step 'Notify' has type 'Lambda'"):
        PipelineExecutor(home, runner).start("unknown-step", definition)
    definition["Steps"].pop()
    definition["Steps"][0]["Arguments"]["Environment"] = {"X": {"Std:Select": {}}}
    with pytest.raises(
        DefinitionError, match=r"step 'Preprocess' uses the expression 'Std:Select'"
    ):
        PipelineExecutor(home, runner).start("unknown-expression", definition)
    assert len(home.executions.list()) == before


def test_a_training_step_feeds_its_model_artifact_to_later_steps(
    home: LocalHome, pipelines: dict[str, Pipeline], runner: JobRunner
) -> None:
    definition = copy.deepcopy(pipelines["wine"].definition)
    preprocess, tune, evaluate = definition["Steps"][:3]
    trial = tune["Arguments"]["TrainingJobDefinitions"][0]
    train = {
        "Name": "Train",
        "Type": "Training",
        "Arguments": {
            "AlgorithmSpecification": trial["AlgorithmSpecification"],
            "HyperParameters": {**trial["StaticHyperParameters"], "n_estimators": "60"},
            "InputDataConfig": trial["InputDataConfig"],
            "OutputDataConfig": trial["OutputDataConfig"],
            "StoppingCondition": trial["StoppingCondition"],
        },
    }
    evaluate["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"] = {
        "Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"
    }

    # One model instead of a tuning job's trials: Evaluate's `--model` mode, nothing to choose.
    # Each argument is `--name=value`, a plain string or a Std:Join whose first value is the
    # `--name=` prefix.
    def flag(argument: Any) -> str:
        text = argument if isinstance(argument, str) else argument["Std:Join"]["Values"][0]
        return text.split("=", 1)[0]

    arguments = evaluate["Arguments"]["AppSpecification"]["ContainerArguments"]
    evaluate["Arguments"]["AppSpecification"]["ContainerArguments"] = [
        argument.replace("--trials=", "--model=") if isinstance(argument, str) else argument
        for argument in arguments
        if flag(argument) not in ("--tuning-job", "--model-output")
    ]
    definition["Steps"] = [preprocess, train, evaluate]
    record = PipelineExecutor(home, runner).start("train-step", definition, {"CvFolds": 2})
    assert record.status == "Succeeded", record.failure_reason
    artifact = record.step("Train").properties["ModelArtifacts"]["S3ModelArtifacts"]  # type: ignore[union-attr]
    assert home.s3.exists(artifact)
    assert record.step("Train").properties["FinalMetricDataList"][0]["MetricName"] == "cv_score"  # type: ignore[union-attr]


def test_a_locked_registry_fails_the_register_step_and_loses_nothing(
    home: LocalHome, pipelines: dict[str, Pipeline], first_runs: dict[str, ExecutionRecord],
    runner: JobRunner,
) -> None:  # fmt: skip
    before = _versions(home)
    impatient = LocalHome(home.root, registry_timeout=0.2)
    lock = sqlite3.connect(home.registry_path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        record = _start(impatient, runner, pipelines["wine"])
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert record.status == "Failed"
    assert "locked" in (record.failure_reason or "")
    assert record.steps[-1].name == Steps.REGISTER
    assert _versions(home) == before


def test_a_corrupt_registry_fails_the_register_step_clearly(
    tmp_path: Path, pipelines: dict[str, Pipeline], runner: JobRunner,
    first_runs: dict[str, ExecutionRecord], home: LocalHome,
) -> None:  # fmt: skip
    # Same S3 (so earlier steps are cached), a registry file that is not a database.
    broken = LocalHome(home.root)
    broken.registry_path = tmp_path / "registry.sqlite"
    broken.registry_path.write_bytes(b"this is not an SQLite database" * 100)
    record = _start(broken, runner, pipelines["wine"])
    assert record.status == "Failed"
    assert "corrupt" in (record.failure_reason or "")


class _Clock:
    """time.monotonic for the executor: each reading is `step` seconds after the last."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def monotonic(self) -> float:
        self.now += self.step
        return self.now


def test_the_tuning_time_budget_stops_starting_trials(
    home: LocalHome, pipelines: dict[str, Pipeline], runner: JobRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Past ResourceLimits.MaxRuntimeInSeconds no trial starts; the ones running finish."""
    definition = copy.deepcopy(pipelines["wine"].definition)
    tune = next(s for s in definition["Steps"] if s["Name"] == Steps.TUNE)
    tune["Arguments"]["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxRuntimeInSeconds"] = (
        120
    )
    # Read once for the deadline, then once per scheduling pass: the second pass is past it.
    monkeypatch.setattr("local.executor.tuner.time", _Clock(step=100.0))
    record = PipelineExecutor(home, runner, use_cache=False).start(
        "time-budget", definition, {**SMALL_BUDGET, Params.THRESHOLD: 0.0}
    )
    assert record.status == "Succeeded", record.failure_reason
    summaries = record.step(Steps.TUNE).properties["TrainingJobSummaries"]  # type: ignore[union-attr]
    parallel = SMALL_BUDGET["MaxParallelTuningJobs"]
    assert len(summaries) == parallel < SMALL_BUDGET["MaxTuningJobs"]
    assert all(s["TrainingJobStatus"] == "Completed" for s in summaries)


@pytest.mark.parametrize(("strategy", "sampling"), [("Bayesian", "TPE"), ("Random", "random")])
def test_the_strategy_chooses_the_local_sampler(
    home: LocalHome, pipelines: dict[str, Pipeline], runner: JobRunner, strategy: str,
    sampling: str,
) -> None:  # fmt: skip
    record = PipelineExecutor(home, runner, use_cache=False).start(
        f"strategy-{strategy}", pipelines["banknote"].definition,
        {**SMALL_BUDGET, Params.STRATEGY: strategy, Params.THRESHOLD: 0.0},
    )  # fmt: skip
    assert record.status == "Succeeded", record.failure_reason
    tune = record.step(Steps.TUNE)
    assert tune is not None and sampling in tune.metadata["Sampling"]
    summaries = tune.properties["TrainingJobSummaries"]
    assert {s["TrainingJobDefinitionName"] for s in summaries} == set(FAMILIES)
