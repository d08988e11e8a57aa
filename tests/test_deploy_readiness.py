"""The modeldeploy pipeline creates no billed endpoint for nothing: while no image is built or no
model version was ever approved, the Build action exports MME_DEPLOY_READY=false and the stages
after it skip themselves (entry conditions, result SKIP), so the execution ends cleanly.

The check runs against moto (SageMaker registry, S3 routing tables); the buildspec runs under
bash with a stub `python`; the pipeline's conditions are checked against botocore's CodePipeline
model and evaluated as CodePipeline's VariableCheck rule documents (EQ: the variable equals the
value)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.stub import Stubber
from botocore.validate import ParamValidator
from click.testing import CliRunner

from modeldeploy import naming, readiness
from modeldeploy.build import load_template
from modeldeploy.cli import endpoint as endpoint_cli
from modeldeploy.interfaces import RegistryError
from modeldeploy.routing import Route, RoutingTable
from template import PROJECT_TEMPLATE
from tests.deploy_support import PROJECT, aws_backend, offline_aws

REPO = Path(__file__).resolve().parents[1]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-mme:abc123"
DATASETS = ["breast-cancer", "banknote"]


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    return load_template(PROJECT_TEMPLATE)


def placeholder_image(project: dict[str, Any]) -> str:
    """The value the project template gives the image parameter before any image build."""
    return project["Resources"]["ImageUriParameter"]["Properties"]["Value"]


def route(dataset: str) -> Route:
    return Route(
        target_model=f"{dataset}/1-{'a' * 12}.tar.gz",
        model_data_url=f"s3://b/dev/models/{dataset}/1-{'a' * 12}.tar.gz",
        model_package_arn=f"arn:aws:sagemaker:us-east-1:123456789012:model-package/mme-{dataset}/1",
        model_package_version=1,
        sha256="a" * 64,
        model_sha256="b" * 64,
        source_model_data_url="s3://b/pipelines/model.tar.gz",
        deployed_at="2026-01-01T00:00:00+00:00",
    )


# --- the check --------------------------------------------------------------------------------


def test_the_placeholder_image_is_nothing_to_deploy(project: dict[str, Any]) -> None:
    placeholder = placeholder_image(project)
    assert not readiness.image_built(placeholder)
    assert readiness.image_built(IMAGE)


def test_readiness_follows_the_registry_and_the_routing_tables(
    project: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    offline_aws(monkeypatch)
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"not read by the check")
    with aws_backend() as backend:
        deployer = backend.deployer
        placeholder = readiness.check(placeholder_image(project), deployer, DATASETS)
        assert not placeholder.ready and "no image built yet" in placeholder.reason

        empty = readiness.check(IMAGE, deployer, DATASETS)
        assert (empty.ready, empty.answer) == (False, readiness.NOT_READY)
        assert "no dataset has an Approved model version" in empty.reason
        assert naming.model_package_group_name(PROJECT, "banknote") in empty.reason

        pending = backend.register("banknote", artifact, status="PendingManualApproval")
        assert not readiness.check(IMAGE, deployer, DATASETS).ready

        backend.set_status("banknote", pending, "Approved")
        approved = readiness.check(IMAGE, deployer, DATASETS)
        assert (approved.ready, approved.answer) == (True, readiness.READY)
        assert "banknote" in approved.reason
        # An approved model does not make a placeholder image deployable.
        assert not readiness.check(placeholder_image(project), deployer, DATASETS).ready

        # Everything rejected while dev still routes a model: deploying must take it out.
        backend.set_status("banknote", pending, "Rejected")
        table = RoutingTable("dev", 1, "", {"banknote": route("banknote")})
        backend.storage.write(naming.routing_table_uri(backend.bucket, "dev"), table.to_json(), "")
        rejected = readiness.check(IMAGE, deployer, DATASETS)
        assert rejected.ready and "dev still route" in rejected.reason


def test_a_registry_that_cannot_answer_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    offline_aws(monkeypatch)
    with aws_backend() as backend, Stubber(backend.sagemaker) as stub:
        stub.add_client_error("list_model_packages", "AccessDeniedException", "not authorized")
        with pytest.raises(RegistryError, match="not authorized"):
            readiness.check(IMAGE, backend.deployer, ["banknote"])


def test_the_cli_prints_the_answer_alone_and_the_reason_apart(
    project: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    offline_aws(monkeypatch)
    monkeypatch.setenv("MME_DATASETS", ",".join(DATASETS))
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"x")
    with aws_backend() as backend:
        options = ["--aws", "--bucket", backend.bucket, "--project-name", PROJECT]
        runner = CliRunner()
        skipped = runner.invoke(
            endpoint_cli, ["ready", *options], env={"IMAGE_URI": placeholder_image(project)}
        )
        assert skipped.exit_code == 0, skipped.output
        assert skipped.stdout == "false\n"
        assert "nothing to deploy, the deploy stages are skipped" in skipped.stderr
        backend.register("breast-cancer", artifact)
        ready = runner.invoke(endpoint_cli, ["ready", *options], env={"IMAGE_URI": IMAGE})
        assert (ready.exit_code, ready.stdout) == (0, "true\n")
        missing = runner.invoke(
            endpoint_cli,
            ["ready", "--aws", "--bucket", "no-such-bucket", "--project-name", "p"],
            env={"IMAGE_URI": IMAGE},
        )
        assert missing.exit_code == 1 and missing.stdout == ""


# --- the buildspec ----------------------------------------------------------------------------


def run_build_phase(tmp_path: Path, env: dict[str, str], ready: str = "false") -> tuple[int, str]:
    """The buildspec's build commands under bash, with its env variables, `python` a stub that
    logs its arguments and answers `ready` with READY ("fail": exit 1); prints the variable the
    buildspec exports as the build ends."""
    spec = yaml.safe_load((REPO / "buildspecs" / "modeldeploy.yml").read_text())
    stub = tmp_path / "bin" / "python"
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text(
        '#!/bin/sh\necho "$@" >> "$CALLS"\n'
        'case "$*" in *"modeldeploy.cli ready"*)\n'
        '  [ "$READY" = fail ] && exit 1\n  echo "$READY" ;;\nesac\nexit 0\n'
    )
    stub.chmod(0o755)
    calls = tmp_path / "calls.txt"
    [exported] = spec["env"]["exported-variables"]
    script = "\n".join(spec["phases"]["build"]["commands"]) + f'\necho "exported=${exported}"'
    result = subprocess.run(
        ["bash", "-c", script],
        env={
            "PATH": f"{stub.parent}:{os.environ['PATH']}",
            "CALLS": str(calls),
            "READY": ready,
            **spec["env"]["variables"],
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    logged = calls.read_text() if calls.exists() else ""
    return result.returncode, logged + result.stdout + result.stderr


@pytest.mark.integration
@pytest.mark.parametrize("answer", [readiness.READY, readiness.NOT_READY])
def test_the_build_action_exports_the_answer(tmp_path: Path, answer: str) -> None:
    spec = yaml.safe_load((REPO / "buildspecs" / "modeldeploy.yml").read_text())
    assert spec["env"]["exported-variables"] == [naming.DEPLOY_READY_VARIABLE]
    # Before the check answers, the stages would be skipped: no deploy by default.
    assert spec["env"]["variables"][naming.DEPLOY_READY_VARIABLE] == readiness.NOT_READY
    code, output = run_build_phase(tmp_path, {}, ready=answer)
    assert code == 0, output
    assert "-m modeldeploy.cli build --output-dir build" in output
    assert output.endswith(f"exported={answer}\n")


@pytest.mark.integration
def test_a_check_that_cannot_answer_fails_the_build(tmp_path: Path) -> None:
    code, output = run_build_phase(tmp_path, {}, ready="fail")
    assert code != 0 and "exported=" not in output


@pytest.mark.integration
def test_the_stage_actions_do_not_ask(tmp_path: Path) -> None:
    code, output = run_build_phase(tmp_path, {naming.DEPLOY_STAGE_ENV: "dev"})
    assert code == 0 and "ready" not in output and "deploy dev" in output


# --- the pipeline -----------------------------------------------------------------------------


def stages_after_build(project: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    stages = project["Resources"]["ModelDeployPipeline"]["Properties"]["Stages"]
    [index] = [i for i, stage in enumerate(stages) if stage["Name"] == "Build"]
    [build] = [a for a in stages[index]["Actions"] if a["Name"] == "Build"]
    return build, stages[index + 1 :]


def api_shape(node: Any) -> Any:
    """CloudFormation's spelling of a pipeline declaration as the CodePipeline API's (camelCase
    keys; a rule's Configuration map is data and keeps its keys)."""
    if isinstance(node, list):
        return [api_shape(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key[0].lower() + key[1:]: value if key == "Configuration" else api_shape(value)
        for key, value in node.items()
    }


def test_every_stage_after_the_build_skips_unless_there_is_something_to_deploy(
    project: dict[str, Any],
) -> None:
    build, after = stages_after_build(project)
    assert build["Namespace"] == naming.BUILD_VARIABLES_NAMESPACE
    assert build["Configuration"]["ProjectName"] == {"Ref": "ModelDeployBuildProject"}
    model = botocore.session.get_session().get_service_model("codepipeline")
    assert "SKIP" in model.shape_for("Result").enum
    variable = f"#{{{naming.BUILD_VARIABLES_NAMESPACE}.{naming.DEPLOY_READY_VARIABLE}}}"
    assert [stage["Name"] for stage in after] == ["DeployDev", "ApproveProd", "DeployProd"]
    for stage in after:
        entry = stage["BeforeEntry"]
        report = ParamValidator().validate(
            api_shape(entry), model.shape_for("BeforeEntryConditions")
        )
        assert not report.has_errors(), report.generate_report()
        [condition] = entry["Conditions"]
        assert condition["Result"] == "SKIP"
        [rule] = condition["Rules"]
        # SKIP supports only the VariableCheck and LambdaInvoke rules (CodePipeline docs).
        assert rule["RuleTypeId"] == {
            "Category": "Rule",
            "Owner": "AWS",
            "Provider": "VariableCheck",
            "Version": "1",
        }
        assert rule["Configuration"] == {
            "Variable": variable,
            "Operator": "EQ",
            "Value": readiness.READY,
        }


def stages_run(project: dict[str, Any], exported: str) -> list[str]:
    """The stages after the build an execution enters, given the exported value: a stage whose
    entry condition's rules all pass is entered; one failing with result SKIP is skipped."""
    _, after = stages_after_build(project)
    namespace = {naming.BUILD_VARIABLES_NAMESPACE: {naming.DEPLOY_READY_VARIABLE: exported}}

    def passes(rule: dict[str, Any]) -> bool:
        configuration = rule["Configuration"]
        reference = configuration["Variable"].removeprefix("#{").removesuffix("}")
        group, name = reference.split(".")
        assert configuration["Operator"] == "EQ"
        return namespace[group][name] == configuration["Value"]

    entered = []
    for stage in after:
        conditions = stage.get("BeforeEntry", {}).get("Conditions", [])
        if all(all(passes(rule) for rule in c["Rules"]) for c in conditions):
            entered.append(stage["Name"])
    return entered


def test_nothing_to_deploy_creates_no_stack_and_asks_no_approval(project: dict[str, Any]) -> None:
    assert stages_run(project, readiness.NOT_READY) == []
    assert stages_run(project, readiness.READY) == ["DeployDev", "ApproveProd", "DeployProd"]


def test_the_endpoint_stack_would_refuse_the_placeholder_image(project: dict[str, Any]) -> None:
    """Why the stages must skip and not run: the stack's ImageUri pattern refuses the
    placeholder, so a DeployDev entered with it would fail (and mail a failure)."""
    pattern = load_template()["Parameters"]["ImageUri"]["AllowedPattern"]
    assert re.fullmatch(pattern, placeholder_image(project)) is None
