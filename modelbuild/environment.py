"""Every environment variable the modelbuild seed reads, named once and read in one place.

Who sets them: the project template (template/project.yml) on the image and modelbuild CodeBuild
projects and their pipeline actions; the buildspecs themselves (buildspecs/image.yml,
modelbuild.yml); CodeBuild (AWS_REGION, CODEBUILD_RESOLVED_SOURCE_VERSION); a user (the dataset
registry, cache and mirror overrides). Each compute has one frozen settings class whose
`from_environ` refuses a missing or malformed variable with an InputError naming it, like the
SageMaker inference toolkit's `environment.py`; tests/test_environment_contract.py holds the
template to them. The jobs' own variables (SM_*, MME_TRIAL_THREADS, MME_MAX_MODEL_BYTES) belong
to the container, which reads them itself.

The modeldeploy seed has its own module (`modeldeploy.environment`): it ships without this one,
so the names both seeds read (the project's name, id and bucket) are spelt in each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from container.errors import InputError
from modelbuild import naming

# -- every CodeBuild project of the project template ---------------------------------------------
PROJECT_NAME = "SAGEMAKER_PROJECT_NAME"
PROJECT_ID = "SAGEMAKER_PROJECT_ID"
ARTIFACT_BUCKET = "ARTIFACT_BUCKET"

# -- the modelbuild project (buildspecs/modelbuild.yml -> python -m modelbuild.run) --------------
PIPELINE_ROLE_ARN = "SAGEMAKER_PIPELINE_ROLE_ARN"
# The image this commit built: the project's value, overridden per run by the pipeline action.
IMAGE_URI = "IMAGE_URI"
# Comma-separated datasets to retrain, or "all": the modelbuild CodePipeline's Datasets
# variable. Spelt in naming.py, which the modeldeploy seed ships as well.
RETRAIN_DATASETS = naming.RETRAIN_DATASETS_ENV
# Set by CodeBuild itself.
REGION = "AWS_REGION"
DEFAULT_REGION = "AWS_DEFAULT_REGION"
SOURCE_VERSION = "CODEBUILD_RESOLVED_SOURCE_VERSION"

# -- the image project (read by buildspecs/image.yml's commands) ---------------------------------
IMAGE_REPOSITORY_URI = "IMAGE_REPOSITORY_URI"
# The SSM parameter the image build writes the new image URI to (the modeldeploy builds read it).
IMAGE_URI_PARAMETER = "IMAGE_URI_PARAMETER"
# The commit the pipeline's source action checked out (#{SourceVariables.CommitId}).
SOURCE_COMMIT = "SOURCE_COMMIT"

# -- the dataset registry (modelbuild.datasets), anywhere -----------------------------------------
# Another registry file instead of datasets.yml (a copy with an added dataset, say).
DATASET_REGISTRY = "MME_DATASET_REGISTRY"
# Where downloaded datasets are cached, and a folder of dataset files to use offline.
CACHE_DIR = "MME_CACHE_DIR"
DATA_DIR = "MME_DATA_DIR"

# -- the local runtime (`mme`; modelbuild.cli_common's --home) ------------------------------------
# Its state root (default .mme).
HOME = "MME_HOME"

# -- read by the tools the buildspecs run, not by this code ----------------------------------------
SDK_SUPPRESS_V2_WARNING = "SAGEMAKER_SUPPRESS_V2_WARNING"
LIBRARY_VARIABLES = frozenset(
    {SDK_SUPPRESS_V2_WARNING, "PIP_DISABLE_PIP_VERSION_CHECK", "DOCKER_BUILDKIT"}
)

DEFAULT_REGION_NAME = "us-east-1"


def _value(environ: Mapping[str, str], name: str) -> str:
    """The variable's text, "" when unset; an empty value counts as unset, as in click."""
    return environ.get(name, "").strip()


def _required(environ: Mapping[str, str], name: str, settings: str) -> str:
    value = _value(environ, name)
    if not value:
        raise InputError(f"environment variable {name} is not set ({settings} needs it)")
    return value


class _Contract:
    """The variables a settings class declares and requires (what the contract test reads)."""

    REQUIRED: ClassVar[frozenset[str]]
    VARIABLES: ClassVar[frozenset[str]]

    @classmethod
    def variables(cls) -> frozenset[str]:
        return cls.VARIABLES

    @classmethod
    def required(cls) -> frozenset[str]:
        return cls.REQUIRED


