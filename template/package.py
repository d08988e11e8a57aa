"""Publish the project template: zip each seed repository, upload the zips and templates to S3.

    python -m template.package --bucket BUCKET --region REGION [--prefix PREFIX]
    python -m template.package --output-dir DIR     (build the zips and templates, no upload)

Each seed zip holds what its repository needs to run on its own, and nothing else:

    modelbuild   modelbuild/ and container/ (the pipeline, the run command, the image's code,
                 the dataset registry and its offline mirror modelbuild/data/ with its
                 attribution), buildspecs/modelbuild.yml and buildspecs/image.yml,
                 pyproject.toml, README.md, and the tests that need nothing outside those
    modeldeploy  modeldeploy/ (deploy logic, endpoint stack, invoker, stage configs),
                 buildspecs/modeldeploy.yml and operations.yml, the few build-side modules
                 it imports (modelbuild/naming.py, container/archive.py, checksum.py, errors.py,
                 layout.py, provenance.py),
                 pyproject.toml, README.md, and the tests that need nothing outside those

No caches, virtual environments or local state: only the files named below, with __pycache__
and *.pyc excluded. The mirror goes in so the project's first build stages the seed datasets
without reaching the dataset's host (its sha256 is checked either way). Zips are reproducible (sorted entries, fixed timestamps), and
their keys carry their digest, so republishing never changes what an existing project seeded from.

The uploaded project.yml is this repository's template with the seed parameters' defaults set
to the uploaded zips and the Datasets default to the registry's datasets; it is both the Service Catalog product's template and, tagged
sagemaker:studio-visibility=true, the S3-hosted project template.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import re
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from container.errors import InputError
from modelbuild import naming
from template import PORTFOLIO_TEMPLATE, PROJECT_TEMPLATE

REPO = PROJECT_TEMPLATE.parents[1]
FIRST_PARTY = ("container", "modelbuild", "modeldeploy", "local", "template", "tests")
EXCLUDED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".venv", "venv", ".mme", "build"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
STUDIO_VISIBILITY_TAG = "sagemaker:studio-visibility"
# Where things go under the prefix. Studio lists every template under the S3 templates
# location, so the portfolio stack lives apart from the project template.
TEMPLATES_FOLDER = "templates"
PORTFOLIO_FOLDER = "portfolio"
SEED_FOLDER = "seedcode"
# Both seeds carry the packaging metadata: the modelbuild buildspec installs `.[pipeline]`,
# and pyproject.toml names README.md as the readme.
COMMON_FILES = ("pyproject.toml", "README.md")


@dataclass(frozen=True)
class Seed:
    name: str
    directories: tuple[str, ...]
    files: tuple[str, ...]
    # Modules a test may import for it to be shipped with this seed.
    entry_points: tuple[str, ...]


SEEDS = (
    Seed(
        name=naming.MODELBUILD_REPO,
        directories=("modelbuild", "container"),
        files=("buildspecs/modelbuild.yml", "buildspecs/image.yml", *COMMON_FILES),
        entry_points=("modelbuild.cli", "modelbuild.run", "container.__main__"),
    ),
    Seed(
        name=naming.MODELDEPLOY_REPO,
        directories=("modeldeploy",),
        files=(
            "buildspecs/modeldeploy.yml",
            "buildspecs/operations.yml",
            "modelbuild/__init__.py",
            "modelbuild/naming.py",
            "container/__init__.py",
            "container/archive.py",
            "container/checksum.py",
            "container/errors.py",
            "container/layout.py",
            "container/provenance.py",
            *COMMON_FILES,
        ),
        entry_points=(
            "modeldeploy.cli",
            "modeldeploy.invoker",
            "modeldeploy.build",
            "modeldeploy.operations",
        ),
    ),
)


def _shipped(path: Path) -> bool:
    """Source, not by-products: no caches, environments, local state, build output or dotfiles."""
    relative = path.relative_to(REPO)
    return (
        path.is_file()
        and not EXCLUDED_PARTS.intersection(relative.parts)
        and path.suffix not in EXCLUDED_SUFFIXES
        and not any(part.startswith(".") or part.endswith(".egg-info") for part in relative.parts)
    )


def _first_party_imports(path: Path, module_level_only: bool) -> set[str]:
    """Dotted first-party modules a file imports (at module level, or anywhere)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes: Iterable[ast.AST] = tree.body if module_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in FIRST_PARTY)
    return found


