"""Every environment variable the modeldeploy seed reads, named once and read in one place.

Who sets them: the project template (template/project.yml) on the modeldeploy CodeBuild
projects and the operations project, with their pipeline actions and EventBridge rules; the
buildspecs themselves (buildspecs/modeldeploy.yml, operations.yml); the endpoint stack
(modeldeploy/endpoint.yml) on the invoker Lambda. Each compute has one frozen settings class
here whose `from_environ` refuses a missing or malformed variable by name, like the SageMaker
inference toolkit's `environment.py`. tests/test_environment_contract.py holds the templates to
these classes: what a class requires is set for the compute that runs it, and everything set
there is declared here.

Standard library only, importing no first-party module outside the invoker Lambda's own: its zip
holds this module beside the handler and nothing from container/ (modeldeploy.build). So a
refusal is the project's InputError where its error root ships (the seed, the CLI) and a
`SettingError` (a ValueError) inside the Lambda; the message names the variable either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from modeldeploy.inference_log import DEFAULT_TTL_DAYS

# -- every CodeBuild project of the project template ---------------------------------------------
PROJECT_NAME = "SAGEMAKER_PROJECT_NAME"
PROJECT_ID = "SAGEMAKER_PROJECT_ID"
ARTIFACT_BUCKET = "ARTIFACT_BUCKET"

# -- the modeldeploy build and test projects (buildspecs/modeldeploy.yml) -----------------------
ARTIFACT_KMS_KEY_ARN = "ARTIFACT_KMS_KEY_ARN"
IMAGE_URI = "IMAGE_URI"
MODEL_EXECUTION_ROLE_ARN = "MODEL_EXECUTION_ROLE_ARN"
# The project's SNS topic, handed to the endpoint stack's alarms.
ALARM_TOPIC_ARN = "ALARM_TOPIC_ARN"
# Comma-separated datasets the deploy commands act on by default.
DATASETS = "MME_DATASETS"
# "true": newly approved versions go in as canaries (the template's CanaryDeployments).
CANARY = "MME_CANARY"
# Set by each Test<Stage> pipeline action; unset in the Build action (the buildspec switches).
DEPLOY_STAGE = "DEPLOY_STAGE"
# Set by the buildspecs: the commands act on AWS, not on the local runtime.
ON_AWS = "MME_ON_AWS"
# Exported by the Build action (`modeldeploy.cli ready`); the deploy stages' entry conditions.
DEPLOY_READY = "MME_DEPLOY_READY"

# -- the operations project (buildspecs/operations.yml) ------------------------------------------
# Which operation a build runs: set per start by the EventBridge rules.
OPERATION = "MME_OPERATION"
OPERATIONS = ("drift", "canary", "retrain")
# The stages, space-separated, and the drift job's window in hours.
STAGES = "MME_STAGES"
DRIFT_WINDOW_HOURS = "MME_DRIFT_WINDOW_HOURS"
# The drift alarm a retrain is started for, and its state-change time (the retrain rule).
DRIFT_ALARM = "MME_DRIFT_ALARM"
DRIFT_ALARM_TIME = "MME_DRIFT_ALARM_TIME"

# -- the invoker Lambda (modeldeploy/endpoint.yml) -------------------------------------------------
ENDPOINT_NAME = "ENDPOINT_NAME"
# s3://<bucket>/<stage>/routing/live.json
ROUTING_TABLE_URI = "ROUTING_TABLE_URI"
STAGE = "STAGE"
ROUTING_TTL_SECONDS = "ROUTING_TTL_SECONDS"
MAX_PAYLOAD_BYTES = "MAX_PAYLOAD_BYTES"
MAX_ROWS_PER_REQUEST = "MAX_ROWS_PER_REQUEST"
MAX_RESPONSE_BYTES = "MAX_RESPONSE_BYTES"
# The DynamoDB inference log; unset: no log.
INFERENCE_LOG_TABLE = "INFERENCE_LOG_TABLE"
INFERENCE_LOG_TTL_DAYS = "INFERENCE_LOG_TTL_DAYS"
# How long a call may wait for its record to be written before the Lambda freezes.
INFERENCE_LOG_DRAIN_SECONDS = "INFERENCE_LOG_DRAIN_SECONDS"

# -- read by tools the buildspecs run, not by this code -------------------------------------------
LIBRARY_VARIABLES = frozenset({"PIP_DISABLE_PIP_VERSION_CHECK"})

# The invoker's defaults (its module docstring states them to callers).
DEFAULT_TTL_SECONDS = 10.0
# InvokeEndpoint's own limit (botocore BodyBlob max); a larger body could never reach a model.
DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# A buffered Function URL returns at most 6 MB (the Invoke API's synchronous payload limit).
DEFAULT_MAX_RESPONSE_BYTES = 6 * 1024 * 1024
# Keeps an answer well inside the response limit for models with few classes, and a single
# call from holding the endpoint's workers for long.
DEFAULT_MAX_ROWS = 10_000
DEFAULT_LOG_DRAIN_SECONDS = 0.05

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


class SettingError(ValueError):
    """A missing or malformed variable where the project's error root is not shipped."""


