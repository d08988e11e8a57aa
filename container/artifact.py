"""The model artifact: `model.joblib` plus `signature.json`, packed as SageMaker's model.tar.gz.

The signature is the contract the serving side reads before it trusts the pickle: feature names
and types, class labels, algorithm, hyperparameters, CV score, library versions, baseline
statistics, and the sha256 of the model file. Loading checks the checksum *before* unpickling and
refuses library versions other than the ones the model was fitted with.

The signature's checksum only shows that the archive agrees with itself: whoever crafts an
archive writes a matching signature. What vouches for the model file is the sha256 the deploy
routed (`container.provenance`: carried in the target model's name, checked by the deploy
against the registry's record), so the serving side passes it as `expected_sha256`, and a model
file with other bytes is refused before it is unpickled (`NotTheRoutedModel`).
"""

from __future__ import annotations

import io
import json
import platform
import tarfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib

from container.archive import error_reason, unpack_archive
from container.checksum import sha256_file, sha256_stream
from container.errors import InputError
from container.files import write_atomically
from container.layout import MODEL_FILE, SIGNATURE_FILE
from container.schema import Schema

SIGNATURE_VERSION = 1
# Distributions whose version must match between training and serving for a pickle to be safe.
PINNED_LIBRARIES = ("scikit-learn", "xgboost-cpu", "lightgbm", "numpy", "joblib")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PINNED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


@dataclass(frozen=True)
class LoadedModel:
    estimator: Any
    signature: dict[str, Any]

    @property
    def schema(self) -> Schema:
        return Schema.from_dict(self.signature["schema"])


def save_model(directory: Path, estimator: Any, signature: dict[str, Any]) -> dict[str, Any]:
    """Write the model, then the signature naming its checksum (the signature commits the pair)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SIGNATURE_FILE).unlink(missing_ok=True)
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    write_atomically(directory / MODEL_FILE, buffer.getvalue())
    complete = {
        "signature_version": SIGNATURE_VERSION,
        **signature,
        "library_versions": library_versions(),
        "model_file": MODEL_FILE,
        "model_sha256": sha256_file(directory / MODEL_FILE),
    }
    write_atomically(
        directory / SIGNATURE_FILE, json.dumps(complete, indent=2, sort_keys=True).encode()
    )
    return complete


def pack(directory: Path, destination: Path) -> Path:
    """A reproducible model.tar.gz (sorted members, zeroed times), as SageMaker would upload."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for name in (MODEL_FILE, SIGNATURE_FILE):
            info = tar.gettarinfo(str(directory / name), arcname=name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with (directory / name).open("rb") as stream:
                tar.addfile(info, stream)
    write_atomically(destination, buffer.getvalue())
    return destination


def unpack(archive: Path, directory: Path) -> Path:
    """Extract a model.tar.gz with bounded sizes and clean errors (`container.archive`)."""
    if not archive.is_file():
        raise InputError("model artifact not found", file=archive)
    unpack_archive(archive, directory, archive)
    return directory


def read_signature(directory: Path) -> dict[str, Any]:
    path = directory / SIGNATURE_FILE
    if not path.is_file():
        raise InputError("artifact has no signature.json", file=path)
    try:
        signature = json.loads(path.read_text())
    except ValueError as error:
        raise InputError(f"signature is not valid JSON: {error}", file=path) from None
    for key in ("schema", "model_file", "model_sha256", "library_versions", "algorithm"):
        if key not in signature:
            raise InputError(f"signature lacks the field '{key}'", file=path)
    return signature


def check_library_versions(signature: dict[str, Any], file: Path | None = None) -> None:
    current = library_versions()
    expected = signature["library_versions"]
    mismatched = {
        name: f"trained with {expected.get(name)}, here {current[name]}"
        for name in PINNED_LIBRARIES
        if expected.get(name) != current[name]
    }
    if mismatched:
        raise InputError(f"library versions differ from training: {mismatched}", file=file)


class NotTheRoutedModel(InputError):
    """The model file's sha256 differs from the one the deploy routed; it was never unpickled.

    The message names no file: the serving side's files are its own, the caller knows the model.
    """


def check_model_dir(directory: Path, check_versions: bool = True) -> dict[str, Any]:
    """What can be checked without unpickling: the signature, the model file it names and, with
    `check_versions`, the library versions. The signature, or InputError naming the problem."""
    signature = read_signature(directory)
    model_path = directory / MODEL_FILE
    if signature["model_file"] != MODEL_FILE or not model_path.is_file():
        raise InputError("model file named by the signature is missing", file=model_path)
    if check_versions:
        check_library_versions(signature, directory / SIGNATURE_FILE)
    return signature


def load_model_dir(
    directory: Path, check_versions: bool = True, expected_sha256: str | None = None
) -> LoadedModel:
    """Verify, then unpickle: the model file's sha256 must match its signature's and, when given,
    `expected_sha256` (what the deploy routed). The bytes hashed are the bytes unpickled: one
    open file is read for the checksum, then rewound for joblib."""
    signature = check_model_dir(directory, check_versions)
    model_path = directory / MODEL_FILE
    with model_path.open("rb") as stream:
        actual = sha256_stream(stream)
        if actual != signature["model_sha256"]:
            raise InputError("model file checksum does not match its signature", file=model_path)
        if expected_sha256 is not None and actual != expected_sha256:
            raise NotTheRoutedModel(
                f"the model file has sha256 {actual[:12]}..., not the {expected_sha256[:12]}... "
                "its target model names: it is not the model the deploy verified and routed, "
                "and was not loaded"
            )
        stream.seek(0)
        try:
            estimator = joblib.load(stream)
        except Exception as error:  # a pickle can fail in any way; the checksum already passed
            raise InputError(
                f"model file cannot be loaded: {type(error).__name__}: {error_reason(error)}",
                file=model_path,
            ) from None
    return LoadedModel(estimator, signature)


def load_artifact(archive: Path, workdir: Path, check_versions: bool = True) -> LoadedModel:
    return load_model_dir(unpack(archive, workdir), check_versions)
