"""Storage and registry on AWS: S3 and the SageMaker model registry through boto3.

A failed call is classified once (`modelbuild.aws_calls.is_outage`, shared with modelbuild):
throttling, a 5xx answer, a dropped connection or a timeout is the service's trouble and may pass (`StorageUnavailable`, `RegistryUnavailable`:
ServiceErrors, a distinct exit code at the command line); access denied, a failed validation or
a missing bucket or package is the same next time (`StorageRefused`, `RegistryRefused`: InputErrors).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from container.checksum import sha256_stream
from container.errors import ProjectError
from modelbuild.aws_calls import NOT_FOUND_CODES, error_code, is_outage
from modeldeploy.interfaces import (
    ModelPackageRef,
    NoSuchObject,
    RegistryRefused,
    RegistryUnavailable,
    StorageRefused,
    StorageUnavailable,
)
from modeldeploy.naming import MODEL_SHA256_METADATA_KEY, split_s3_uri

_CHUNK = 1 << 20
# UpdateModelPackage's ApprovalDescription limit.
_APPROVAL_DESCRIPTION_MAX = 1024


def _storage_error(message: str, error: ClientError | BotoCoreError) -> ProjectError:
    kind = StorageUnavailable if is_outage(error) else StorageRefused
    return kind(f"{message}: {error}")


def _registry_error(message: str, error: ClientError | BotoCoreError) -> ProjectError:
    kind = RegistryUnavailable if is_outage(error) else RegistryRefused
    return kind(f"{message}: {error}")


class S3Storage:
    def __init__(self, client: Any | None = None) -> None:
        self.client = client if client is not None else boto3.client("s3")

    def _fail(self, action: str, uri: str, error: ClientError | BotoCoreError) -> ProjectError:
        return _storage_error(f"cannot {action} {uri}", error)

    def read(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) in NOT_FOUND_CODES:
                raise NoSuchObject(f"no such object: {uri}") from None
            raise self._fail("read", uri, error) from None
        except BotoCoreError as error:
            raise self._fail("read", uri, error) from None

    def write(self, uri: str, data: bytes, content_type: str) -> None:
        bucket, key = split_s3_uri(uri)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as error:
            raise self._fail("write", uri, error) from None

    def download(self, uri: str, destination: Path) -> None:
        bucket, key = split_s3_uri(uri)
        try:
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
            with destination.open("wb") as sink:
                for block in iter(lambda: body.read(_CHUNK), b""):
                    sink.write(block)
        except ClientError as error:
            if error_code(error) in NOT_FOUND_CODES:
                raise NoSuchObject(f"no such object: {uri}") from None
            raise self._fail("download", uri, error) from None
        except BotoCoreError as error:
            raise self._fail("download", uri, error) from None

    def upload(self, source: Path, uri: str) -> None:
        bucket, key = split_s3_uri(uri)
        try:
            with source.open("rb") as stream:
                self.client.put_object(
                    Bucket=bucket, Key=key, Body=stream, ContentType="application/gzip"
                )
        except (ClientError, BotoCoreError) as error:
            raise self._fail("upload to", uri, error) from None

    def sha256(self, uri: str) -> str | None:
        bucket, key = split_s3_uri(uri)
        try:
            return sha256_stream(self.client.get_object(Bucket=bucket, Key=key)["Body"])
        except ClientError as error:
            if error_code(error) in NOT_FOUND_CODES:
                return None
            raise self._fail("read", uri, error) from None
        except BotoCoreError as error:
            raise self._fail("read", uri, error) from None

    def exists(self, uri: str) -> bool:
        bucket, key = split_s3_uri(uri)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as error:
            if error_code(error) in NOT_FOUND_CODES:
                return False
            raise self._fail("look up", uri, error) from None
        except BotoCoreError as error:
            raise self._fail("look up", uri, error) from None

    def list(self, prefix_uri: str) -> list[str]:
        bucket, prefix = _split_prefix(prefix_uri)
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as error:
            raise self._fail("list", prefix_uri, error) from None
        return sorted(f"s3://{bucket}/{key}" for key in keys)

    def delete(self, uri: str) -> None:
        bucket, key = split_s3_uri(uri)
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as error:
            raise self._fail("delete", uri, error) from None


def _split_prefix(prefix_uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", prefix_uri)
    if match is None:
        raise StorageRefused(f"'{prefix_uri}' is not an s3://bucket/prefix URI")
    return match.group(1), match.group(2)


class SageMakerRegistry:
    def __init__(self, client: Any | None = None) -> None:
        self.client = client if client is not None else boto3.client("sagemaker")

    def latest_approved(self, group: str) -> ModelPackageRef | None:
        try:
            # ListModelPackages sorts Ascending by default: without SortOrder the first
            # summary would be the *oldest* approved version.
            summaries = self.client.list_model_packages(
                ModelPackageGroupName=group,
                ModelApprovalStatus="Approved",
                SortBy="CreationTime",
                SortOrder="Descending",
                MaxResults=1,
            )["ModelPackageSummaryList"]
            if not summaries:
                return None
            arn = summaries[0]["ModelPackageArn"]
            description = self.client.describe_model_package(ModelPackageName=arn)
        except (ClientError, BotoCoreError) as error:
            raise _registry_error(
                f"cannot read model package group '{group}' from the model registry", error
            ) from None
        containers = description.get("InferenceSpecification", {}).get("Containers", [])
        if not containers or not containers[0].get("ModelDataUrl"):
            raise RegistryRefused(f"model package {arn} has no ModelDataUrl to deploy")
        return ModelPackageRef(
            arn=arn,
            group=group,
            version=int(description["ModelPackageVersion"]),
            model_data_url=containers[0]["ModelDataUrl"],
        )

    def is_approved(self, arn: str) -> bool:
        try:
            status = self.client.describe_model_package(ModelPackageName=arn)
        except ClientError as error:
            message = str(error.response.get("Error", {}).get("Message", ""))
            if error_code(error) == "ValidationException" and "not" in message.lower():
                return False  # deleted or never existed
            raise _registry_error(f"cannot describe model package {arn}", error) from None
        except BotoCoreError as error:
            raise _registry_error(f"cannot describe model package {arn}", error) from None
        return status.get("ModelApprovalStatus") == "Approved"

    def reject(self, arn: str, reason: str) -> None:
        try:
            self.client.update_model_package(
                ModelPackageArn=arn,
                ModelApprovalStatus="Rejected",
                ApprovalDescription=reason[:_APPROVAL_DESCRIPTION_MAX],
            )
        except (ClientError, BotoCoreError) as error:
            raise _registry_error(f"cannot reject model package {arn}", error) from None

    def recorded_model_sha256(self, arn: str) -> str | None:
        try:
            description = self.client.describe_model_package(ModelPackageName=arn)
        except (ClientError, BotoCoreError) as error:
            raise _registry_error(f"cannot describe model package {arn}", error) from None
        metadata = description.get("CustomerMetadataProperties") or {}
        return metadata.get(MODEL_SHA256_METADATA_KEY)