@dataclass(frozen=True)
class ModelBuildSettings(_Contract):
    """The modelbuild CodeBuild project: `python -m modelbuild.run --wait` on AWS."""

    REQUIRED: ClassVar[frozenset[str]] = frozenset(
        {PROJECT_NAME, ARTIFACT_BUCKET, PIPELINE_ROLE_ARN, IMAGE_URI}
    )
    VARIABLES: ClassVar[frozenset[str]] = REQUIRED | {
        PROJECT_ID,
        RETRAIN_DATASETS,
        REGION,
        DEFAULT_REGION,
        SOURCE_VERSION,
        *LIBRARY_VARIABLES,
    }

    project_name: str
    bucket: str
    role_arn: str
    image_uri: str
    project_id: str | None = None
    region: str = DEFAULT_REGION_NAME
    # "all", or the comma-separated datasets of a drift alarm's retrain.
    retrain_datasets: str = naming.ALL_DATASETS
    # The commit, shown in each execution's display name.
    source_version: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ModelBuildSettings:
        def required(name: str) -> str:
            return _required(environ, name, cls.__name__)

        project_name = naming.check_project_name(required(PROJECT_NAME))
        bucket = naming.check_bucket(required(ARTIFACT_BUCKET))
        return cls(
            project_name=project_name,
            bucket=bucket,
            role_arn=required(PIPELINE_ROLE_ARN),
            image_uri=required(IMAGE_URI),
            project_id=_value(environ, PROJECT_ID) or None,
            region=_value(environ, REGION)
            or _value(environ, DEFAULT_REGION)
            or DEFAULT_REGION_NAME,
            retrain_datasets=_value(environ, RETRAIN_DATASETS) or naming.ALL_DATASETS,
            source_version=_value(environ, SOURCE_VERSION) or None,
        )


@dataclass(frozen=True)
class ImageBuildSettings(_Contract):
    """The image CodeBuild project. buildspecs/image.yml's commands read these; the class holds
    its contract with the template, and refuses as the buildspec does."""

    REQUIRED: ClassVar[frozenset[str]] = frozenset({IMAGE_REPOSITORY_URI, IMAGE_URI_PARAMETER})
    VARIABLES: ClassVar[frozenset[str]] = REQUIRED | {
        PROJECT_NAME,
        PROJECT_ID,
        # What the build exports for the next action (the image it pushed).
        IMAGE_URI,
        SOURCE_COMMIT,
        SOURCE_VERSION,
        REGION,
        *LIBRARY_VARIABLES,
    }

    repository_uri: str
    image_uri_parameter: str
    # The pipeline action's commit, else CodeBuild's resolved source version.
    commit: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ImageBuildSettings:
        commit = _value(environ, SOURCE_COMMIT) or _value(environ, SOURCE_VERSION)
        if not commit:
            raise InputError(
                f"no commit id: environment variables {SOURCE_COMMIT} and {SOURCE_VERSION} "
                "are empty"
            )
        return cls(
            repository_uri=_required(environ, IMAGE_REPOSITORY_URI, cls.__name__),
            image_uri_parameter=_required(environ, IMAGE_URI_PARAMETER, cls.__name__),
            commit=commit,
        )


@dataclass(frozen=True)
class DatasetSettings(_Contract):
    """Where the dataset registry and its files are: each override optional, read at call time
    (tests and `mme` point them elsewhere between calls)."""

    REQUIRED: ClassVar[frozenset[str]] = frozenset()
    VARIABLES: ClassVar[frozenset[str]] = frozenset({DATASET_REGISTRY, CACHE_DIR, DATA_DIR})

    # Default: ~/.cache/sagemaker-mme, of the home directory at the time of reading.
    cache_dir: Path
    registry: Path | None = None
    data_dir: Path | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> DatasetSettings:
        registry, cache, data = (
            _value(environ, n) for n in (DATASET_REGISTRY, CACHE_DIR, DATA_DIR)
        )
        return cls(
            registry=Path(registry) if registry else None,
            cache_dir=Path(cache) if cache else Path.home() / ".cache" / "sagemaker-mme",
            data_dir=Path(data) if data else None,
        )
