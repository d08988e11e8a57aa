"""Checking a model.tar.gz before it may reach routing, with the standard library only.

The deploy side must not unpickle anything (and must not need scikit-learn), so it checks what
can be known without loading the model, and refuses before the swap what the serving side would
refuse after it:

- the archive: a readable tar.gz within the size limits (`container.archive`: bounded members and
  sizes, so a decompression bomb is refused at its header), holding the model file and a signature
  whose recorded sha256 matches that model file;
- the model file against the sha256 the pipeline recorded in the model registry when it
  registered the version (`check_registered_checksum`): the signature inside the archive proves
  only that the archive agrees with itself, since whoever crafts an archive writes a matching
  one; the registry's record is written by the pipeline alone;
- the signature's schema: the dataset it was trained for is the one being deployed, and it names
  features and classes the way the serving container reads them;
- the library versions the model was trained with against the serving image's (the container
  refuses a pickle from other versions): `serving_versions`, the versions pyproject.toml pins
  (what the image installs), or the installed ones where the local endpoint serves from this
  environment.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from container.archive import ArchiveError, checked_members, open_archive
from container.checksum import sha256_file, sha256_stream
from container.errors import InputError
from container.layout import MODEL_FILE, SIGNATURE_FILE
from container.provenance import SHA256_PATTERN
from modeldeploy.naming import MODEL_SHA256_METADATA_KEY

_SIGNATURE_FIELDS = ("schema", "model_file", "model_sha256")
# The signature is read whole into memory; real ones are a few hundred KB (baseline statistics).
MAX_SIGNATURE_BYTES = 16 * 1024 * 1024
# The kinds the serving decoder knows (container.schema.FeatureKind).
FEATURE_KINDS = ("numeric", "categorical")
# Recorded in library_versions for information; the serving side compares only the libraries.
INTERPRETER = "python"
ABSENT = "absent"  # what container.artifact.library_versions records for a missing library
# The image installs the project (`pip install .`): its libraries at the versions pinned here.
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

# A distribution name -> the version the serving side has (ABSENT if none).
ServingVersions = Callable[[str], str]


class ArtifactError(InputError):
    """An artifact that must not be deployed; the message names the problem."""


@dataclass(frozen=True)
class VerifiedArtifact:
    sha256: str  # of the archive: what the routing table and the copy check record
    model_sha256: str  # of model.joblib: the model_version the serving container reports
    signature: dict[str, Any]


def verify_archive(path: Path, source: str) -> VerifiedArtifact:
    """The archive's checksum and signature, or ArtifactError naming `source` and the problem."""
    archive_sha256 = sha256_file(path)
    signature: dict[str, Any] | None = None
    model_sha256: str | None = None
    try:
        with open_archive(path, source) as tar:
            for member in checked_members(tar, source):
                name = member.name.removeprefix("./")
                if name == SIGNATURE_FILE and member.isfile():
                    if member.size > MAX_SIGNATURE_BYTES:
                        raise ArtifactError(
                            f"{SIGNATURE_FILE} is {member.size} bytes, over the "
                            f"{MAX_SIGNATURE_BYTES} a signature may have",
                            file=source,
                        )
                    signature = _parse_signature(_read(tar, member, source), source)
                elif name == MODEL_FILE and member.isfile():
                    stream = tar.extractfile(member)
                    if stream is None:
                        raise ArtifactError(f"{MODEL_FILE} cannot be read", file=source)
                    model_sha256 = sha256_stream(stream)
    except ArchiveError as error:
        raise ArtifactError(error.problem, file=source) from None
    for name, found in ((MODEL_FILE, model_sha256), (SIGNATURE_FILE, signature)):
        if found is None:
            raise ArtifactError(f"the archive has no {name}", file=source)
    assert signature is not None and model_sha256 is not None
    if model_sha256 != signature["model_sha256"]:
        raise ArtifactError(
            f"{MODEL_FILE} has sha256 {model_sha256[:12]}... but its signature records "
            f"{str(signature['model_sha256'])[:12]}...; the artifact is corrupt",
            file=source,
        )
    return VerifiedArtifact(archive_sha256, model_sha256, signature)


