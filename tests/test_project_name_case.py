"""Project names are lowercase: SageMaker lowercases its ARNs and IAM compares them
case-sensitively, so a capitalised name would lock the project's roles out of its own endpoint."""

from __future__ import annotations

import re
from typing import Any

import pytest
from click.testing import CliRunner

from container.errors import InputError
from local.cli import main
from modelbuild import naming
from modeldeploy.build import load_template
from template import PROJECT_TEMPLATE
from tests.cfn_support import Evaluator
from tests.iam_policy import Request, allows, role_statements

PROJECT_ID = "p-abc123def456"
ATTRIBUTES = {
    "ArtifactBucket.Arn": "arn:aws:s3:::sagemaker-project-p-abc123def456",
    "ArtifactKey.Arn": "arn:aws:kms:eu-west-1:123456789012:key/1234",
}


def sagemaker_endpoint_arn(name: str) -> str:
    # What SageMaker returns for CreateEndpoint(EndpointName=name): the ARN is lowercase.
    return f"arn:aws:sagemaker:eu-west-1:123456789012:endpoint/{name.lower()}"


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    return load_template(PROJECT_TEMPLATE)


def smoke_test_allowed(project: dict[str, Any], project_name: str) -> bool:
    resolve = Evaluator(
        project,
        attributes=ATTRIBUTES,
        SageMakerProjectName=project_name,
        SageMakerProjectId=PROJECT_ID,
    )
    statements = role_statements(project, "ModelDeployRole", resolve)
    endpoint = sagemaker_endpoint_arn(f"{project_name}-dev")
    return allows(statements, Request("sagemaker:InvokeEndpoint", endpoint))


def test_a_capitalised_name_would_lock_the_deploy_role_out_of_its_endpoint(
    project: dict[str, Any],
) -> None:
    assert smoke_test_allowed(project, "churn-models")
    assert not smoke_test_allowed(project, "Churn-Models")


def test_the_template_refuses_capitals_with_the_reason(project: dict[str, Any]) -> None:
    parameter = project["Parameters"]["SageMakerProjectName"]
    pattern = parameter["AllowedPattern"]
    assert re.fullmatch(pattern, "churn-models")
    assert not re.fullmatch(pattern, "Churn-Models")
    assert "lowercase" in parameter["ConstraintDescription"]


def test_the_code_refuses_capitals_naming_the_lowercase_name() -> None:
    with pytest.raises(InputError, match="use 'churn-models'"):
        naming.check_project_name("Churn-Models")
    result = CliRunner().invoke(main, ["--project-name", "Churn", "models"])
    assert result.exit_code == 2
    assert "use 'churn'" in result.output
    assert "Traceback" not in result.output
