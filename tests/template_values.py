"""A deployed project's values: template parameters as SageMaker passes them, and the attributes
(ARNs, names) CloudFormation would give each resource, derived from the resource's own
properties so the roles resolve to the ARNs the code will really meet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modeldeploy.build import load_template
from template import PROJECT_TEMPLATE
from tests.cfn_support import Evaluator
from tests.runtime_iam import ACCOUNT, PARTITION, REGION

# SageMaker lowercases project names in the ARNs it makes; the template allows only lowercase.
PROJECT = "churn-models"
PROJECT_ID = "p-abc123def456"
PROJECT_PARAMETERS = {
    "SageMakerProjectName": PROJECT,
    "SageMakerProjectId": PROJECT_ID,
    # SourceProvider CodeCommit (the default) needs the bucket `template.package` uploaded to.
    "SeedCodeBucket": "my-templates",
}
# A KMS key's ARN holds an id CloudFormation cannot know in advance.
KEY_ARN = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _regional(service: str, resource: str) -> str:
    return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}"


# Type -> (the property that names the resource, its Ref and GetAtt values from that name), by
# each type's documented return values ("Return values" in the CloudFormation resource reference).
_NAMED: dict[str, tuple[str, Callable[[str], dict[str, str]]]] = {
    "AWS::S3::Bucket": ("BucketName", lambda n: {"": n, "Arn": f"arn:{PARTITION}:s3:::{n}"}),
    "AWS::ECR::Repository": (
        "RepositoryName",
        lambda n: {
            "": n,
            "Arn": _regional("ecr", f"repository/{n}"),
            "RepositoryUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{n}",
        },
    ),
    "AWS::CodeBuild::Project": (
        "Name",
        lambda n: {"": n, "Arn": _regional("codebuild", f"project/{n}")},
    ),
    "AWS::CodePipeline::Pipeline": ("Name", lambda n: {"": n}),
    "AWS::SSM::Parameter": ("Name", lambda n: {"": n}),
    "AWS::SNS::Topic": ("TopicName", lambda n: {"": _regional("sns", n), "TopicName": n}),
    "AWS::CodeCommit::Repository": (
        "RepositoryName",
        lambda n: {"": n, "Name": n, "Arn": _regional("codecommit", n)},
    ),
    # A log group's Arn attribute ends in ":*".
    "AWS::Logs::LogGroup": (
        "LogGroupName",
        lambda n: {"": n, "Arn": _regional("logs", f"log-group:{n}:*")},
    ),
    "AWS::DynamoDB::Table": (
        "TableName",
        lambda n: {"": n, "Arn": _regional("dynamodb", f"table/{n}")},
    ),
    "AWS::SageMaker::Endpoint": (
        "EndpointName",
        lambda n: {"": _regional("sagemaker", f"endpoint/{n.lower()}"), "EndpointName": n},
    ),
    "AWS::Lambda::Function": (
        "FunctionName",
        lambda n: {"": n, "Arn": _regional("lambda", f"function:{n}")},
    ),
}


def _role(properties: dict[str, Any]) -> dict[str, str]:
    name = properties["RoleName"]
    return {
        "": name,
        "Arn": f"arn:{PARTITION}:iam::{ACCOUNT}:role{properties.get('Path', '/')}{name}",
    }


def attributes(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, str]:
    """Every named resource's Ref ("Logical") and GetAtt ("Logical.Attr") values, from its
    naming properties resolved for `parameters`. A role without RoleName gets CloudFormation's
    generated <stack>-<logical id>-<suffix> name under its path."""
    resolve = Evaluator(template, **parameters)
    found: dict[str, str] = {}
    for logical_id, body in template["Resources"].items():
        kind, properties = body["Type"], body.get("Properties", {})
        if kind == "AWS::KMS::Key":
            values = {"": KEY_ARN.rsplit("/", 1)[1], "Arn": KEY_ARN}
        elif kind == "AWS::IAM::Role":
            named = {k: properties[k] for k in ("RoleName", "Path") if k in properties}
            named.setdefault("RoleName", f"stack-{logical_id}-ABCDEF123456")
            values = _role(resolve(named))
        elif kind in _NAMED:
            prop, values_of = _NAMED[kind]
            values = values_of(resolve(properties[prop]))
        else:
            continue
        for attribute, value in values.items():
            found[f"{logical_id}.{attribute}" if attribute else logical_id] = value
    return found


def project_template() -> dict[str, Any]:
    return load_template(PROJECT_TEMPLATE)


def project_resolver(template: dict[str, Any], **overrides: Any) -> Evaluator:
    parameters = {**PROJECT_PARAMETERS, **overrides}
    return Evaluator(template, attributes=attributes(template, parameters), **parameters)


def endpoint_resolver(template: dict[str, Any], parameters: dict[str, Any]) -> Evaluator:
    """The endpoint stack resolved for a stage config's parameters (the build's export)."""
    known = {k: v for k, v in parameters.items() if k in template["Parameters"]}
    return Evaluator(template, attributes=attributes(template, known), **known)
