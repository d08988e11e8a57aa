"""The deploy algorithm against both backends: the local runtime and AWS (moto S3 + SageMaker)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from botocore.stub import Stubber

from modeldeploy import naming
from modeldeploy.aws import SageMakerRegistry
from modeldeploy.canary import Decision
from modeldeploy.deploy import DeployError
from modeldeploy.interfaces import RegistryError
from tests.deploy_support import PROJECT, artifacts, aws_backend, local_backend, offline_aws

CANCER = "breast-cancer"


def stage_keys(backend, stage: str = "dev", dataset: str = CANCER) -> list[str]:
    prefix = f"{backend.bucket}/{naming.artifact_key(stage, dataset + '/')}"
    return sorted(key for key in backend.objects() if key.startswith(prefix))


def live(backend, stage: str = "dev"):
    return backend.deployer.read_table(stage)


def test_deploys_the_latest_approved_version_under_a_versioned_key(backend) -> None:
    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.register(CANCER, a["cancer-1"])
    backend.register(CANCER, a["cancer-2"], status="PendingManualApproval")

    report = backend.deployer.deploy("dev", [CANCER])

    route = live(backend).routes[CANCER]
    assert route.model_package_version == 2
    assert route.model_package_arn.endswith(f"{PROJECT}-{CANCER}/2")
    assert route.target_model.startswith(f"{CANCER}/2-")
    assert route.model_data_url == (
        naming.model_prefix_uri(backend.bucket, "dev") + route.target_model
    )
    assert backend.storage.read(route.model_data_url) == a["cancer-1"].read_bytes()
    assert [c.action for c in report.changes] == ["deployed"]
    assert report.revision == 1 and report.table_written


def test_a_second_run_changes_nothing(backend) -> None:
    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.register("iris", a["iris"])
    backend.deployer.deploy("dev", [CANCER, "iris"])
    before = backend.objects()

    report = backend.deployer.deploy("dev", [CANCER, "iris"])

    assert backend.objects() == before
    assert {c.action for c in report.changes} == {"unchanged"}
    assert not report.table_written and report.revision == 1 and report.deleted == []


def test_a_new_version_keeps_the_previous_one_for_rollback_only(backend) -> None:
    a = artifacts()
    for name in ("cancer-0", "cancer-1", "cancer-2"):
        backend.register(CANCER, a[name])
        backend.deployer.deploy("dev", [CANCER])

    route = live(backend).routes[CANCER]
    assert route.model_package_version == 3
    assert route.previous is not None and route.previous.model_package_version == 2
    assert route.previous.previous is None
    assert stage_keys(backend) == sorted(
        f"{backend.bucket}/dev/models/{r.target_model}" for r in (route, route.previous)
    )


def test_rejecting_the_live_version_rolls_back_to_the_latest_approved(backend) -> None:
    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.deployer.deploy("dev", [CANCER])
    backend.register(CANCER, a["cancer-1"])
    backend.deployer.deploy("dev", [CANCER])
    rejected = live(backend).routes[CANCER]

    backend.set_status(CANCER, 2, "Rejected")
    report = backend.deployer.deploy("dev", [CANCER])

    route = live(backend).routes[CANCER]
    assert report.changes[0].action == "rolled back"
    assert route.model_package_version == 1
    # The rejected model is neither routed nor kept for rollback, and its copy is gone.
    assert route.previous is None
    assert rejected.model_package_arn not in live(backend).to_json().decode()
    assert stage_keys(backend) == [f"{backend.bucket}/dev/models/{route.target_model}"]


def test_rejecting_the_rollback_version_drops_it_from_the_table(backend) -> None:
    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.deployer.deploy("dev", [CANCER])
    backend.register(CANCER, a["cancer-1"])
    backend.deployer.deploy("dev", [CANCER])

    backend.set_status(CANCER, 1, "Rejected")
    backend.deployer.deploy("dev", [CANCER])

    route = live(backend).routes[CANCER]
    assert route.model_package_version == 2 and route.previous is None
    assert stage_keys(backend) == [f"{backend.bucket}/dev/models/{route.target_model}"]


def test_a_group_without_an_approved_version_is_removed_with_a_log_line(
    backend, caplog: pytest.LogCaptureFixture
) -> None:
    backend.register(CANCER, artifacts()["cancer-0"])
    backend.deployer.deploy("dev", [CANCER])

    backend.set_status(CANCER, 1, "Rejected")
    with caplog.at_level(logging.INFO, logger="modeldeploy"):
        report = backend.deployer.deploy("dev", [CANCER])

    assert CANCER not in live(backend).routes
    assert report.changes[0].action == "removed"
    assert (
        f"dataset {CANCER}: group {PROJECT}-{CANCER} has no approved model package; "
        "removed from routing (version 1 was live)" in caplog.text
    )
    assert stage_keys(backend) == []


@pytest.mark.parametrize("bad", ["corrupt", "truncated"])
def test_a_corrupt_artifact_never_reaches_routing(backend, bad: str) -> None:
    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.register("iris", a["iris"])
    backend.deployer.deploy("dev", [CANCER, "iris"])
    before = live(backend).routes[CANCER]
    backend.register(CANCER, a[bad])
    backend.register("iris", a["iris"])  # a healthy dataset deploys all the same

    report = backend.deployer.deploy("dev", [CANCER, "iris"])

    assert live(backend).routes[CANCER] == before
    assert live(backend).routes["iris"].model_package_version == 2
    assert stage_keys(backend) == [f"{backend.bucket}/dev/models/{before.target_model}"]
    [failure] = report.failures
    assert failure.dataset == CANCER and "version 1 stays live" in failure.message
    with pytest.raises(DeployError, match=f"{CANCER}: .*(corrupt|tar.gz)"):
        report.raise_for_failures()


def test_a_missing_source_artifact_is_named(backend) -> None:
    backend.register(CANCER, artifacts()["cancer-0"])
    source = backend.deployer.registry.latest_approved(f"{PROJECT}-{CANCER}").model_data_url
    backend.storage.delete(source)

    report = backend.deployer.deploy("dev", [CANCER])

    assert CANCER not in live(backend).routes
    assert source in report.failures[0].message


def test_promote_serves_exactly_what_dev_serves(backend) -> None:
    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.deployer.deploy("dev", [CANCER])
    backend.deployer.promote("dev", "prod")
    backend.register(CANCER, a["cancer-1"])

    # A newer approval reaches dev, but prod waits for the gate.
    backend.deployer.deploy("dev", [CANCER])
    assert live(backend, "prod").routes[CANCER].model_package_version == 1

    backend.deployer.promote("dev", "prod")
    prod, dev = live(backend, "prod").routes[CANCER], live(backend).routes[CANCER]
    assert prod.model_package_arn == dev.model_package_arn and prod.sha256 == dev.sha256
    assert prod.model_data_url.startswith(naming.model_prefix_uri(backend.bucket, "prod"))
    assert backend.storage.sha256(prod.model_data_url) == dev.sha256


def test_promote_as_canary_holds_changed_versions_back_beside_prod_live(backend) -> None:
    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.deployer.deploy("dev", [CANCER])
    backend.deployer.promote("dev", "prod")
    prod_live = live(backend, "prod").routes[CANCER]
    backend.register(CANCER, a["cancer-1"])
    backend.register("iris", a["iris"])
    backend.deployer.deploy("dev", [CANCER, "iris"])
    backend.register(CANCER, a["cancer-2"])
    backend.deployer.deploy("dev", [CANCER], canary_weight=0.5)  # dev: 2 live, 3 canary

    report = backend.deployer.promote("dev", "prod", canary_weight=0.1)

    assert {c.dataset: c.action for c in report.changes} == {CANCER: "canary", "iris": "deployed"}
    route = live(backend, "prod").routes[CANCER]
    assert route.without_canary() == prod_live
    # dev's live version is promoted, not dev's canary.
    assert route.canary is not None and route.canary.model_package_version == 2
    assert route.canary_weight == 0.1
    assert (
        backend.storage.sha256(route.canary.model_data_url) == live(backend).routes[CANCER].sha256
    )
    # Nothing live in prod to compare it with: a new dataset goes live.
    iris = live(backend, "prod").routes["iris"]
    assert iris.model_package_version == 1 and iris.canary is None
    table, objects = live(backend, "prod"), backend.objects()

    again = backend.deployer.promote("dev", "prod", canary_weight=0.1)

    assert {c.action for c in again.changes} == {"unchanged"}
    assert not again.table_written and again.deleted == []
    assert live(backend, "prod") == table and backend.objects() == objects


def test_a_rolled_back_canary_is_rejected_and_never_comes_back(backend) -> None:
    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.deployer.deploy("dev", [CANCER])
    backend.register(CANCER, a["cancer-1"])
    backend.deployer.deploy("dev", [CANCER], canary_weight=0.2)
    canary = live(backend).routes[CANCER].canary
    assert canary is not None

    decision = Decision("rollback", "5xx rate 0.40 vs live 0.00", canary.target_model)
    report = backend.deployer.conclude_canary("dev", CANCER, decision)

    assert [c.action for c in report.changes] == ["rolled back"]
    assert not backend.deployer.registry.is_approved(canary.model_package_arn)
    # Rejected, it is no longer the latest approved version: a canary-mode deploy keeps
    # version 1 live and alone instead of placing version 2 again.
    again = backend.deployer.deploy("dev", [CANCER], canary_weight=0.2)
    assert [c.action for c in again.changes] == ["unchanged"]
    route = live(backend).routes[CANCER]
    assert route.model_package_version == 1 and route.canary is None


def test_promote_refuses_a_version_rejected_since_dev_deployed_it(backend) -> None:
    a = artifacts()
    backend.register(CANCER, a["cancer-0"])
    backend.deployer.deploy("dev", [CANCER])
    backend.set_status(CANCER, 1, "Rejected")

    report = backend.deployer.promote("dev", "prod")

    assert CANCER not in live(backend, "prod").routes
    assert "no longer Approved" in report.failures[0].message


def test_an_unreadable_routing_table_is_refused_not_replaced(backend) -> None:
    backend.register(CANCER, artifacts()["cancer-0"])
    uri = naming.routing_table_uri(backend.bucket, "dev")
    backend.storage.write(uri, b"{not json", "application/json")

    with pytest.raises(DeployError, match="not valid JSON"):
        backend.deployer.deploy("dev", [CANCER])
    assert backend.storage.read(uri) == b"{not json"
    assert stage_keys(backend) == []


def test_the_table_is_swapped_after_its_revision_is_written(backend) -> None:
    backend.register(CANCER, artifacts()["cancer-0"])
    backend.deployer.deploy("dev", [CANCER])
    backend.register("iris", artifacts()["iris"])
    backend.deployer.deploy("dev", [CANCER, "iris"])

    revision = backend.storage.read(naming.routing_revision_uri(backend.bucket, "dev", 2))
    current = backend.storage.read(naming.routing_table_uri(backend.bucket, "dev"))
    assert revision == current
    assert json.loads(current)["revision"] == 2
    assert set(json.loads(current)["datasets"]) == {CANCER, "iris"}


def test_bad_stage_names_are_refused(backend) -> None:
    with pytest.raises(Exception, match="stage 'Prod!'"):
        backend.deployer.deploy("Prod!", [CANCER])


# -- the AWS registry's requests ---------------------------------------------------------------


def test_the_registry_asks_for_the_newest_approved_version_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3

    offline_aws(monkeypatch)
    client = boto3.client("sagemaker", region_name="us-east-1")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mme-iris/7"
    with Stubber(client) as stub:
        # Stubber fails the call unless the parameters are exactly these.
        stub.add_response(
            "list_model_packages",
            {"ModelPackageSummaryList": [_summary(arn)]},
            {
                "ModelPackageGroupName": "mme-iris",
                "ModelApprovalStatus": "Approved",
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
                "MaxResults": 1,
            },
        )
        stub.add_response(
            "describe_model_package",
            {
                "ModelPackageName": "mme-iris",
                "ModelPackageArn": arn,
                "ModelPackageVersion": 7,
                "CreationTime": "2026-01-01T00:00:00Z",
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
                "InferenceSpecification": {
                    "Containers": [{"Image": "image", "ModelDataUrl": "s3://b/k/model.tar.gz"}],
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
            },
            {"ModelPackageName": arn},
        )
        package = SageMakerRegistry(client).latest_approved("mme-iris")
    assert (package.version, package.model_data_url) == (7, "s3://b/k/model.tar.gz")


def test_a_registry_failure_keeps_the_live_route(monkeypatch: pytest.MonkeyPatch) -> None:
    offline_aws(monkeypatch)
    with aws_backend() as backend:
        backend.register(CANCER, artifacts()["cancer-0"])
        backend.deployer.deploy("dev", [CANCER])
        with Stubber(backend.sagemaker) as stub:
            stub.add_client_error(
                "list_model_packages", "AccessDeniedException", "not authorized", 400
            )
            report = backend.deployer.deploy("dev", [CANCER])
        assert report.failures[0].action == "failed"
        assert "not authorized" in report.failures[0].message
        assert backend.deployer.read_table("dev").routes[CANCER].model_package_version == 1
        with pytest.raises(RegistryError), Stubber(backend.sagemaker) as stub:
            stub.add_client_error("describe_model_package", "ThrottlingException", "slow", 400)
            backend.deployer.registry.is_approved("arn:aws:sagemaker:x")


def _summary(arn: str) -> dict[str, object]:
    return {
        "ModelPackageGroupName": "mme-iris",
        "ModelPackageVersion": 7,
        "ModelPackageArn": arn,
        "CreationTime": "2026-01-01T00:00:00Z",
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "Approved",
    }


# -- the CodeBuild path: the CLI with --aws -------------------------------------------------


def test_the_cli_deploys_and_promotes_on_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from modeldeploy.cli import endpoint as endpoint_cli

    offline_aws(monkeypatch)
    monkeypatch.setenv("MME_DATASETS", f"{CANCER},iris")
    with aws_backend() as backend:
        backend.register(CANCER, artifacts()["cancer-0"])
        options = ["--aws", "--bucket", backend.bucket, "--project-name", PROJECT]
        runner = CliRunner()

        deployed = runner.invoke(endpoint_cli, ["deploy", "dev", *options])
        promoted = runner.invoke(endpoint_cli, ["promote", *options])

        assert deployed.exit_code == 0, deployed.output
        assert "iris" in deployed.output and "not routed" in deployed.output
        assert promoted.exit_code == 0, promoted.output
        assert backend.deployer.read_table("prod").routes[CANCER].model_package_version == 1

        backend.register(CANCER, artifacts()["corrupt"])
        failed = runner.invoke(endpoint_cli, ["deploy", "dev", *options])
        assert failed.exit_code == 1 and f"{CANCER}: " in failed.output
        missing_bucket = runner.invoke(endpoint_cli, ["deploy", "dev", "--aws"])
        assert missing_bucket.exit_code == 2 and "--aws needs --bucket" in missing_bucket.output


def test_the_build_stage_packages_the_invoker_and_exports_stage_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from modeldeploy.cli import endpoint as endpoint_cli

    environment = {
        "SAGEMAKER_PROJECT_NAME": "mlops",
        "SAGEMAKER_PROJECT_ID": "p-abc123",
        "ARTIFACT_BUCKET": "sagemaker-project-p-abc123",
        "IMAGE_URI": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mme:latest",
        "MODEL_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/model",
    }
    result = CliRunner().invoke(
        endpoint_cli, ["build", "--output-dir", str(tmp_path), "--no-upload"], env=environment
    )
    assert result.exit_code == 0, result.output
    [package] = tmp_path.glob("invoker-*.zip")
    for stage in naming.STAGES:
        config = json.loads((tmp_path / f"{stage}-config-export.json").read_text())
        assert config["Parameters"]["StageName"] == stage
        assert config["Parameters"]["InvokerCodeKey"].endswith(package.name)
        assert config["Parameters"]["SageMakerProjectName"] == "mlops"
    assert (tmp_path / "endpoint.yml").is_file()


def test_the_buildspec_calls_commands_that_exist() -> None:
    import re

    import yaml

    from modeldeploy.cli import endpoint as endpoint_cli

    spec = yaml.safe_load((Path(__file__).parents[1] / "buildspecs/modeldeploy.yml").read_text())
    script = "\n".join(spec["phases"]["build"]["commands"])
    called = set(re.findall(r"python -m modeldeploy\.cli (\w+)", script))
    assert called == {"build", "ready", "deploy", "smoke", "promote"}
    assert called <= set(endpoint_cli.commands)


def test_a_copy_that_does_not_read_back_identical_is_deleted_and_not_routed(
    tmp_path: Path,
) -> None:
    from local.deploy_store import LocalStorage

    class LossyStorage(LocalStorage):
        """Storage that damages what it uploads, as a failing disk or a broken copy would."""

        def upload(self, source: Path, uri: str) -> None:
            self.s3.put_bytes(uri, source.read_bytes()[:-10])

    backend = local_backend(tmp_path / "home")
    backend.register(CANCER, artifacts()["cancer-0"])
    backend.deployer.storage = LossyStorage(backend.storage.s3)

    report = backend.deployer.deploy("dev", [CANCER])

    assert "instead of" in report.failures[0].message
    assert CANCER not in backend.deployer.read_table("dev").routes
    assert stage_keys(backend) == []
