"""The early data check: the user's mistakes are refused before a pipeline starts, in the user's
terms and naming the user's file, and the registry reads labels as the user wrote them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from container.errors import InputError
from modelbuild.data_check import MAX_CLASSES, check_dataset
from modelbuild.datasets import Dataset, default_registry, load_registry, materialize
from tests.conftest import mixed_frame

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's folder, the working directory: datasets.yml beside data/."""
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MME_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def chile(project: Path, frame: pd.DataFrame, entry: str = "", sep: str = ",") -> Dataset:
    """The dataset 'chile' from data/chile.csv, with extra registry lines."""
    frame.to_csv(project / "data" / "chile.csv", index=False, sep=sep)
    (project / "datasets.yml").write_text(
        "datasets:\n  chile:\n    source: {csv: data/chile.csv}\n    target: label\n"
        + "".join(f"    {line}\n" for line in entry.splitlines())
    )
    return load_registry(project / "datasets.yml")["chile"]


def labelled(rows: int = 120) -> pd.DataFrame:
    """Numeric and categorical features (colour: three levels) and a 'label' target."""
    return mixed_frame(rows)


def test_the_seed_datasets_pass_with_nothing_to_note() -> None:
    for dataset in default_registry().values():
        checked = check_dataset(dataset)
        assert checked.notes == () and checked.rows > 100 and len(checked.classes) >= 2


def test_a_missing_file_is_named_as_the_registry_names_it(project: Path) -> None:
    (project / "datasets.yml").write_text(
        "datasets:\n  chile:\n    source: {csv: data/chile.csv}\n    target: label\n"
    )
    dataset = load_registry(project / "datasets.yml")["chile"]
    with pytest.raises(
        InputError, match=r"^dataset 'chile', file 'data/chile.csv': file not found"
    ):
        check_dataset(dataset)


def test_another_separator_is_named_with_the_setting_that_reads_it(project: Path) -> None:
    with pytest.raises(
        InputError,
        match=r"file 'data/chile.csv': the columns are separated by ';', not commas: "
        r"set sep: ';'",
    ):
        check_dataset(chile(project, labelled(), sep=";"))
    with pytest.raises(InputError, match=r'separated by tabs, not commas: set sep: "\\t"'):
        check_dataset(chile(project, labelled(), sep="\t"))

    labelled().to_csv(project / "data" / "chile.csv", index=False, sep=";")
    dataset = load_registry(_with_source(project, "{csv: data/chile.csv, sep: ';'}"))["chile"]
    assert check_dataset(dataset).rows == 120
    # The pipeline reads a comma-separated copy holding the same values.
    copy = pd.read_csv(materialize(dataset))
    pd.testing.assert_frame_equal(copy, pd.read_csv(project / "data" / "chile.csv", sep=";"))


def _with_source(project: Path, source: str, *lines: str) -> Path:
    text = f"datasets:\n  chile:\n    source: {source}\n    target: label\n"
    (project / "datasets.yml").write_text(text + "".join(f"    {line}\n" for line in lines))
    return project / "datasets.yml"


def test_a_misspelt_target_suggests_the_column(project: Path) -> None:
    frame = labelled().rename(columns={"label": "Label"})
    with pytest.raises(
        InputError, match=r"file 'data/chile.csv': target column 'label' is absent; did you mean"
    ):
        check_dataset(chile(project, frame))


def test_unlabelled_rows_are_refused_or_dropped_as_configured(project: Path) -> None:
    frame = labelled()
    frame["code"] = [f"{i % 7:03d}" for i in range(len(frame))]
    frame.loc[[3, 10, 40], "label"] = np.nan
    with pytest.raises(
        InputError,
        match=r"file 'data/chile.csv': 3 row\(s\) have no label in target column 'label' "
        r"\(data rows 4, 11, 41\): fill them in, or set unlabelled: drop",
    ):
        check_dataset(chile(project, frame))

    dataset = chile(project, frame, "unlabelled: drop")
    checked = check_dataset(dataset)
    assert checked.rows == 117
    assert checked.notes == ("dropped 3 row(s) without a label in 'label'",)
    # The pipeline reads the labelled rows, every value as the user wrote it ('007' stays).
    copy = pd.read_csv(materialize(dataset), dtype={"code": str})
    assert len(copy) == 117 and copy["label"].notna().all()
    assert copy["code"].tolist()[:3] == ["000", "001", "002"]


