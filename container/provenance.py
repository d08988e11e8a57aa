"""What the deploy routed, as the serving side can know it: the model file's sha256 in the name of
the target model.

The pipeline records the model file's sha256 in the model registry when it registers a version
(where only the pipeline's role writes); the deploy refuses an artifact whose model file differs
from that record, and places it under a key that carries the full digest,

    <dataset>/<package version>-<model file sha256>.tar.gz

which the routing table names and the invoker sends as the invocation's TargetModel. SageMaker
gives the serving container that key only as the X-Amzn-SageMaker-Target-Model header of an
invocation (the model_name of `POST /models` is opaque, the artifact an extracted directory), so
the container compares the model file with the digest in that header before it unpickles
anything: an archive replaced or crafted under the stage's prefix, however consistent its own
signature.json, is refused.

Standard library only: the deploy side and the serving supervisor import it without ML libraries.
"""

from __future__ import annotations

import re
from typing import Final

ARTIFACT_SUFFIX: Final = ".tar.gz"
SHA256_PATTERN: Final = re.compile(r"[0-9a-f]{64}")
# The last path segment: anything, a hyphen, 64 lowercase hex digits, the archive suffix.
_ROUTED_NAME: Final = re.compile(r"(?:\A|/)[^/]*-(?P<sha256>[0-9a-f]{64})\.tar\.gz\Z")


def routed_file_name(package_version: int, model_sha256: str) -> str:
    """The last segment of a routed target model: `<version>-<model sha256>.tar.gz`."""
    if not SHA256_PATTERN.fullmatch(model_sha256):
        raise ValueError(f"'{model_sha256}' is not a hex sha256 digest")
    return f"{package_version}-{model_sha256}{ARTIFACT_SUFFIX}"


def routed_model_sha256(target_model: str | None) -> str | None:
    """The model file's sha256 a target model's name carries, or None if it carries none."""
    if not target_model:
        return None
    match = _ROUTED_NAME.search(target_model)
    return match["sha256"] if match else None