def refusal(name: str, problem: str) -> Exception:
    """The error for one variable: the project's InputError if shipped, else a SettingError."""
    message = f"environment variable {name} {problem}"
    try:
        # Here, not at the top: the invoker Lambda's zip holds no container/ package.
        from container.errors import InputError
    except ModuleNotFoundError:
        return SettingError(message)
    return InputError(message)


# -- parsers: the variable's text (never empty) -> its value, or ValueError saying what it must be --


def _text(value: str) -> str:
    return value


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise ValueError("must be true or false")


def _number(low: float, inclusive: bool = True) -> Callable[[str], float]:
    wanted = f"must be a number {'of at least' if inclusive else 'over'} {low:g}"

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(wanted) from None
        # NaN compares false both ways; infinity is no duration or size.
        if not (number >= low if inclusive else number > low) or number == float("inf"):
            raise ValueError(wanted)
        return number

    return parse


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError("must be a whole number of at least 1")
    return number


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _names(separator: str | None) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        names = tuple(name.strip() for name in value.split(separator) if name.strip())
        if not names:
            raise ValueError("must name at least one")
        return names

    return parse


def _s3_uri(value: str) -> str:
    bucket, _, key = value.removeprefix("s3://").partition("/")
    if not value.startswith("s3://") or not bucket or not key:
        raise ValueError("must be s3://bucket/key")
    return value


def variable(
    name: str, parse: Callable[[str], Any] = _text, default: Any = MISSING, **options: Any
) -> Any:
    """A settings field read from `name`: required unless it has a default."""
    metadata = {"variable": name, "parse": parse}
    if default is MISSING:
        return field(metadata=metadata, **options)
    return field(default=default, metadata=metadata, **options)


Settings = TypeVar("Settings", bound="_FromEnviron")


class _FromEnviron:
    """`from_environ` and the declared/required variable sets for a settings dataclass."""

    # Names a compute may set that the code reads through another path (a buildspec's shell,
    # a library): declared, so that setting them is not a dead name, and never required here.
    ALSO_READ: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def _fields(cls) -> list[Any]:
        return [f for f in fields(cls) if "variable" in f.metadata]  # type: ignore[arg-type]

    @classmethod
    def variables(cls) -> frozenset[str]:
        """Every variable this compute's code reads."""
        return frozenset(f.metadata["variable"] for f in cls._fields()) | cls.ALSO_READ

    @classmethod
    def required(cls) -> frozenset[str]:
        """The variables it refuses to run without."""
        return frozenset(
            f.metadata["variable"]
            for f in cls._fields()
            if f.default is MISSING and f.default_factory is MISSING
        )

    @classmethod
    def from_environ(cls: type[Settings], environ: Mapping[str, str]) -> Settings:
        """The settings, or the project's error naming the first missing or malformed variable.
        An empty value counts as unset, as click's `envvar` treats it."""
        values: dict[str, Any] = {}
        for spec in cls._fields():
            name, raw = spec.metadata["variable"], environ.get(spec.metadata["variable"], "")
            if not raw.strip():
                if spec.default is MISSING and spec.default_factory is MISSING:
                    raise refusal(name, f"is not set ({cls.__name__} needs it)")
                continue
            try:
                values[spec.name] = spec.metadata["parse"](raw.strip())
            except ValueError as error:
                raise refusal(name, f"{error}, got {raw!r}") from None
        return cls(**values)


