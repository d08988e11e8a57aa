"""The model package group's latest version, which a new execution's model is compared with.

SageMaker never caches a register step, so the pipeline registers only a model whose checksum
differs from the group's latest version (`CheckModelChanged`). The pipeline cannot ask the
registry itself, so the run command does, just before it starts the execution, and passes the
answer as the LatestModelSha256 and LatestModelVersion parameters. The checksum is the one the
register step writes into the version's CustomerMetadataProperties (`MODEL_SHA256_METADATA_KEY`).

`ModelVersions` is the lookup; `SageMakerVersions` answers it with boto3, and the local runtime
answers it from its SQLite registry (`local.runs.LocalVersions`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from container.errors import InputError
from modelbuild import naming
from modelbuild.naming import Params

SHA256_PATTERN = r"[0-9a-f]{64}"
# Versions that are not (or no longer) in the registry's history a model should be compared with.
_GONE_STATUSES = frozenset({"Failed", "Deleting"})


@dataclass(frozen=True)
class LatestVersion:
    """A group's newest version and the model checksum it carries ("" when it carries none)."""

    arn: str
    version: int
    model_sha256: str
    approval_status: str


class ModelVersions(Protocol):
    def latest(self, group: str) -> LatestVersion | None:
        """The group's most recently created version; None if it has none."""
        ...


def latest_version(
    arn: str, version: int, approval_status: str, metadata: dict[str, str] | None
) -> LatestVersion:
    """A version as the comparison sees it: a checksum that is not a sha256 counts as none."""
    checksum = (metadata or {}).get(naming.MODEL_SHA256_METADATA_KEY, "")
    if not re.fullmatch(SHA256_PATTERN, checksum):
        checksum = ""
    return LatestVersion(arn, version, checksum, approval_status)


class SageMakerVersions:
    def __init__(self, client: Any) -> None:
        self.client = client

    def latest(self, group: str) -> LatestVersion | None:
        try:
            token: str | None = None
            while True:
                # ListModelPackages sorts ascending unless told otherwise.
                page = self.client.list_model_packages(
                    ModelPackageGroupName=group,
                    SortBy="CreationTime",
                    SortOrder="Descending",
                    **({"NextToken": token} if token else {}),
                )
                summary = next(
                    (
                        s
                        for s in page.get("ModelPackageSummaryList", [])
                        if s.get("ModelPackageStatus") not in _GONE_STATUSES
                    ),
                    None,
                )
                token = page.get("NextToken")
                if summary is not None or not token:
                    break
            if summary is None:
                return None
            described = self.client.describe_model_package(
                ModelPackageName=summary["ModelPackageArn"]
            )
        except (ClientError, BotoCoreError) as error:
            raise InputError(
                f"cannot read the latest version of model package group '{group}': {error}"
            ) from None
        return latest_version(
            described["ModelPackageArn"],
            int(described["ModelPackageVersion"]),
            described.get("ModelApprovalStatus", ""),
            described.get("CustomerMetadataProperties"),
        )


def comparison_parameters(latest: LatestVersion | None) -> dict[str, str | int]:
    """The execution parameters CheckModelChanged compares with ("" and 0: nothing to compare)."""
    if latest is None:
        return {Params.LATEST_MODEL_SHA256: "", Params.LATEST_MODEL_VERSION: 0}
    return {
        Params.LATEST_MODEL_SHA256: latest.model_sha256,
        Params.LATEST_MODEL_VERSION: latest.version,
    }


def describe_comparison(latest: LatestVersion | None) -> str:
    """What the run command says before it starts the execution."""
    if latest is None:
        return "no version registered yet: the model will be registered"
    if not latest.model_sha256:
        return (
            f"latest version {latest.version} carries no {naming.MODEL_SHA256_METADATA_KEY}: "
            "the model will be registered"
        )
    return (
        f"latest version {latest.version} ({latest.approval_status}) has model sha256 "
        f"{latest.model_sha256[:12]}: an equal model will not be registered again"
    )


def unchanged_message(version: int, model_sha256: str) -> str:
    """The outcome of an execution whose CheckModelChanged found the latest version's model."""
    return (
        f"unchanged: the best model equals version {version} (sha256 {model_sha256[:12]}); "
        "nothing registered"
    )
