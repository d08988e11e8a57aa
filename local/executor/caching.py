"""Step caching as SageMaker does it, against the earlier executions in the local home.

A step with CacheConfig enabled is reused from the newest earlier successful run of the same
pipeline whose cache key matches, within ExpireAfter. The key hashes the attributes SageMaker's
documentation lists per step type (each handler's `cache_attributes`), resolved, plus the local
image's identity (the container code and library versions, which is what a new image URI would
mean on AWS); outputs go to per-execution prefixes, so they are not part of it. A hit is used
only if the outputs it recorded still exist in local S3.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from container.errors import InputError
from local.executor.model import Outcome
from local.executor.steps import HANDLERS
from local.home import LocalHome

_IMAGE_LIBRARIES = ("scikit-learn", "xgboost-cpu", "lightgbm", "numpy", "pandas", "joblib")
_DURATION = re.compile(
    r"^P(?:(?P<Y>\d+)Y)?(?:(?P<M>\d+)M)?(?:(?P<W>\d+)W)?(?:(?P<D>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$",
    re.IGNORECASE,
)


@cache
def image_identity() -> str:
    """What the local image is: the container code and the libraries it runs with."""
    digest = hashlib.sha256()
    root = Path(sys.modules["container"].__file__ or "").parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    for name in _IMAGE_LIBRARIES:
        try:
            digest.update(f"{name}=={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name} absent".encode())
    return digest.hexdigest()


def parse_duration(value: str) -> timedelta:
    """ISO 8601 durations as CacheConfig.ExpireAfter takes them (a year = 365 days, a month 30)."""
    match = _DURATION.match(value.strip())
    if not match or not any(match.groups()):
        raise InputError(f"CacheConfig ExpireAfter {value!r} is not an ISO 8601 duration")
    part = {k: int(v or 0) for k, v in match.groupdict().items()}
    return timedelta(
        days=part["Y"] * 365 + part["M"] * 30 + part["W"] * 7 + part["D"],
        hours=part["h"],
        minutes=part["m"],
        seconds=part["s"],
    )


def cache_key(pipeline: str, step: Mapping[str, Any], arguments: Mapping[str, Any]) -> str | None:
    """The step's cache key, or None when caching is off for it or its type is never cached."""
    handler = HANDLERS[step["Type"]]
    if not (step.get("CacheConfig") or {}).get("Enabled") or not handler.cache_attributes:
        return None
    payload = {
        "pipeline": pipeline,
        "step": step["Name"],
        "type": step["Type"],
        "image": image_identity(),
        "attributes": handler.cache_payload(arguments),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cache_hit(
    home: LocalHome, pipeline: str, step: Mapping[str, Any], key: str | None
) -> tuple[str, Outcome] | None:
    """(execution id, its outcome) of the run of this step to reuse, or None."""
    if key is None:
        return None
    expire_after = (step.get("CacheConfig") or {}).get("ExpireAfter")
    oldest = (
        datetime.now(UTC) - parse_duration(expire_after)
        if expire_after
        else datetime.min.replace(tzinfo=UTC)
    )
    for source, previous in home.executions.cache_candidates(pipeline, step["Name"], key):
        if previous.ended is None or datetime.fromisoformat(previous.ended) < oldest:
            continue
        if all(_exists(home, uri) for uri in previous.outputs):
            return source, Outcome(
                properties=previous.properties,
                property_files=previous.property_files,
                outputs=previous.outputs,
                metadata={"CacheHit": source},
            )
    return None


def _exists(home: LocalHome, uri: str) -> bool:
    return next(iter(home.s3.list(uri)), None) is not None
