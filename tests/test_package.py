"""The packaging command: seed zips that stand alone and hold nothing else, uploads to (moto) S3,
the exact next steps, and clear refusals when the bucket, region or credentials are missing."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from click.testing import CliRunner
from moto import mock_aws

from container.errors import InputError
from modelbuild import naming
from modelbuild.datasets import REGISTRY_ENV, default_registry
from modeldeploy.build import load_template
from template import PORTFOLIO_TEMPLATE, PROJECT_TEMPLATE, seeds
from template import package as packaging
from template.cli import template as template_group

REPO = Path(__file__).resolve().parents[1]
REGION = "eu-west-1"
BUCKET = "my-platform-templates"


@pytest.fixture(scope="module")
def built() -> packaging.Package:
    return packaging.build_package(BUCKET, REGION, "sagemaker-mme")


def names(data: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_modelbuild_zip_holds_its_code_buildspecs_and_tests(built: packaging.Package) -> None:
    files = set(names(built.zips["modelbuild"]))
    for needed in (
        "buildspecs/modelbuild.yml",
        "buildspecs/image.yml",
        "modelbuild/datasets.yml",
        # The offline mirror with its attribution: the first build needs no dataset host.
        "modelbuild/data/banknote_authentication.csv",
        "modelbuild/data/NOTICE.md",
        "modelbuild/run/__init__.py",
        "modelbuild/pipeline.py",
        "container/Dockerfile",
        "container/Dockerfile.dockerignore",
        "container/serving/app.py",
        "pyproject.toml",
        "README.md",
        "tests/conftest.py",
        "tests/test_pipeline.py",
        "tests/test_run.py",
    ):
        assert needed in files, needed
    # Everything under the seed's directories that is source, not cache, goes in.
    for directory in ("modelbuild", "container"):
        for path in (REPO / directory).rglob("*.py"):
            if "__pycache__" not in path.parts:
                assert path.relative_to(REPO).as_posix() in files
    assert not any(f.startswith(("modeldeploy/", "local/", "template/")) for f in files)
    assert "buildspecs/modeldeploy.yml" not in files


def test_modeldeploy_zip_holds_only_what_modeldeploy_imports(built: packaging.Package) -> None:
    files = set(names(built.zips["modeldeploy"]))
    for needed in (
        "buildspecs/modeldeploy.yml",
        "modeldeploy/endpoint.yml",
        "modeldeploy/config/dev.json",
        "modeldeploy/config/prod.json",
        "modeldeploy/cli.py",
        "modeldeploy/invoker.py",
        "pyproject.toml",
        "tests/test_stack.py",
        "tests/cfn_support.py",
    ):
        assert needed in files, needed
    build_side = {f for f in files if f.startswith(("modelbuild/", "container/"))}
    assert build_side == {
        "modelbuild/__init__.py",
        "modelbuild/naming.py",
        "modelbuild/cli_common.py",
        "modelbuild/environment.py",
        "modelbuild/did_you_mean.py",
        "modelbuild/aws_calls.py",
        "container/__init__.py",
        "container/archive.py",
        "container/checksum.py",
        "container/errors.py",
        "container/layout.py",
        "container/provenance.py",
    }
    assert not any(
        f.startswith(("local/", "template/", "buildspecs/model")) and "deploy" not in f
        for f in files
    )
    # Tests that need the local runtime stay out: they could not run in this repository.
    assert "tests/test_deploy.py" not in files and "tests/local_support.py" not in files


@pytest.mark.parametrize("seed", ["modelbuild", "modeldeploy"])
def test_zips_hold_no_caches_environments_or_data(built: packaging.Package, seed: str) -> None:
    for name in names(built.zips[seed]):
        parts = Path(name).parts
        assert not {"__pycache__", ".venv", ".mme", ".pytest_cache", "build"} & set(parts), name
        assert not any(part.startswith(".") for part in parts), name
        assert Path(name).suffix not in {".pyc", ".parquet", ".joblib", ".gz", ".zip"}, name


JUNK = (
    "modeldeploy/__pycache__/cli.cpython-311.pyc",
    "modelbuild/__pycache__/run.cpython-311.pyc",
    "container/serving/stale.pyc",
    "modelbuild/.venv/lib/site.py",
    "modelbuild/venv/bin/python",
    "modeldeploy/.mme/registry.sqlite",
    "container/.pytest_cache/v/cache/lastfailed",
    "modeldeploy/build/invoker-0123.zip",
    "modelbuild/sagemaker_mme_mlops.egg-info/PKG-INFO",
    "tests/__pycache__/test_run.cpython-311-pytest.pyc",
    "modelbuild/.DS_Store",
)


def test_packaging_filters_out_what_a_working_tree_accumulates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A working copy with caches, environments and local state still packs clean seeds."""
    for directory in ("modelbuild", "container", "modeldeploy", "buildspecs", "tests"):
        shutil.copytree(
            REPO / directory, tmp_path / directory, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    for junk in JUNK:
        (tmp_path / junk).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / junk).write_text("junk")
    monkeypatch.setattr(seeds, "REPO", tmp_path)
    package = packaging.build_package(BUCKET, REGION)
    shipped = set(names(package.zips["modelbuild"])) | set(names(package.zips["modeldeploy"]))
    assert not shipped & set(JUNK)
    assert {
        "modelbuild/run/__init__.py",
        "modeldeploy/cli.py",
        "container/serving/app.py",
    } <= shipped


