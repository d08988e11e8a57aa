"""Checking a model.tar.gz before it may reach routing, with the standard library only.

The deploy side must not unpickle anything (and must not need scikit-learn): it verifies what
the serving side will verify again, that the archive is a readable tar.gz holding the model file
and a signature whose recorded sha256 matches that model file.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from container.checksum import sha256_file, sha256_stream
from container.errors import InputError
from container.layout import MODEL_FILE, SIGNATURE_FILE

_SIGNATURE_FIELDS = ("schema", "model_file", "model_sha256")


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
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {member.name.removeprefix("./"): member for member in tar.getmembers()}
            for name in (MODEL_FILE, SIGNATURE_FILE):
                if name not in members or not members[name].isfile():
                    raise ArtifactError(f"the archive has no {name}", file=source)
            signature_stream = tar.extractfile(members[SIGNATURE_FILE])
            model_stream = tar.extractfile(members[MODEL_FILE])
            if signature_stream is None or model_stream is None:
                raise ArtifactError("the archive's members cannot be read", file=source)
            signature = _parse_signature(signature_stream.read(), source)
            model_sha256 = sha256_stream(model_stream)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ArtifactError(f"not a readable tar.gz: {error}", file=source) from None
    if model_sha256 != signature["model_sha256"]:
        raise ArtifactError(
            f"{MODEL_FILE} has sha256 {model_sha256[:12]}... but its signature records "
            f"{str(signature['model_sha256'])[:12]}...; the artifact is corrupt",
            file=source,
        )
    return VerifiedArtifact(archive_sha256, model_sha256, signature)


def _parse_signature(data: bytes, source: str) -> dict[str, Any]:
    try:
        signature = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{SIGNATURE_FILE} is not valid JSON: {error}", file=source) from None
    if not isinstance(signature, dict):
        raise ArtifactError(f"{SIGNATURE_FILE} is not a JSON object", file=source)
    missing = [name for name in _SIGNATURE_FIELDS if name not in signature]
    if missing:
        raise ArtifactError(f"{SIGNATURE_FILE} lacks {', '.join(missing)}", file=source)
    return signature
