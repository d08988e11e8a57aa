"""Class probabilities -> the response body, in JSON or CSV.

JSON (the default):
    {"predictions": [{"label": <label>, "probabilities": {"<label>": p, ...}}, ...],
     "classes": [<label>, ...], "model_version": "<sha256 of model.joblib>"}
CSV (`Accept: text/csv`): a header row `label,<label>,...` then one row per input row.

The label is the class with the highest probability: one `predict_proba` call answers both, and
tree ensembles pay per call.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import orjson

JSON = "application/json"
CSV = "text/csv"


def encode_json(proba: np.ndarray, labels: list[Any], keys: list[str], version: str) -> bytes:
    winners = proba.argmax(axis=1).tolist()
    predictions = [
        {"label": labels[k], "probabilities": dict(zip(keys, row, strict=True))}
        for k, row in zip(winners, proba.tolist(), strict=True)
    ]
    return orjson.dumps({"predictions": predictions, "classes": labels, "model_version": version})


def encode_csv(proba: np.ndarray, labels: list[Any], keys: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", *keys])
    winners = proba.argmax(axis=1).tolist()
    writer.writerows([labels[k], *row] for k, row in zip(winners, proba.tolist(), strict=True))
    return buffer.getvalue().encode()


def negotiate(accept: str) -> str | None:
    """The response type for an Accept header: JSON unless CSV is asked for first; None if
    the caller accepts neither."""
    if not accept:
        return JSON
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in (JSON, "application/*", "*/*", "*"):
            return JSON
        if media in (CSV, "text/*"):
            return CSV
    return None