def test_zips_are_reproducible_and_content_addressed(built: packaging.Package) -> None:
    again = packaging.build_package(BUCKET, REGION, "sagemaker-mme")
    assert again.zips == built.zips
    assert again.keys == built.keys
    for seed, key in built.keys.items():
        assert key.startswith(f"sagemaker-mme/seedcode/{seed}-") and key.endswith(".zip")


def _planted(tmp_path: Path, source: str) -> tuple[seeds.Seed, list[str]]:
    """A copy of the modeldeploy seed's files with modeldeploy/operations.py ending in
    `source`: the seed and the files the zip would hold."""
    seed = next(s for s in seeds.SEEDS if s.name == "modeldeploy")
    files = seeds.seed_files(seed)
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, tmp_path / name)
    planted = tmp_path / "modeldeploy" / "operations.py"
    planted.write_text(planted.read_text() + textwrap.dedent(source))
    return seed, files


def test_the_seeds_are_self_contained(built: packaging.Package) -> None:
    for seed in seeds.SEEDS:
        assert seeds.missing_imports(seed, seeds.seed_files(seed)) == {}, seed.name


def test_the_check_catches_an_import_inside_a_function(tmp_path: Path) -> None:
    """What the modeldeploy seed's code imports only when a command runs must ship too: an
    import of the local runtime inside a function fails the check, naming the file."""
    seed, files = _planted(
        tmp_path,
        """
        def _planted() -> object:
            from local.home import LocalHome

            return LocalHome
        """,
    )
    assert seeds.missing_imports(seed, files, root=tmp_path) == {
        "modeldeploy/operations.py": ["local.home", "local.home.LocalHome"]
    }


def test_the_check_catches_a_module_imported_from_a_shipped_package(tmp_path: Path) -> None:
    """`from modelbuild import datasets` names a module of this repository, not an attribute of
    the shipped `modelbuild/__init__.py`: the seed lacks it, so the check fails."""
    seed, files = _planted(
        tmp_path,
        """
        def _planted() -> object:
            from modelbuild import datasets

            return datasets
        """,
    )
    assert seeds.missing_imports(seed, files, root=tmp_path) == {
        "modeldeploy/operations.py": ["modelbuild.datasets"]
    }


def test_the_check_skips_imports_that_never_run(tmp_path: Path) -> None:
    """TYPE_CHECKING imports never execute, and an import guarded against ImportError copes
    with the module's absence: neither makes a seed fail to import."""
    seed, files = _planted(
        tmp_path,
        """
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            from local.home import LocalHome


        def _optional() -> object:
            try:
                from local.home import LocalHome
            except ModuleNotFoundError:
                return None
            return LocalHome
        """,
    )
    assert seeds.missing_imports(seed, files, root=tmp_path) == {}


