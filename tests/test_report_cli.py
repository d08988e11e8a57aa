"""`mme report` on a local run, and the evaluation the pipeline registers with a model version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sagemaker.model_card.evaluation_metric_parsers import ClarifyExplainabilityParser

from container.layout import EXPLAINABILITY_FILE, REPORT_FILE
from container.plots import CALIBRATION_PLOT, CONFUSION_PLOT, CURVES_PLOT, IMPORTANCE_PLOT
from local.cli import main
from local.home import LocalHome
from modelbuild.pipeline import Outputs, Steps
from tests.pipeline_fixtures import build, step

pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
GROUP = "mme-wine"


def mme(home: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), *args])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report-home")
    result = mme(root, "run", "wine", "--max-jobs", "2", "--cv-folds", "2", "--workers", "2")
    assert result.exit_code == 0, result.output
    return root


def test_the_register_step_points_the_explainability_slot_at_the_importance() -> None:
    register = step(build("wine").definition, Steps.REGISTER)["Arguments"]
    evaluation = {
        "Get": f"Steps.{Steps.EVALUATE}.ProcessingOutputConfig.Outputs['{Outputs.EVALUATION}']"
        ".S3Output.S3Uri"
    }
    assert register["ModelMetrics"]["Explainability"]["Report"] == {
        "ContentType": "application/json",
        "S3Uri": {"Std:Join": {"On": "/", "Values": [evaluation, EXPLAINABILITY_FILE]}},
    }


@pytest.mark.integration
def test_the_local_registry_keeps_both_reports(home: Path) -> None:
    state = LocalHome(home)
    package = state.registry.get(GROUP, 1)
    quality = state.s3.path(package.model_metrics["ModelQuality"]["Statistics"]["S3Uri"])
    explainability = state.s3.path(package.model_metrics["Explainability"]["Report"]["S3Uri"])
    assert quality.name == REPORT_FILE and explainability.name == EXPLAINABILITY_FILE
    report = json.loads(quality.read_text())
    (group,) = ClarifyExplainabilityParser().run(json.loads(explainability.read_text()))[
        "metric_groups"
    ]
    assert {e["name"] for e in group["metric_data"]} == {
        f["name"] for f in report["importance"]["features"]
    }


@pytest.mark.integration
def test_report_prints_local_paths_metrics_and_importance(home: Path) -> None:
    result = mme(home, "report", "wine")
    assert result.exit_code == 0, result.output
    state = LocalHome(home)
    package = state.registry.get(GROUP, 1)
    report_path = state.s3.path(package.model_metrics["ModelQuality"]["Statistics"]["S3Uri"])
    report = json.loads(report_path.read_text())

    assert f"{GROUP} version 1 (PendingManualApproval)" in result.output
    assert f"report:          {report_path}\n" in result.output
    assert "s3://" not in result.output
    for plot in (CONFUSION_PLOT, CURVES_PLOT, CALIBRATION_PLOT, IMPORTANCE_PLOT):
        path = report_path.parent / plot
        assert path.is_file() and f"plot:            {path}\n" in result.output
    register = report["register_metric"]
    assert f"{register['name']:<18} {register['value']:.4f}" in result.output
    assert f"{'accuracy':<18} {report['metrics']['accuracy']:.4f}" in result.output
    top = report["importance"]["features"][0]
    assert f"  {top['name']:<28} {top['mean']:+.4f}" in result.output
    for warning in report["warnings"]:
        assert f"warning: {warning}" in result.output

    # The version as the tables print it, and the same output as the default (latest).
    assert mme(home, "report", "wine", "v1").output == result.output
    assert mme(home, "--project-name", "mme", "report", GROUP, "1").output == result.output


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("report", "wien"), "dataset 'wien' has no registered model (model package group "),
        (("report", "wine", "7"), "model package group 'mme-wine' has no version 7"),
        (("report", "wine", "latest"), "'latest' is not a model version"),
    ],
)
def test_report_names_what_is_wrong(home: Path, args: tuple[str, ...], message: str) -> None:
    result = mme(home, *args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_a_report_removed_from_local_s3_is_named(home: Path, tmp_path: Path) -> None:
    state = LocalHome(home)
    package = state.registry.get(GROUP, 1)
    report_path = state.s3.path(package.model_metrics["ModelQuality"]["Statistics"]["S3Uri"])
    moved = tmp_path / "moved.json"
    report_path.rename(moved)
    try:
        result = mme(home, "report", "wine")
    finally:
        moved.rename(report_path)
    assert result.exit_code == 1
    assert "the evaluation report is missing" in result.output and str(report_path) in result.output