@dataclass(frozen=True)
class InvokerSettings(_FromEnviron):
    """The invoker Lambda's environment (the endpoint stack's InvokerFunction)."""

    endpoint_name: str = variable(ENDPOINT_NAME)
    routing_table_uri: str = variable(ROUTING_TABLE_URI, _s3_uri)
    stage: str = variable(STAGE, default="")
    routing_ttl_seconds: float = variable(ROUTING_TTL_SECONDS, _number(0), DEFAULT_TTL_SECONDS)
    max_payload_bytes: int = variable(MAX_PAYLOAD_BYTES, _positive_int, DEFAULT_MAX_PAYLOAD_BYTES)
    max_rows: int = variable(MAX_ROWS_PER_REQUEST, _positive_int, DEFAULT_MAX_ROWS)
    max_response_bytes: int = variable(
        MAX_RESPONSE_BYTES, _positive_int, DEFAULT_MAX_RESPONSE_BYTES
    )
    inference_log_table: str = variable(INFERENCE_LOG_TABLE, default="")
    inference_log_ttl_days: float = variable(
        INFERENCE_LOG_TTL_DAYS, _number(0, inclusive=False), float(DEFAULT_TTL_DAYS)
    )
    inference_log_drain_seconds: float = variable(
        INFERENCE_LOG_DRAIN_SECONDS, _number(0), DEFAULT_LOG_DRAIN_SECONDS
    )


@dataclass(frozen=True)
class DeploySettings(_FromEnviron):
    """The modeldeploy build and test projects: `python -m modeldeploy.cli build|ready|deploy|
    promote|smoke` on AWS, as buildspecs/modeldeploy.yml runs them (the build command needs all
    of the required ones; the others need a subset)."""

    ALSO_READ: ClassVar[frozenset[str]] = LIBRARY_VARIABLES | {DEPLOY_READY}

    project_name: str = variable(PROJECT_NAME)
    project_id: str = variable(PROJECT_ID)
    bucket: str = variable(ARTIFACT_BUCKET)
    image_uri: str = variable(IMAGE_URI)
    model_execution_role_arn: str = variable(MODEL_EXECUTION_ROLE_ARN)
    artifact_kms_key_arn: str = variable(ARTIFACT_KMS_KEY_ARN, default="")
    alarm_topic_arn: str = variable(ALARM_TOPIC_ARN, default="")
    datasets: tuple[str, ...] = variable(DATASETS, _names(","), ())
    canary: bool = variable(CANARY, _flag, False)
    on_aws: bool = variable(ON_AWS, _flag, False)
    # Empty in the Build action; a stage in each Test<Stage> action.
    deploy_stage: str = variable(DEPLOY_STAGE, _choice(("dev", "prod")), "")


@dataclass(frozen=True)
class OperationsSettings(_FromEnviron):
    """The operations project: the drift job, the canary judgement and the retrain start
    (buildspecs/operations.yml, `modeldeploy.cli drift|canary`, `modeldeploy.operations`)."""

    ALSO_READ: ClassVar[frozenset[str]] = LIBRARY_VARIABLES

    project_name: str = variable(PROJECT_NAME)
    project_id: str = variable(PROJECT_ID)
    bucket: str = variable(ARTIFACT_BUCKET)
    stages: tuple[str, ...] = variable(STAGES, _names(None))
    drift_window_hours: float = variable(DRIFT_WINDOW_HOURS, _number(0, inclusive=False))
    operation: str = variable(OPERATION, _choice(OPERATIONS))
    on_aws: bool = variable(ON_AWS, _flag, False)
    drift_alarm: str = variable(DRIFT_ALARM, default="")
    drift_alarm_time: str = variable(DRIFT_ALARM_TIME, default="")