def test_building_refuses_a_seed_that_would_not_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        packaging, "missing_imports", lambda seed, files: {"modeldeploy/cli.py": ["local.home"]}
    )
    with pytest.raises(InputError, match=r"would not import on its own.*local\.home"):
        packaging.build_package(BUCKET, REGION)


ISOLATED_IMPORT = textwrap.dedent(
    """
    import sys
    root = sys.argv[1]
    # Only the extracted tree provides first-party code: drop the repository (an editable
    # install puts it on sys.path or in a finder) before importing.
    sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path = [root] + [p for p in sys.path if p and not p.startswith({repo!r})
                         or "site-packages" in p]
    for module in sys.argv[2:]:
        __import__(module)
    first_party = ("container", "modelbuild", "modeldeploy", "local", "template", "tests")
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in first_party and getattr(module, "__file__", None):
            assert module.__file__.startswith(root), (name, module.__file__)
    print("ok")
    """
)


@pytest.mark.integration
@pytest.mark.parametrize("seed", packaging.SEEDS, ids=lambda s: s.name)
def test_an_extracted_seed_imports_its_entry_points_alone(
    built: packaging.Package, seed: seeds.Seed, tmp_path: Path
) -> None:
    zipfile.ZipFile(io.BytesIO(built.zips[seed.name])).extractall(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            ISOLATED_IMPORT.format(repo=str(REPO)),
            str(tmp_path),
            *seed.entry_points,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": ""},
        timeout=120,
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout + result.stderr


def test_the_image_buildspec_can_build_the_dockerfile_from_the_seed(
    built: packaging.Package,
) -> None:
    """Every COPY source of container/Dockerfile is in the modelbuild zip or made by image.yml."""
    files = set(names(built.zips["modelbuild"]))
    buildspec = (REPO / "buildspecs" / "image.yml").read_text()
    for line in (REPO / "container" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                source = source.rstrip("/")
                present = source in files or any(f.startswith(f"{source}/") for f in files)
                assert present or f"mkdir -p {source}" in buildspec, source
    spec = yaml.safe_load(buildspec)
    assert "docker build -f container/Dockerfile" in str(spec["phases"]["build"])
    assert "docker push" in str(spec["phases"]["build"])


def test_the_published_template_only_sets_the_seed_and_datasets_defaults(
    built: packaging.Package,
) -> None:
    original = load_template(PROJECT_TEMPLATE)
    published = yaml.load(built.project_template, Loader=type(_loader()))
    parameters = published["Parameters"]
    assert parameters["SeedCodeBucket"]["Default"] == BUCKET
    assert parameters["ModelBuildSeedKey"]["Default"] == built.keys["modelbuild"]
    assert parameters["ModelDeploySeedKey"]["Default"] == built.keys["modeldeploy"]
    assert parameters["Datasets"]["Default"] == ",".join(default_registry())
    for name in ("SeedCodeBucket", "ModelBuildSeedKey", "ModelDeploySeedKey", "Datasets"):
        original["Parameters"][name]["Default"] = parameters[name]["Default"]
    assert published == original


def _loader() -> Any:
    from modeldeploy.build import _TemplateLoader

    return _TemplateLoader("")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("s3", region_name=REGION)


def run(*args: str) -> Any:
    return CliRunner().invoke(template_group, ["package", *args], catch_exceptions=False)


def test_package_uploads_seeds_and_templates_and_prints_next_steps(aws: Any) -> None:
    aws.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    result = run("--bucket", BUCKET, "--region", REGION)
    assert result.exit_code == 0, result.output
    keys = {o["Key"] for o in aws.list_objects_v2(Bucket=BUCKET)["Contents"]}
    seeds = {k for k in keys if k.startswith("sagemaker-mme/seedcode/")}
    assert len(seeds) == 2
    assert {"sagemaker-mme/templates/project.yml", "sagemaker-mme/portfolio/portfolio.yml"} < keys
    # Only the project template is under the S3 templates location, and it is Studio-visible.
    templates = [k for k in keys if k.startswith("sagemaker-mme/templates/")]
    assert templates == ["sagemaker-mme/templates/project.yml"]
    tags = aws.get_object_tagging(Bucket=BUCKET, Key=templates[0])["TagSet"]
    assert {"Key": "sagemaker:studio-visibility", "Value": "true"} in tags
    body = aws.get_object(Bucket=BUCKET, Key=templates[0])["Body"].read().decode()
    published = yaml.load(body, Loader=type(_loader()))
    for parameter, seed in (
        ("ModelBuildSeedKey", "modelbuild"),
        ("ModelDeploySeedKey", "modeldeploy"),
    ):
        key = published["Parameters"][parameter]["Default"]
        assert key in seeds and seed in key
        zipped = aws.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert f"buildspecs/{seed}.yml" in names(zipped)
    assert published["Parameters"]["SeedCodeBucket"]["Default"] == BUCKET
    portfolio = aws.get_object(Bucket=BUCKET, Key="sagemaker-mme/portfolio/portfolio.yml")
    assert portfolio["Body"].read() == PORTFOLIO_TEMPLATE.read_bytes()
    # The next steps name the real URLs and both ways to publish.
    url = f"https://{BUCKET}.s3.{REGION}.amazonaws.com/sagemaker-mme/templates/project.yml"
    assert f"ParameterValue={url}" in result.output
    assert "aws cloudformation create-stack" in result.output
    assert "CAPABILITY_NAMED_IAM" in result.output
    assert "sagemaker:projectS3TemplatesLocation" in result.output
    assert f"s3://{BUCKET}/sagemaker-mme/templates/" in result.output
    assert "put-bucket-cors" in result.output and "https://*.sagemaker.aws" in result.output
    assert "aws sagemaker create-project" in result.output


def test_package_refuses_a_missing_bucket_option() -> None:
    result = run("--region", REGION)
    assert result.exit_code != 0
    assert "no bucket: pass --bucket" in result.output


def test_package_refuses_a_bucket_that_does_not_exist(aws: Any) -> None:
    result = run("--bucket", BUCKET, "--region", REGION)
    assert result.exit_code != 0
    assert f"bucket '{BUCKET}' does not exist" in result.output
    assert f"aws s3 mb s3://{BUCKET} --region {REGION}" in result.output


def test_package_refuses_a_bucket_in_another_region(aws: Any) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    result = run("--bucket", BUCKET, "--region", REGION)
    assert result.exit_code != 0
    assert f"is in us-east-1, not {REGION}" in result.output
    assert aws.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_package_refuses_without_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    result = run("--bucket", BUCKET)
    assert result.exit_code != 0
    assert "no AWS region: pass --region" in result.output


def test_package_refuses_without_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_") and name not in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            monkeypatch.delenv(name)
    # No profile files, and no instance metadata lookup (which would also reach the network).
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run("--bucket", BUCKET, "--region", REGION)
    assert result.exit_code != 0
    assert "no AWS credentials" in result.output


def test_package_refuses_a_malformed_bucket_name() -> None:
    result = run("--bucket", "s3://My_Bucket", "--region", REGION)
    assert result.exit_code != 0
    assert "is not a valid S3 bucket name" in result.output


def test_output_dir_writes_exactly_what_would_be_uploaded(tmp_path: Path) -> None:
    result = run("--bucket", BUCKET, "--region", REGION, "--output-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    built = packaging.build_package(BUCKET, REGION, "sagemaker-mme")
    for seed, key in built.keys.items():
        assert (tmp_path / key).read_bytes() == built.zips[seed]
    assert (tmp_path / built.project_key).read_text() == built.project_template


def test_packaging_refuses_more_datasets_than_the_template_has_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = "".join(
        f"  d{i}:\n    source: {{sklearn: load_wine}}\n    target: t\n"
        for i in range(naming.MAX_TEMPLATE_DATASETS + 1)
    )
    (tmp_path / "datasets.yml").write_text(f"datasets:\n{entries}")
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "datasets.yml"))
    with pytest.raises(
        InputError, match=r"datasets.yml.*registers 9 datasets; the project template has 8"
    ):
        packaging.build_package(BUCKET, REGION)