def test_a_continuous_target_is_refused_as_regression(project: Path) -> None:
    frame = labelled()
    frame["label"] = np.linspace(0.0, 1.0, len(frame))
    with pytest.raises(
        InputError,
        match=rf"file 'data/chile.csv': regression is not supported: target column 'label' "
        rf"has {len(frame)} distinct numeric values",
    ):
        check_dataset(chile(project, frame))
    frame["label"] = np.arange(len(frame)) % (MAX_CLASSES + 1)
    with pytest.raises(InputError, match=rf"has {MAX_CLASSES + 1} distinct numeric values"):
        check_dataset(chile(project, frame))


def test_free_text_columns_are_noted_or_refused(project: Path) -> None:
    frame = labelled()
    frame["comment"] = [f"customer said {i}" for i in range(len(frame))]
    checked = check_dataset(chile(project, frame, "max_levels: 20"))
    [note] = checked.notes
    assert note.startswith("'comment' has 120 distinct values in 120 rows: free text")
    assert "colour" not in note  # three levels
    with pytest.raises(InputError, match=r"file 'data/chile.csv': 'comment' has 120 distinct"):
        check_dataset(chile(project, frame, "max_levels: 20\nmany_levels: refuse"))


def test_what_preprocess_refuses_is_refused_early_under_the_users_file(project: Path) -> None:
    dataset = load_registry(
        _with_source(project, "{csv: data/chile.csv, sep: ';'}", "positive_class: maybe")
    )["chile"]
    labelled().to_csv(project / "data" / "chile.csv", index=False, sep=";")
    with pytest.raises(InputError) as raised:
        check_dataset(dataset)
    message = str(raised.value)
    assert message.startswith("dataset 'chile', file 'data/chile.csv': positive class 'maybe'")
    assert "prepared-" not in message and "cache" not in message


def test_an_unquoted_yes_is_the_label_the_user_wrote(project: Path) -> None:
    frame = labelled()
    frame["label"] = np.where(frame["label"] == "fraud", "Yes", "No")
    dataset = chile(project, frame, "positive_class: Yes")
    assert dataset.positive_class == "Yes"
    assert check_dataset(dataset).classes == ("No", "Yes")
    # Spelt `no`, a label or target stays text too.
    assert chile(project, frame, "positive_class: no").positive_class == "no"


def test_a_boolean_label_is_refused_when_the_registry_loads(project: Path) -> None:
    path = _with_source(project, "{csv: data/chile.csv}", "positive_class: true")
    with pytest.raises(
        InputError,
        match=r"dataset 'chile', file '.*datasets.yml'.*positive_class: .*reads as a boolean.*"
        r"quote the label",
    ):
        load_registry(path)


@pytest.mark.parametrize(
    ("source", "line", "problem"),
    [
        ("{csv: 's3://b/chile.csv', sep: ';'}", "", "sep applies to a local file"),
        ("{sklearn: load_wine}", "unlabelled: drop", "unlabelled: drop applies to a local csv"),
        ("{csv: data/chile.csv, sep: ':'}", "", "source.csv.sep"),
        ("{csv: data/chile.csv}", "max_levels: 1", "max_levels"),
    ],
)
def test_check_options_are_validated_when_the_registry_loads(
    project: Path, source: str, line: str, problem: str
) -> None:
    with pytest.raises(InputError, match=rf"dataset 'chile', file .*{problem}"):
        load_registry(_with_source(project, source, *filter(None, [line])))


def test_an_s3_source_is_left_to_the_pipeline(project: Path) -> None:
    dataset = load_registry(_with_source(project, "{csv: 's3://b/chile.csv'}"))["chile"]
    assert check_dataset(dataset).notes == ("checked by the pipeline on AWS",)


@pytest.mark.integration
def test_the_check_loads_no_pipeline_sdk() -> None:
    """Within a second of the command: the check never waits for the SageMaker SDK to import."""
    probe = (
        "import sys; from modelbuild.data_check import check_dataset; "
        "from modelbuild.datasets import get_dataset; check_dataset(get_dataset('wine')); "
        "print('sagemaker' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "False"
