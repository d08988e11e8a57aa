"""Whether the modeldeploy pipeline has anything to deploy; its deploy stages run only if so.

The pipeline starts when the project is created (the image parameter still holds its
placeholder) and on every push to the modeldeploy repository, whether or not a model was ever
approved. An endpoint bills by the hour whether or not it serves a model, so the Build action
asks this, exports the answer, and the DeployDev, ApproveProd and DeployProd stages skip
themselves (stage entry conditions, result SKIP) when it is "false": no stack, no approval
email, no failure. There is something to deploy when the image exists and either a dataset has
an Approved version or a stage still routes a model (a rejection must still reach the table).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from modeldeploy import naming
from modeldeploy.build import load_template
from modeldeploy.deploy import Deployer

# What `python -m modeldeploy.cli ready` prints; the pipeline's entry conditions compare the
# exported variable with READY (template/project.yml, tests/test_deploy_readiness.py).
READY = "true"
NOT_READY = "false"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str

    @property
    def answer(self) -> str:
        return READY if self.ready else NOT_READY


def image_built(image_uri: str) -> bool:
    """Whether the URI names a pushed ECR image, by the endpoint stack's own ImageUri pattern
    (the project template's placeholder does not match it)."""
    pattern = load_template()["Parameters"]["ImageUri"]["AllowedPattern"]
    return re.fullmatch(pattern, image_uri) is not None


def check(image_uri: str, deployer: Deployer, datasets: Iterable[str]) -> Readiness:
    """Raises RegistryError or StorageError (an InputError, or a ServiceError in an outage)
    when the registry or the bucket cannot answer: not knowing must fail the build, not skip
    a deploy that may be due."""
    if not image_built(image_uri):
        return Readiness(
            False,
            f"no image built yet (IMAGE_URI is {image_uri!r}): run the modelbuild pipeline, "
            "then approve a model version",
        )
    names = sorted(set(datasets))
    approved = [
        name
        for name in names
        if deployer.registry.latest_approved(
            naming.model_package_group_name(deployer.project, name)
        )
    ]
    if approved:
        return Readiness(True, f"approved model versions for {', '.join(approved)}")
    routing = [stage for stage in naming.STAGES if deployer.read_table(stage).routes]
    if routing:
        return Readiness(
            True,
            f"no Approved version left, but {', '.join(routing)} still route models: "
            "deploying takes them out",
        )
    groups = ", ".join(naming.model_package_group_name(deployer.project, n) for n in names)
    return Readiness(
        False,
        f"no dataset has an Approved model version yet ({groups or 'no datasets'}): approve one "
        "in the SageMaker model registry and the pipeline runs again",
    )