def _resolves(module: str, files: set[str]) -> bool:
    """True if the module (or the package attribute `from x import y` names) is in `files`."""
    path = module.replace(".", "/")
    if f"{path}.py" in files or f"{path}/__init__.py" in files:
        return True
    parent = path.rsplit("/", 1)[0]
    # `from pkg.mod import name`: the name is an attribute of a shipped module.
    return "/" in path and (f"{parent}.py" in files or f"{parent}/__init__.py" in files)


def _tests_for(files: set[str]) -> list[str]:
    """The test files whose every import, through the test helpers they use, is shipped; plus
    the helpers they use, tests/__init__.py and conftest.py (pytest loads it for every test)."""
    tests_dir = REPO / "tests"
    paths = {f"tests/{p.name}": p for p in sorted(tests_dir.glob("*.py")) if _shipped(p)}

    def usable(relative: str, seen: frozenset[str] = frozenset()) -> bool:
        """All imports (any level) resolve in the seed, helpers followed recursively."""
        if relative in seen:
            return True
        for module in _first_party_imports(paths[relative], module_level_only=False):
            if module.split(".")[0] == "tests":
                helper = _module_file(module, set(paths)) or _module_file(
                    module.rsplit(".", 1)[0], set(paths)
                )
                if helper is None or not usable(helper, seen | {relative}):
                    return False
            elif not _resolves(module, files):
                return False
        return True

    def helpers_of(relative: str) -> set[str]:
        found = set()
        for module in _first_party_imports(paths[relative], module_level_only=False):
            if module.split(".")[0] == "tests":
                helper = _module_file(module, set(paths)) or _module_file(
                    module.rsplit(".", 1)[0], set(paths)
                )
                if helper and helper != relative and helper not in found:
                    found |= {helper} | helpers_of(helper)
        return found

    tests = [r for r in paths if Path(r).name.startswith("test_") and usable(r)]
    if not tests:
        return []
    chosen = set(tests) | {"tests/__init__.py"} & set(paths)
    for test in tests:
        chosen |= helpers_of(test)
    conftest = "tests/conftest.py"
    if conftest in paths and all(
        _resolves(m, files) for m in _first_party_imports(paths[conftest], module_level_only=True)
    ):
        chosen.add(conftest)
    return sorted(chosen)


def seed_files(seed: Seed) -> list[str]:
    """Repository-relative paths of everything the seed zip holds, sorted."""
    files: set[str] = set()
    for directory in seed.directories:
        for path in (REPO / directory).rglob("*"):
            if _shipped(path):
                files.add(path.relative_to(REPO).as_posix())
    for name in seed.files:
        if not (REPO / name).is_file():
            raise InputError(f"the {seed.name} seed needs {name}, which is missing", file=REPO)
        files.add(name)
    files.update(_tests_for(files))
    return sorted(files)


def _module_file(module: str, files: set[str]) -> str | None:
    path = module.replace(".", "/")
    for candidate in (f"{path}.py", f"{path}/__init__.py"):
        if candidate in files:
            return candidate
    return None


def missing_imports(seed: Seed, files: Iterable[str]) -> dict[str, list[str]]:
    """First-party modules the seed's entry points import at module level, transitively, that
    the zip does not hold: {importing file: [missing modules]}. Imports inside functions are
    the local runtime's (modeldeploy.cli imports local/ only when not on AWS) and are not
    followed."""
    shipped = set(files)
    problems: dict[str, list[str]] = {}
    pending = list(seed.entry_points)
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        name = _module_file(module, shipped)
        if name is None or name in seen:
            continue
        seen.add(name)
        # A package's __init__ runs before any of its modules.
        parts = module.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        for imported in sorted(_first_party_imports(REPO / name, module_level_only=True)):
            if not _resolves(imported, shipped):
                problems.setdefault(name, []).append(imported)
            elif _module_file(imported, shipped):
                pending.append(imported)
            else:  # `from package.module import name`: follow the module
                pending.append(imported.rsplit(".", 1)[0])
    for entry in seed.entry_points:
        if _module_file(entry, shipped) is None:
            problems.setdefault("<entry points>", []).append(entry)
    return problems


