"""The modeldeploy build stage: the invoker's Lambda package and each stage's stack parameters.

`config/<stage>.json` holds what differs per stage (instance type and count, autoscaling bounds
and target, cooldowns, invoker reserved concurrency, alarm thresholds) in CodePipeline's
TemplateConfiguration format. The build checks it against the endpoint stack's parameter
declarations (names, types, patterns, bounds), adds the project's values (the alarm topic among
them), and writes `<stage>-config-export.json` for the CloudFormation deploy action.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

from container.errors import InputError
from modeldeploy import naming

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE = PACKAGE_DIR / "endpoint.yml"
CONFIG_DIR = PACKAGE_DIR / "config"
INVOKER_KEY_PREFIX = "modeldeploy/invoker"
# What the Lambda's Python runtime provides besides the standard library.
LAMBDA_RUNTIME_PACKAGES = frozenset({"boto3", "botocore"})
# Values the build takes from its CodeBuild environment and checks as CloudFormation would.
# ImageUri is not among them: until the first image build it holds a placeholder, and then the
# deploy stages are skipped (`modeldeploy.readiness`), so the stack never sees it.
_CHECKED_PROJECT_PARAMETERS = ("ModelExecutionRoleArn", "ArtifactKmsKeyArn", "AlarmTopicArn")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, optional) for every absolute import in the file, at any depth; optional when a
    `try` around it catches ImportError or ModuleNotFoundError (the code runs without it)."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.Try):
            caught = {
                name.id
                for handler in node.handlers
                if handler.type is not None
                for name in ast.walk(handler.type)
                if isinstance(name, ast.Name)
            }
            guarded = optional or bool(caught & {"ImportError", "ModuleNotFoundError"})
            for child in node.body:
                visit(child, guarded)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, optional)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, optional) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, optional))
            # `from package import module` imports the module.
            found.extend((f"{node.module}.{alias.name}", True) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return found


def invoker_modules(entry: str = "invoker.py") -> tuple[str, ...]:
    """The invoker Lambda's files under modeldeploy/: the handler, every modeldeploy module it
    imports (followed transitively, inside functions too) and the package marker. Anything else
    it would import, other than the standard library and the runtime's boto3, is refused: the
    zip holds these files alone. An import guarded by `except ModuleNotFoundError` is allowed
    to be absent."""
    chosen, pending = {"__init__.py"}, [entry]
    while pending:
        name = pending.pop()
        if name in chosen:
            continue
        chosen.add(name)
        for module, optional in _imports(PACKAGE_DIR / name):
            top, _, rest = module.partition(".")
            if top == PACKAGE_DIR.name:
                candidate = f"{rest.split('.')[0]}.py" if rest else "__init__.py"
                if (PACKAGE_DIR / candidate).is_file():
                    pending.append(candidate)
                elif not optional:
                    raise InputError(f"imports {module}, which does not exist", file=name)
            elif not (optional or top in sys.stdlib_module_names or top in LAMBDA_RUNTIME_PACKAGES):
                raise InputError(
                    f"the invoker Lambda would import {module}, which its zip does not hold",
                    file=PACKAGE_DIR / name,
                )
    return tuple(sorted(chosen))


# The whole invoker Lambda, as the handler's imports name it.
INVOKER_MODULES = invoker_modules()


class _TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML: short-form intrinsics (!Ref, !Sub, ...) become plain values."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}  # type: ignore[arg-type]


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_TemplateLoader)


def load_stage_config(stage: str, directory: Path = CONFIG_DIR) -> dict[str, str]:
    """A stage's parameters, checked against the template and against each other."""
    naming.check_stage(stage)
    path = directory / f"{stage}.json"
    if not path.is_file():
        raise InputError(f"no configuration for stage '{stage}'", file=path)
    try:
        document = json.loads(path.read_text())
        parameters = document["Parameters"]
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f'not a {{"Parameters": {{...}}}} document: {error}', file=path) from None
    if not isinstance(parameters, dict) or not all(isinstance(v, str) for v in parameters.values()):
        raise InputError("Parameters must map names to strings", file=path)
    declarations = load_template()["Parameters"]
    unknown = sorted(set(parameters) - set(declarations))
    if unknown:
        raise InputError(f"parameter(s) {unknown} are not in the endpoint stack", file=path)
    if parameters.get("StageName") != stage:
        raise InputError(
            f"StageName must be '{stage}', got {parameters.get('StageName')!r}", file=path
        )
    numbers = {
        name: number
        for name, value in parameters.items()
        if (number := check_parameter(name, value, declarations[name], path)) is not None
    }
    low, high = numbers.get("MinCapacity", 1), numbers.get("MaxCapacity", 1)
    count = numbers.get("EndpointInstanceCount", low)
    if not 1 <= low <= high:
        raise InputError(
            f"MinCapacity {low} must be at least 1 and at most MaxCapacity {high}", file=path
        )
    if not low <= count <= high:
        raise InputError(
            f"EndpointInstanceCount {count} must lie between MinCapacity {low} and MaxCapacity {high}",
            file=path,
        )
    return dict(parameters)