def check_registered_checksum(
    model_sha256: str, recorded: str | None, dataset: str, version: int, source: str
) -> None:
    """Refuse a model file other than the one the pipeline registered as `version`.

    A version without a recorded checksum (registered before the pipeline recorded them, or by
    hand) is refused too: nothing outside the archive vouches for its model file, and accepting
    it would let a crafted archive through under an old version. Running the pipeline again
    registers the model anew, with its checksum.
    """
    if recorded is None:
        raise ArtifactError(
            f"version {version} has no '{MODEL_SHA256_METADATA_KEY}' in the model registry, so "
            "its model file cannot be verified (it was registered before the pipeline recorded "
            "model checksums, or not by the pipeline); run the pipeline again to register the "
            "model with its checksum, then approve the new version",
            dataset=dataset,
        )
    if not SHA256_PATTERN.fullmatch(recorded):
        raise ArtifactError(
            f"version {version} records '{MODEL_SHA256_METADATA_KEY}' as {recorded[:80]!r}, "
            "which is not a sha256 digest; its model file cannot be verified",
            dataset=dataset,
        )
    if model_sha256 != recorded:
        raise ArtifactError(
            f"version {version}: the model file in the artifact has sha256 {model_sha256[:12]}... "
            f"but the pipeline registered {recorded[:12]}...; the artifact was changed after "
            "registration and is not deployed",
            dataset=dataset,
            file=source,
        )


def _read(tar: Any, member: Any, source: str) -> bytes:
    stream = tar.extractfile(member)
    if stream is None:
        raise ArtifactError(f"{member.name} cannot be read", file=source)
    return bytes(stream.read())


def _parse_signature(data: bytes, source: str) -> dict[str, Any]:
    try:
        signature = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise ArtifactError(f"{SIGNATURE_FILE} is not valid JSON: {error}", file=source) from None
    if not isinstance(signature, dict):
        raise ArtifactError(f"{SIGNATURE_FILE} is not a JSON object", file=source)
    missing = [name for name in _SIGNATURE_FIELDS if name not in signature]
    if missing:
        raise ArtifactError(f"{SIGNATURE_FILE} lacks {', '.join(missing)}", file=source)
    return signature


def check_servable(
    signature: dict[str, Any],
    dataset: str,
    source: str,
    serving_versions: ServingVersions | None,
) -> None:
    """Refuse what the serving side would refuse once routed: a schema for another dataset or
    one it cannot read, and library versions other than the image's (`serving_versions`; None
    when they cannot be known here)."""
    _check_schema(signature["schema"], dataset, source)
    if serving_versions is not None:
        _check_versions(signature, serving_versions, source)


def _check_schema(schema: Any, dataset: str, source: str) -> None:
    def refuse(problem: str) -> ArtifactError:
        return ArtifactError(f"{SIGNATURE_FILE}: {problem}", dataset=dataset, file=source)

    if not isinstance(schema, dict):
        raise refuse("'schema' is not an object")
    if schema.get("dataset") != dataset:
        raise refuse(
            f"the model was trained for dataset {schema.get('dataset')!r}, not {dataset!r}"
        )
    features = schema.get("features")
    if not isinstance(features, list) or not features:
        raise refuse("the schema names no features")
    for position, feature in enumerate(features):
        if (
            not isinstance(feature, dict)
            or not isinstance(feature.get("name"), str)
            or feature.get("kind") not in FEATURE_KINDS
        ):
            raise refuse(
                f"feature {position} must have a name and a kind ({' or '.join(FEATURE_KINDS)}), "
                f"got {str(feature)[:100]}"
            )
    names = [feature["name"] for feature in features]
    if len(set(names)) != len(names):
        raise refuse("the schema names a feature twice")
    classes = schema.get("classes")
    if not isinstance(classes, list) or len(classes) < 2:
        raise refuse("the schema must name at least two classes")


def _check_versions(signature: dict[str, Any], serving: ServingVersions, source: str) -> None:
    trained = signature.get("library_versions")
    if not isinstance(trained, dict):
        raise ArtifactError(f"{SIGNATURE_FILE} records no library versions", file=source)
    mismatched = {
        name: f"trained with {version}, the serving image has {serving(name)}"
        for name, version in sorted(trained.items())
        if name != INTERPRETER and serving(name) != version
    }
    if mismatched:
        raise ArtifactError(
            f"the serving container would refuse this model, its library versions differ: "
            f"{mismatched}; retrain it with the image's libraries (or rebuild the image)",
            file=source,
        )


def _normalise(name: str) -> str:
    # PEP 503: case and runs of -_. do not distinguish distributions.
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions(pyproject: Path = PYPROJECT) -> ServingVersions | None:
    """The versions pyproject.toml pins exactly (`name==version`), which the image installs;
    None when there is no pyproject.toml to read."""
    try:
        document = tomllib.loads(pyproject.read_text())
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InputError(
            f"cannot read the pinned library versions: {error}", file=pyproject
        ) from None
    pins = {}
    for requirement in document.get("project", {}).get("dependencies", []):
        match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;,]+)\s*", requirement)
        if match:
            pins[_normalise(match[1])] = match[2]
    return lambda name: pins.get(_normalise(name), ABSENT)


def installed_versions(name: str) -> str:
    """The version installed in this environment, which the local serving container runs in."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ABSENT
