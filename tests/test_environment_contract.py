"""The environment contract: what the templates set for each compute is what its code reads.

Derived from template/project.yml (each CodeBuild project's EnvironmentVariables, the
CodePipeline actions' and EventBridge rules' overrides for it, its buildspec's own `env`), from
modeldeploy/endpoint.yml (the invoker Lambda's Environment) and from the settings classes in
modelbuild/environment.py and modeldeploy/environment.py: every variable a compute's settings
require is set for it, and every variable set for it is one its code declares, so a dead or
misspelt name fails here instead of as a KeyError (or a silent default) on AWS.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from container.errors import InputError
from modelbuild import environment as build_env
from modeldeploy import environment as deploy_env
from modeldeploy.build import TEMPLATE as ENDPOINT_TEMPLATE
from modeldeploy.build import load_template
from template import PROJECT_TEMPLATE
from tests.cfn_support import REPO, Evaluator

# Which settings class holds each compute's contract: (template, logical id) -> class.
CONTRACTS: dict[tuple[str, str], Any] = {
    ("project", "ImageBuildProject"): build_env.ImageBuildSettings,
    ("project", "ModelBuildProject"): build_env.ModelBuildSettings,
    ("project", "ModelDeployBuildProject"): deploy_env.DeploySettings,
    ("project", "ModelDeployTestProject"): deploy_env.DeploySettings,
    ("project", "OperationsProject"): deploy_env.OperationsSettings,
    ("endpoint", "InvokerFunction"): deploy_env.InvokerSettings,
}
# Resource types that run code with an environment, and where that environment is.
COMPUTE_TYPES = ("AWS::CodeBuild::Project", "AWS::Lambda::Function", "AWS::SageMaker::Model")
# CodeBuild sets these for every build (its "environment variables in build environments").
CODEBUILD_PROVIDES = frozenset({"AWS_REGION", "AWS_DEFAULT_REGION"})
_OVERRIDE_NAME = re.compile(r'"name"\s*:\s*"([^"]+)"')


@dataclass(frozen=True)
class Compute:
    template: str
    logical_id: str
    # Variable -> where it is set (for the failure message).
    sets: dict[str, str]


def templates() -> dict[str, dict[str, Any]]:
    return {
        "project": load_template(PROJECT_TEMPLATE),
        "endpoint": load_template(ENDPOINT_TEMPLATE),
    }


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _names_in(override: Any) -> list[str]:
    """Variable names in a CodePipeline action's or an EventBridge target's override (a JSON
    text; an input template holds <placeholders>, so it is read by pattern, not parsed)."""
    return _OVERRIDE_NAME.findall(override) if isinstance(override, str) else []


def _refers_to(node: Any, logical_id: str) -> bool:
    return node == {"Ref": logical_id} or node in (
        {"GetAtt": f"{logical_id}.Arn"},
        {"GetAtt": [logical_id, "Arn"]},
    )


def _buildspec_sets(properties: dict[str, Any]) -> dict[str, str]:
    path = properties.get("Source", {}).get("BuildSpec")
    if not isinstance(path, str) or "\n" in path:  # inline buildspecs: none in this project
        return {}
    spec = yaml.safe_load((REPO / path).read_text()).get("env") or {}
    names = [*(spec.get("variables") or {}), *(spec.get("exported-variables") or [])]
    return {name: path for name in names}


def computes(documents: dict[str, dict[str, Any]]) -> list[Compute]:
    """Every compute resource with the variables set for it, from every place that sets them."""
    found = []
    for template_name, template in documents.items():
        resources = template["Resources"]
        for logical_id, resource in resources.items():
            if resource["Type"] not in COMPUTE_TYPES:
                continue
            properties = resource.get("Properties", {})
            sets: dict[str, str] = {}
            if resource["Type"] == "AWS::CodeBuild::Project":
                sets.update(dict.fromkeys(CODEBUILD_PROVIDES, "CodeBuild"))
                for item in properties.get("Environment", {}).get("EnvironmentVariables", []):
                    sets[item["Name"]] = f"{logical_id}.EnvironmentVariables"
                sets.update(_buildspec_sets(properties))
                for other_id, other in resources.items():
                    for node in _walk(other.get("Properties", {})):
                        # A CodePipeline action's Configuration, an EventBridge rule's target.
                        if _refers_to(node.get("ProjectName"), logical_id):
                            names = _names_in(node.get("EnvironmentVariables"))
                        elif _refers_to(node.get("Arn"), logical_id):
                            transformer = node.get("InputTransformer") or {}
                            names = _names_in(node.get("Input")) + _names_in(
                                transformer.get("InputTemplate")
                            )
                        else:
                            continue
                        sets.update(dict.fromkeys(names, other_id))
            elif resource["Type"] == "AWS::Lambda::Function":
                for name in properties.get("Environment", {}).get("Variables", {}):
                    sets[name] = f"{logical_id}.Environment"
            else:
                environment = properties.get("PrimaryContainer", {}).get("Environment", {})
                if not environment:
                    continue  # the serving container takes its settings from the image
                sets.update(dict.fromkeys(environment, f"{logical_id}.Environment"))
            found.append(Compute(template_name, logical_id, sets))
    return found


def contract_problems(documents: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for compute in computes(documents):
        settings = CONTRACTS.get((compute.template, compute.logical_id))
        where = f"{compute.template}: {compute.logical_id}"
        if settings is None:
            problems.append(f"{where} sets {sorted(compute.sets)} but no settings class reads it")
            continue
        for name in sorted(settings.required() - set(compute.sets)):
            problems.append(f"{where}: {settings.__name__} requires {name}, which is not set")
        for name in sorted(set(compute.sets) - settings.variables() - CODEBUILD_PROVIDES):
            problems.append(
                f"{where}: {name} (set by {compute.sets[name]}) is not declared by "
                f"{settings.__name__}: a dead or misspelt name"
            )
    return problems


def test_every_compute_gets_what_its_code_requires_and_nothing_it_does_not_read() -> None:
    documents = templates()
    assert contract_problems(documents) == []
    # The derivation itself found what there is to check.
    found = {(c.template, c.logical_id): c for c in computes(documents)}
    assert set(found) == set(CONTRACTS)
    assert found["project", "ModelBuildProject"].sets["MME_RETRAIN_DATASETS"] == (
        "ModelBuildPipeline"
    )
    assert found["project", "ModelDeployTestProject"].sets["DEPLOY_STAGE"] == "ModelDeployPipeline"
    assert {"MME_OPERATION", "MME_DRIFT_ALARM", "MME_DRIFT_ALARM_TIME"} <= set(
        found["project", "OperationsProject"].sets
    )
    assert found["project", "ModelDeployBuildProject"].sets["MME_ON_AWS"] == (
        "buildspecs/modeldeploy.yml"
    )


def _rename(node: Any, old: str, new: str) -> None:
    """Rename a variable wherever a template sets it under this node."""
    for item in _walk(node):
        if item.get("Name") == old:
            item["Name"] = new
        variables = item.get("Variables")
        if isinstance(variables, dict) and old in variables:
            variables[new] = variables.pop(old)


@pytest.mark.parametrize(
    ("template", "logical_id", "name", "typo", "settings"),
    [
        (
            "project",
            "ModelBuildProject",
            "ARTIFACT_BUCKET",
            "ARTIFACT_BUKCET",
            "ModelBuildSettings",
        ),
        ("project", "ModelDeployBuildProject", "IMAGE_URI", "IMAGE_URL", "DeploySettings"),
        ("endpoint", "InvokerFunction", "ENDPOINT_NAME", "ENDPOINT_NAEM", "InvokerSettings"),
    ],
)
def test_a_misspelt_variable_in_a_copy_of_the_template_is_caught(
    template: str, logical_id: str, name: str, typo: str, settings: str
) -> None:
    documents = copy.deepcopy(templates())
    _rename(documents[template]["Resources"][logical_id], name, typo)
    problems = contract_problems(documents)
    where = f"{template}: {logical_id}"
    assert f"{where}: {settings} requires {name}, which is not set" in problems
    assert any(p.startswith(f"{where}: {typo} (set by") for p in problems), problems


def test_an_unmapped_compute_is_caught() -> None:
    documents = copy.deepcopy(templates())
    resources = documents["endpoint"]["Resources"]
    resources["OtherFunction"] = copy.deepcopy(resources["InvokerFunction"])
    assert any(p.startswith("endpoint: OtherFunction sets") for p in contract_problems(documents))


# -- the settings read what the templates set -----------------------------------------------------


def _invoker_environment() -> dict[str, str]:
    template = load_template(ENDPOINT_TEMPLATE)
    resolve = Evaluator(
        template,
        attributes={"Endpoint.EndpointName": "mme-dev", "InferenceLog": "mme-dev-inference-log"},
        SageMakerProjectName="mme",
        SageMakerProjectId="p-abc123",
        StageName="dev",
        ArtifactBucket="sagemaker-project-p-abc123",
    )
    variables = resolve(template["Resources"]["InvokerFunction"]["Properties"]["Environment"])
    return {name: str(value) for name, value in variables["Variables"].items()}


def test_the_invoker_settings_read_the_deployed_environment() -> None:
    environ = _invoker_environment()
    settings = deploy_env.InvokerSettings.from_environ(environ)
    assert settings.endpoint_name == "mme-dev" and settings.stage == "dev"
    assert settings.routing_table_uri == "s3://sagemaker-project-p-abc123/dev/routing/live.json"
    assert settings.routing_ttl_seconds == float(environ["ROUTING_TTL_SECONDS"])
    assert settings.inference_log_ttl_days == float(environ["INFERENCE_LOG_TTL_DAYS"])
    assert settings.max_rows == deploy_env.DEFAULT_MAX_ROWS


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ENDPOINT_NAME": ""}, "ENDPOINT_NAME is not set"),
        ({"ROUTING_TABLE_URI": "bucket/key"}, "ROUTING_TABLE_URI must be s3://bucket/key"),
        ({"ROUTING_TTL_SECONDS": "soon"}, "ROUTING_TTL_SECONDS must be a number of at least 0"),
        ({"MAX_ROWS_PER_REQUEST": "0"}, "MAX_ROWS_PER_REQUEST must be a whole number"),
        ({"INFERENCE_LOG_TTL_DAYS": "nan"}, "INFERENCE_LOG_TTL_DAYS must be a number over 0"),
    ],
)
def test_a_missing_or_malformed_variable_is_an_input_error_naming_it(
    change: dict[str, str], message: str
) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        deploy_env.InvokerSettings.from_environ({**_invoker_environment(), **change})


def test_the_deploy_and_operations_settings_refuse_by_name() -> None:
    deploy = {
        "SAGEMAKER_PROJECT_NAME": "mme",
        "SAGEMAKER_PROJECT_ID": "p-abc123",
        "ARTIFACT_BUCKET": "bucket",
        "IMAGE_URI": "1.dkr.ecr.eu-west-1.amazonaws.com/mme:abc",
        "MODEL_EXECUTION_ROLE_ARN": "arn:aws:iam::1:role/model",
        "MME_DATASETS": "iris, wine,",
        "MME_CANARY": "false",
        "MME_ON_AWS": "true",
        "DEPLOY_STAGE": "dev",
    }
    settings = deploy_env.DeploySettings.from_environ(deploy)
    assert settings.datasets == ("iris", "wine") and settings.on_aws and not settings.canary
    with pytest.raises(InputError, match="DEPLOY_STAGE must be one of dev, prod, got 'prd'"):
        deploy_env.DeploySettings.from_environ({**deploy, "DEPLOY_STAGE": "prd"})
    with pytest.raises(InputError, match="MME_CANARY must be true or false"):
        deploy_env.DeploySettings.from_environ({**deploy, "MME_CANARY": "maybe"})
    operations = {**deploy, "MME_STAGES": "dev prod", "MME_DRIFT_WINDOW_HOURS": "24"}
    with pytest.raises(InputError, match="MME_OPERATION is not set"):
        deploy_env.OperationsSettings.from_environ(operations)
    ran = deploy_env.OperationsSettings.from_environ({**operations, "MME_OPERATION": "drift"})
    assert ran.stages == ("dev", "prod") and ran.drift_window_hours == 24.0


def test_the_modelbuild_settings_refuse_by_name() -> None:
    environ = {
        "SAGEMAKER_PROJECT_NAME": "mme",
        "ARTIFACT_BUCKET": "bucket-1",
        "SAGEMAKER_PIPELINE_ROLE_ARN": "arn:aws:iam::1:role/pipeline",
        "IMAGE_URI": "1.dkr.ecr.eu-west-1.amazonaws.com/mme:abc",
        "AWS_REGION": "eu-west-1",
    }
    settings = build_env.ModelBuildSettings.from_environ(environ)
    assert settings.region == "eu-west-1" and settings.retrain_datasets == "all"
    with pytest.raises(InputError, match="SAGEMAKER_PIPELINE_ROLE_ARN is not set"):
        build_env.ModelBuildSettings.from_environ({**environ, "SAGEMAKER_PIPELINE_ROLE_ARN": ""})
    with pytest.raises(InputError, match="IMAGE_REPOSITORY_URI is not set"):
        build_env.ImageBuildSettings.from_environ({"SOURCE_COMMIT": "abc"})