def check_parameter(
    name: str, value: str, declaration: dict[str, Any], path: Path | None = None
) -> int | None:
    """Refuse a value the stack's parameter declaration refuses, naming the parameter, before
    CloudFormation does mid-deploy; a Number's value comes back as an int (ours are whole)."""
    number = None
    if declaration.get("Type") == "Number":
        try:
            number = int(value)
        except ValueError:
            raise InputError(f"{name} must be an integer, got {value!r}", file=path) from None
        low, high = declaration.get("MinValue"), declaration.get("MaxValue")
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = f"{'-inf' if low is None else low}..{'inf' if high is None else high}"
            raise InputError(f"{name} {number} is outside {bounds}", file=path)
    pattern = declaration.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        raise InputError(f"{name} {value!r} does not match {pattern}", file=path)
    allowed = declaration.get("AllowedValues")
    if allowed is not None and value not in {str(option) for option in allowed}:
        raise InputError(f"{name} must be one of {allowed}, got {value!r}", file=path)
    return number


def package_invoker(output_dir: Path) -> tuple[Path, str]:
    """A reproducible zip of the invoker and its content-addressed key in the artifact bucket."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in INVOKER_MODULES:
            info = zipfile.ZipInfo(f"modeldeploy/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, (PACKAGE_DIR / name).read_bytes(), zipfile.ZIP_DEFLATED)
    data = buffer.getvalue()
    # A new key for new code: CloudFormation updates the function only when the key changes.
    name = f"invoker-{hashlib.sha256(data).hexdigest()[:16]}.zip"
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / name
    path.write_bytes(data)
    return path, f"{INVOKER_KEY_PREFIX}/{name}"


def export_stage_config(
    stage: str,
    *,
    project: str,
    project_id: str,
    bucket: str,
    image_uri: str,
    model_execution_role_arn: str,
    invoker_code_key: str,
    artifact_kms_key_arn: str = "",
    alarm_topic_arn: str = "",
) -> dict[str, Any]:
    """The CloudFormation deploy action's TemplateConfiguration for one stage; the endpoint's
    alarms notify `alarm_topic_arn` (the project's topic), none when it is empty."""
    parameters = load_stage_config(stage)
    parameters.update(
        SageMakerProjectName=naming.check_project_name(project),
        SageMakerProjectId=project_id,
        ArtifactBucket=naming.check_bucket(bucket),
        ImageUri=image_uri,
        ModelExecutionRoleArn=model_execution_role_arn,
        InvokerCodeKey=invoker_code_key,
        ArtifactKmsKeyArn=artifact_kms_key_arn,
        AlarmTopicArn=alarm_topic_arn,
    )
    declarations = load_template()["Parameters"]
    for name in _CHECKED_PROJECT_PARAMETERS:
        check_parameter(name, parameters[name], declarations[name])
    return {
        "Parameters": parameters,
        "Tags": {"sagemaker:project-name": project, "sagemaker:project-id": project_id},
    }
