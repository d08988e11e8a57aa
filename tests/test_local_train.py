"""`mme train`: the in-process search over all families, end to end, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from container.families import FAMILIES
from local.cli import main
from local.search import plan_trials
from modelbuild.datasets import get_dataset


def test_trials_cover_the_families_in_turn_reproducibly() -> None:
    trials = plan_trials(14, seed=3)
    assert [t.family for t in trials[:6]] == list(FAMILIES)
    assert len(trials) == 14
    assert plan_trials(14, seed=3) == trials
    assert plan_trials(14, seed=4) != trials


def test_train_runs_the_search_evaluates_the_best_and_prints_a_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["train", "wine", "--max-jobs", "6", "--workers", "2", "--workdir", str(tmp_path)],
        terminal_width=200,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "wine" in result.output and "f1_macro" in result.output

    trials = sorted(p.name for p in (tmp_path / "wine" / "trials").iterdir())
    assert len(trials) == 6 and {t.split("-", 2)[2] for t in trials} == set(FAMILIES)
    report = json.loads((tmp_path / "wine" / "evaluation" / "evaluation.json").read_text())
    best_cv = max(
        json.loads((tmp_path / "wine" / "trials" / t / "signature.json").read_text())["cv"]["mean"]
        for t in trials
    )
    assert report["cv"]["mean"] == best_cv
    assert report["algorithm"] in result.output
    assert (tmp_path / "wine" / "best" / "model.tar.gz").is_file()


def test_unknown_dataset_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["train", "iris"])
    assert result.exit_code == 2
    assert "unknown dataset 'iris'" in result.output


def test_an_unreachable_url_dataset_is_skipped_only_when_not_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MME_CACHE_DIR", str(tmp_path / "cache"))
    empty_mirror = tmp_path / "mirror"
    empty_mirror.mkdir()
    named = CliRunner().invoke(main, ["train", "banknote", "--data-dir", str(empty_mirror)])
    assert named.exit_code == 1
    assert "dataset 'banknote'" in named.output and "not in the data directory" in named.output

    monkeypatch.setattr("local.cli.default_registry", lambda: {"banknote": get_dataset("banknote")})
    unnamed = CliRunner().invoke(main, ["train", "--data-dir", str(empty_mirror)])
    assert unnamed.exit_code == 0, unnamed.output
    assert "skipped:" in unnamed.output
