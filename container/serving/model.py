"""A loaded model as the server holds it: the verified estimator, its decoder and its labels.

Loading goes through `container.artifact.load_model_dir`, which checks the signature, the sha256
of the model file and the library versions before anything is unpickled. Then
`container.fastpath.choose_path` picks the cheapest predict proved equal to the Pipeline's, and
one warm-up prediction on a training-like row proves it answers with one probability per class,
and pays its lazy initialisation before the first real request does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from container.artifact import load_model_dir
from container.errors import InputError
from container.fastpath import PredictPath, choose_path
from container.schema import Schema
from container.serving.decode import InputDecoder


@dataclass
class ServedModel:
    name: str
    url: str
    estimator: Any
    schema: Schema
    signature: dict[str, Any]
    decoder: InputDecoder
    labels: list[Any]  # in predict_proba column order
    keys: list[str]  # the labels as JSON object keys
    path: PredictPath
    load_seconds: float
    loaded_at: float = field(default_factory=time.time)

    @property
    def version(self) -> str:
        return self.signature["model_sha256"]

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        return self.path.predict_proba(matrix)

    def describe(self) -> dict[str, Any]:
        return {
            "modelName": self.name,
            "modelUrl": self.url,
            "modelVersion": self.version,
            "dataset": self.schema.dataset,
            "algorithm": self.signature.get("algorithm"),
            "features": [{"name": f.name, "kind": f.kind} for f in self.schema.features],
            "classes": self.labels,
            "loadedAt": self.loaded_at,
            "loadMillis": round(self.load_seconds * 1000.0, 3),
            "predictPath": self.path.name,
        }


@dataclass(frozen=True)
class PendingModel:
    """A model registered by `POST /models` whose checks that need no unpickling passed, held
    until an invocation names the target model it must be (`--verify-target-model`): only then
    is its model file compared with that name's sha256 and loaded (`container.provenance`)."""

    name: str
    url: str
    directory: Path

    def describe(self) -> dict[str, Any]:
        return {"modelName": self.name, "modelUrl": self.url, "status": "verified on first invoke"}


def _column_labels(estimator: Any, schema: Schema, artifact: Path) -> list[Any]:
    """predict_proba column i is the class encoded as estimator.classes_[i] (see schema.py)."""
    try:
        encoded = list(estimator.classes_)
    except AttributeError:
        raise InputError(
            "the model has no classes_; it is not a fitted classifier", file=artifact
        ) from None
    labels = []
    for code in encoded:
        if not float(code).is_integer() or not 0 <= int(code) < len(schema.classes):
            raise InputError(
                f"the model's class {code!r} is not an index into the signature's classes "
                f"{list(schema.classes)}",
                file=artifact,
            )
        labels.append(schema.classes[int(code)])
    return labels


def _warm_up_row(schema: Schema, signature: dict[str, Any]) -> list[Any]:
    baseline = signature.get("baseline") or {}
    row: list[Any] = []
    for feature in schema.features:
        stats = baseline.get(feature.name, {})
        if feature.kind == "numeric":
            row.append(float(stats.get("mean", 0.0)))
        else:
            shares = stats.get("category_shares") or {}
            row.append(next(iter(shares), None))
    return row


def load_served_model(
    name: str, url: str, artifact_dir: Path, expected_sha256: str | None = None
) -> ServedModel:
    """Load and check one artifact; every problem is an InputError naming it. With
    `expected_sha256`, a model file with other bytes is refused before it is unpickled."""
    started = time.perf_counter()
    loaded = load_model_dir(artifact_dir, expected_sha256=expected_sha256)
    try:
        schema = loaded.schema
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(
            f"the signature's schema is not valid: {error!r}", file=artifact_dir
        ) from None
    estimator = loaded.estimator
    if not callable(getattr(estimator, "predict_proba", None)):
        raise InputError("the model has no predict_proba", file=artifact_dir)
    labels = _column_labels(estimator, schema, artifact_dir)
    decoder = InputDecoder(schema)
    try:
        path = choose_path(estimator, schema, loaded.signature.get("baseline"))
    except Exception as error:  # the proof rows are typical inputs: failing them is broken
        raise InputError(
            f"the model fails to predict rows built from its baseline: {error!r}",
            file=artifact_dir,
        ) from None
    model = ServedModel(
        name=name,
        url=url,
        estimator=estimator,
        schema=schema,
        signature=loaded.signature,
        decoder=decoder,
        labels=labels,
        keys=[str(label) for label in labels],
        path=path,
        load_seconds=0.0,
    )
    try:
        proba = model.predict_proba(decoder.from_rows([_warm_up_row(schema, loaded.signature)]))
    except Exception as error:  # any failure here means the artifact cannot serve
        raise InputError(
            f"the model fails to predict a training-like row: {error!r}", file=artifact_dir
        ) from None
    if np.shape(proba) != (1, len(labels)):
        raise InputError(
            f"the model answers probabilities of shape {np.shape(proba)} for one row and "
            f"{len(labels)} classes",
            file=artifact_dir,
        )
    model.load_seconds = time.perf_counter() - started
    return model