def build_zip(files: Iterable[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (REPO / name).read_bytes())
    return buffer.getvalue()


def template_datasets_default() -> list[str]:
    """The registry's datasets: the template's Datasets default must list exactly these."""
    from modelbuild.datasets import default_registry, registry_file

    names = list(default_registry())
    if len(names) > naming.MAX_TEMPLATE_DATASETS:
        raise InputError(
            f"the dataset registry registers {len(names)} datasets; the project template "
            f"has {naming.MAX_TEMPLATE_DATASETS} model package group slots",
            file=registry_file(),
        )
    return names


def _set_default(text: str, parameter: str, value: str) -> str:
    """Set one parameter's Default in the template text, keeping everything else byte-equal."""
    pattern = re.compile(
        rf"(^  {re.escape(parameter)}:\n(?:^    .*\n)*?^    Default: ).*$", re.MULTILINE
    )
    updated, count = pattern.subn(lambda m: m.group(1) + json.dumps(value), text)
    if count != 1:
        raise InputError(f"parameter {parameter} has no Default line to set", file=PROJECT_TEMPLATE)
    return updated


def published_project_template(bucket: str, keys: dict[str, str]) -> str:
    """project.yml with the seed defaults pointing at the uploaded zips, and one model package
    group per registered dataset by default (so adding a dataset changes no template)."""
    text = PROJECT_TEMPLATE.read_text()
    text = _set_default(text, "Datasets", ",".join(template_datasets_default()))
    text = _set_default(text, "SeedCodeBucket", bucket)
    text = _set_default(text, "ModelBuildSeedKey", keys[naming.MODELBUILD_REPO])
    text = _set_default(text, "ModelDeploySeedKey", keys[naming.MODELDEPLOY_REPO])
    return text


@dataclass(frozen=True)
class Package:
    bucket: str
    region: str
    prefix: str
    zips: dict[str, bytes]
    keys: dict[str, str]
    project_key: str
    portfolio_key: str
    project_template: str

    def url(self, key: str) -> str:
        suffix = ".cn" if self.region.startswith("cn-") else ""
        return f"https://{self.bucket}.s3.{self.region}.amazonaws.com{suffix}/{key}"


def normalized_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    if prefix and not re.fullmatch(r"[A-Za-z0-9!_.*'()/-]+", prefix):
        raise InputError(f"prefix '{prefix}' has characters unsafe in S3 keys and URLs")
    return f"{prefix}/" if prefix else ""


def build_package(bucket: str, region: str, prefix: str = "") -> Package:
    naming.check_bucket(bucket)
    if not (REPO / "buildspecs").is_dir():
        raise InputError(
            f"{REPO} is not a source checkout (no buildspecs/): package from a clone of the "
            "project, where the seed repositories' files are"
        )
    template_datasets_default()
    prefix = normalized_prefix(prefix)
    zips, keys = {}, {}
    for seed in SEEDS:
        files = seed_files(seed)
        problems = missing_imports(seed, files)
        if problems:
            raise InputError(f"the {seed.name} seed would not import on its own: {problems}")
        data = build_zip(files)
        zips[seed.name] = data
        digest = hashlib.sha256(data).hexdigest()[:16]
        keys[seed.name] = f"{prefix}{SEED_FOLDER}/{seed.name}-{digest}.zip"
    return Package(
        bucket=bucket,
        region=region,
        prefix=prefix,
        zips=zips,
        keys=keys,
        project_key=f"{prefix}{TEMPLATES_FOLDER}/{PROJECT_TEMPLATE.name}",
        portfolio_key=f"{prefix}{PORTFOLIO_FOLDER}/{PORTFOLIO_TEMPLATE.name}",
        project_template=published_project_template(bucket, keys),
    )


def write_local(package: Package, output_dir: Path) -> list[Path]:
    written = []
    for name, data in package.zips.items():
        path = output_dir / package.keys[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    for key, text in (
        (package.project_key, package.project_template),
        (package.portfolio_key, PORTFOLIO_TEMPLATE.read_text()),
    ):
        path = output_dir / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def resolve_region(region: str | None) -> str:
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise InputError(
            "no AWS region: pass --region (or set AWS_REGION); the template, its bucket and "
            "the SageMaker domain must be in the same region"
        )
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        raise InputError(f"'{region}' is not an AWS region name (e.g. eu-west-1)")
    return region


def s3_client(region: str) -> Any:
    """An S3 client, or a clear refusal when no credentials are configured."""
    import boto3

    session = boto3.Session(region_name=region)
    if session.get_credentials() is None:
        raise InputError(
            "no AWS credentials: configure a profile (aws configure / AWS_PROFILE) or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, then run the command again"
        )
    return session.client("s3")


def check_bucket_access(s3: Any, bucket: str, region: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise InputError(
                f"bucket '{bucket}' does not exist; create it first "
                f"(aws s3 mb s3://{bucket} --region {region})"
            ) from None
        if code in ("403", "AccessDenied", "Forbidden"):
            raise InputError(
                f"access to bucket '{bucket}' is denied to these credentials "
                "(needs s3:ListBucket, s3:GetBucketLocation, s3:PutObject, s3:PutObjectTagging)"
            ) from None
        raise InputError(f"cannot reach bucket '{bucket}': {code}: {error}") from None
    except BotoCoreError as error:
        raise InputError(f"cannot reach bucket '{bucket}': {error}") from None
    if location != region:
        raise InputError(
            f"bucket '{bucket}' is in {location}, not {region}: a SageMaker project template "
            "must be published from a bucket in the domain's region (pass --region "
            f"{location} or use another bucket)"
        )


def upload(package: Package, s3: Any) -> None:
    # SSE-S3, not a customer key: Service Catalog, CloudFormation and CodeCommit read these
    # objects as the launch role, which then needs no kms:Decrypt on a key it does not know.
    common = {"ServerSideEncryption": "AES256"}
    for name, data in package.zips.items():
        s3.put_object(
            Bucket=package.bucket,
            Key=package.keys[name],
            Body=data,
            ContentType="application/zip",
            **common,
        )
    s3.put_object(
        Bucket=package.bucket,
        Key=package.project_key,
        Body=package.project_template.encode(),
        ContentType="application/x-yaml",
        # SageMaker lists an S3-hosted template only when its object carries this tag.
        Tagging=f"{STUDIO_VISIBILITY_TAG}=true",
        **common,
    )
    s3.put_object(
        Bucket=package.bucket,
        Key=package.portfolio_key,
        Body=PORTFOLIO_TEMPLATE.read_bytes(),
        ContentType="application/x-yaml",
        **common,
    )


CORS = {
    "CORSRules": [
        {
            "AllowedOrigins": ["https://*.sagemaker.aws"],
            "AllowedMethods": ["GET", "PUT", "POST", "HEAD", "DELETE"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag", "x-amz-delete-marker", "x-amz-id-2", "x-amz-request-id"],
        }
    ]
}


def next_steps(package: Package) -> str:
    bucket, region = package.bucket, package.region
    project_url = package.url(package.project_key)
    portfolio_url = package.url(package.portfolio_key)
    templates_location = f"s3://{bucket}/{package.prefix}{TEMPLATES_FOLDER}/"
    cors = json.dumps(CORS, separators=(",", ":"))
    return f"""
Uploaded to s3://{bucket}/{package.prefix}:
  project template   {project_url}
  portfolio stack    {portfolio_url}
  modelbuild seed    s3://{bucket}/{package.keys[naming.MODELBUILD_REPO]}
  modeldeploy seed   s3://{bucket}/{package.keys[naming.MODELDEPLOY_REPO]}

Next, publish it one of two ways (both use the same project template):

A) Service Catalog (creates the launch role unless you pass LaunchRoleArn):
  aws cloudformation create-stack --region {region} --stack-name sagemaker-mme-portfolio \\
    --template-url {portfolio_url} --capabilities CAPABILITY_NAMED_IAM \\
    --parameters ParameterKey=ProjectTemplateUrl,ParameterValue={project_url} \\
                 ParameterKey=TemplateBucket,ParameterValue={bucket} \\
                 ParameterKey=PrincipalArn,ParameterValue=<your Studio execution role ARN>
  Then in SageMaker Studio: Projects > Create project > Organization templates.

B) S3-hosted project template (no Service Catalog):
  aws s3api put-bucket-cors --region {region} --bucket {bucket} --cors-configuration '{cors}'
  aws sagemaker add-tags --region {region} --resource-arn <your SageMaker domain ARN> \\
    --tags Key=sagemaker:projectS3TemplatesLocation,Value={templates_location}
  aws iam attach-role-policy --role-name <your Studio execution role name> \\
    --policy-arn <the portfolio stack's StudioS3TemplatePolicyArn output>
  Then in SageMaker Studio: Projects > Create project > Organization templates > S3 templates,
  with the launch role as the role ARN (the portfolio stack's LaunchRoleArn output, or a role
  with the same permissions), or from the CLI:
  aws sagemaker create-project --region {region} --project-name <name> --template-providers \\
    '[{{"CfnTemplateProvider":{{"TemplateName":"mme-mlops","TemplateURL":"{project_url}","RoleARN":"<launch role ARN>"}}}}]'

With SourceProvider=CodeConnections, push each seed zip's contents to your two repositories
first, and give the connection ARN and the owner/name of each repository when creating the project.
""".strip("\n")


def main(argv: list[str] | None = None) -> int:
    from template.cli import package_command

    return package_command.main(args=argv, prog_name="python -m template.package") or 0


if __name__ == "__main__":
    sys.exit(main())
