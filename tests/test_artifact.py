"""The model artifact: the signature round-trips, and nothing unverified is ever unpickled."""

from __future__ import annotations

import json
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from container.artifact import NotTheRoutedModel, load_artifact, load_model_dir, pack
from container.checksum import sha256_file
from container.errors import InputError
from container.layout import ARTIFACT_FILE, MODEL_FILE, SIGNATURE_FILE
from container.train import train
from container.training import load_training_data


@pytest.fixture
def model_dir(mixed_split: Path, tmp_path: Path) -> Path:
    train({"family": "lightgbm", "cv_folds": "3"}, mixed_split / "train", tmp_path / "model")
    return tmp_path / "model"


def test_signature_round_trips_through_the_tarball(
    model_dir: Path, mixed_split: Path, tmp_path: Path
) -> None:
    archive = pack(model_dir, tmp_path / ARTIFACT_FILE)
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == [MODEL_FILE, SIGNATURE_FILE]
    loaded = load_artifact(archive, tmp_path / "unpacked")
    written = json.loads((model_dir / SIGNATURE_FILE).read_text())
    assert loaded.signature == written

    signature = loaded.signature
    assert signature["model_sha256"] == sha256_file(model_dir / MODEL_FILE)
    assert signature["algorithm"] == "lightgbm"
    assert set(signature["hyperparameters"]) >= {"subsample", "num_leaves"}
    assert signature["cv"]["metric"] == "roc_auc" and 0 < signature["cv"]["mean"] <= 1
    assert {"scikit-learn", "lightgbm", "xgboost-cpu", "numpy", "python"} <= set(
        signature["library_versions"]
    )
    features = signature["schema"]["features"]
    assert {f["name"]: f["kind"] for f in features}["colour"] == "categorical"
    assert signature["schema"]["classes"] == ["ok", "fraud"]
    assert signature["schema"]["positive_class"] == "fraud"
    colour = signature["baseline"]["colour"]
    assert colour["kind"] == "categorical" and colour["missing"] > 0
    x0 = signature["baseline"]["x0"]
    assert sum(x0["bin_shares"]) == pytest.approx(1.0)
    assert len(x0["bin_shares"]) == len(x0["bin_edges"]) + 1

    data = load_training_data(mixed_split / "train")
    original = load_model_dir(model_dir).estimator
    np.testing.assert_array_equal(
        loaded.estimator.predict_proba(data.x), original.predict_proba(data.x)
    )


def test_a_tampered_model_file_is_refused_before_unpickling(model_dir: Path) -> None:
    with (model_dir / MODEL_FILE).open("ab") as stream:
        stream.write(b"tampered")
    with pytest.raises(InputError, match="checksum does not match"):
        load_model_dir(model_dir)


class _CreatesMarker:
    """Unpickling it calls open(marker, "w"): the marker appears only if it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_a_self_consistent_model_file_other_than_the_routed_one_is_never_unpickled(
    model_dir: Path, tmp_path: Path
) -> None:
    """The signature's checksum is rewritten to match the crafted pickle: only the sha256 the
    deploy routed (`expected_sha256`) tells it apart, and it is refused before joblib runs."""
    routed = sha256_file(model_dir / MODEL_FILE)
    marker = tmp_path / "unpickled"
    (model_dir / MODEL_FILE).write_bytes(pickle.dumps(_CreatesMarker(marker)))
    path = model_dir / SIGNATURE_FILE
    signature = json.loads(path.read_text())
    signature["model_sha256"] = sha256_file(model_dir / MODEL_FILE)
    path.write_text(json.dumps(signature))

    with pytest.raises(NotTheRoutedModel, match=f"not the {routed[:12]}") as refused:
        load_model_dir(model_dir, expected_sha256=routed)
    assert str(tmp_path) not in str(refused.value)
    assert not marker.exists()
    # Without the routed checksum the archive's own agreement is all there is: it would run.
    load_model_dir(model_dir).estimator.close()  # the file the pickle opened
    assert marker.exists()


def test_other_library_versions_are_refused(model_dir: Path) -> None:
    path = model_dir / SIGNATURE_FILE
    signature = json.loads(path.read_text())
    signature["library_versions"]["scikit-learn"] = "0.24.2"
    path.write_text(json.dumps(signature))
    with pytest.raises(InputError, match=r"scikit-learn.*trained with 0\.24\.2"):
        load_model_dir(model_dir)


def test_a_corrupt_archive_or_missing_signature_is_named(model_dir: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(InputError, match=r"not a readable tar\.gz"):
        load_artifact(corrupt, tmp_path / "x")
    (model_dir / SIGNATURE_FILE).unlink()
    with pytest.raises(InputError, match=r"no signature\.json"):
        load_model_dir(model_dir)


def test_packing_is_reproducible(model_dir: Path, tmp_path: Path) -> None:
    first = pack(model_dir, tmp_path / "a" / ARTIFACT_FILE)
    second = pack(model_dir, tmp_path / "b" / ARTIFACT_FILE)
    assert sha256_file(first) == sha256_file(second)
