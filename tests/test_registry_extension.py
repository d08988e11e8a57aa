"""Adding a dataset needs no code change: the template and pipeline checks pass for a registry
with one more dataset, whose values differ from every seed dataset's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelbuild import naming
from modelbuild.datasets import REGISTRY_ENV, REGISTRY_FILE, default_registry
from modeldeploy.build import load_template
from template.package import published_project_template
from tests.conftest import mixed_frame

REPO = Path(__file__).resolve().parents[1]
ADDED = "churn"
# A budget, metric and threshold no seed dataset has, so a check that hard-codes a seed's
# values fails on this entry.
ENTRY = f"""
  {ADDED}:
    description: added by a test, from a CSV beside the registry
    source: {{csv: data/{ADDED}.csv}}
    target: label
    positive_class: fraud
    categorical: [colour]
    metric: f1
    threshold: 0.55
    cv_folds: 3
    budget: {{max_jobs: 8, max_parallel_jobs: 2}}
"""
# The checks that read the registry. The two scanners (cfn-lint, checkov) read only the
# repository's template files, which an added dataset leaves alone.
CHECKS = ["tests/test_template.py", "tests/test_pipeline.py"]
SCANNERS = "not cfn_lint and not checkov"


@pytest.fixture
def extended_registry(tmp_path: Path) -> Path:
    """A copy of datasets.yml plus one dataset, kept elsewhere with its CSV beside it."""
    folder = tmp_path / "registry"
    (folder / "data").mkdir(parents=True)
    mixed_frame().to_csv(folder / "data" / f"{ADDED}.csv", index=False)
    path = folder / "datasets.yml"
    path.write_text(REGISTRY_FILE.read_text().rstrip("\n") + "\n" + ENTRY)
    return path


def test_an_added_dataset_is_registered_and_published(
    extended_registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = list(default_registry())
    monkeypatch.setenv(REGISTRY_ENV, str(extended_registry))
    registry = default_registry()
    assert list(registry) == [*seed, ADDED]
    assert registry[ADDED].budget.max_jobs == 8
    seeds = {naming.MODELBUILD_REPO: "s/b.zip", naming.MODELDEPLOY_REPO: "s/d.zip"}
    published = extended_registry.with_name("project.yml")
    published.write_text(published_project_template("b", seeds))
    default = load_template(published)["Parameters"]["Datasets"]["Default"]
    assert default == ",".join([*seed, ADDED])


@pytest.mark.integration
def test_the_template_and_pipeline_checks_pass_with_an_added_dataset(
    extended_registry: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'inner'}",
            "-k",
            SCANNERS,
            *CHECKS,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, REGISTRY_ENV: str(extended_registry)},
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]
