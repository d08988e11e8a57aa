"""Bad data gets one clear error naming the dataset, the file and the problem; no half output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from container.errors import InputError
from tests.conftest import mixed_frame, run_preprocess

REPO = Path(__file__).resolve().parents[1]


def _expect_error(
    source: Path, out: Path, pattern: str, *extra: str, target: str = "label"
) -> None:
    with pytest.raises(InputError, match=pattern) as caught:
        run_preprocess(source, out, "demo-set", target, *extra)
    message = caught.value.describe()
    assert "dataset 'demo-set'" in message
    assert str(source) in message
    assert not (out / "train").exists() or not any((out / "train").iterdir()), "partial output"
    assert not (out / "test").exists() or not any((out / "test").iterdir()), "partial output"


def test_missing_file(tmp_path: Path) -> None:
    _expect_error(tmp_path / "absent.csv", tmp_path / "out", "file not found")


def test_unparseable_csv(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,label\n1,2,x\n3,4,y,5,6\n")
    _expect_error(ragged, tmp_path / "out", "not a parseable CSV")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage\x00\x9f\n\x80\x81")
    _expect_error(binary, tmp_path / "out", "not a parseable CSV")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _expect_error(empty, tmp_path / "out", "the file is empty")


def test_absent_target_column(tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    mixed_frame().to_csv(source, index=False)
    _expect_error(
        source, tmp_path / "out", "target column 'diagnosis' is absent", target="diagnosis"
    )


def test_single_class_target(tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    mixed_frame().assign(label="ok").to_csv(source, index=False)
    _expect_error(source, tmp_path / "out", r"single class \('ok'\)")


def test_class_with_fewer_rows_than_folds(tmp_path: Path) -> None:
    frame = mixed_frame()
    rare = frame.head(5).assign(label="rare")
    source = tmp_path / "data.csv"
    pd.concat([frame, rare]).to_csv(source, index=False)
    _expect_error(source, tmp_path / "out", r"class 'rare' has 4 row\(s\).*fewer than the 5")


def test_unknown_positive_class_and_non_numeric_value(tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    mixed_frame().to_csv(source, index=False)
    _expect_error(
        source, tmp_path / "out", "positive class 'spam' is not among", "--positive-class=spam"
    )
    _expect_error(
        source, tmp_path / "out", r"categorical column\(s\) \['nope'\]", "--categorical=nope"
    )


@pytest.mark.integration
def test_entry_point_prints_one_line_not_a_traceback(tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    mixed_frame().to_csv(source, index=False)
    done = subprocess.run(
        [sys.executable, "-m", "container", "preprocess", "--dataset=demo-set",
         "--target=diagnosis", f"--input={source}", f"--train-dir={tmp_path / 'train'}",
         f"--test-dir={tmp_path / 'test'}"],
        cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error: dataset 'demo-set', file '")
    assert "target column 'diagnosis' is absent" in done.stderr
