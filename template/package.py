"""Publish the project template: zip each seed repository, upload the zips and templates to S3.

    python -m template.package --bucket BUCKET --region REGION [--prefix PREFIX]
    python -m template.package --output-dir DIR     (build the zips and templates, no upload)

The seeds' contents and the check that each imports nothing it does not ship are
`template.seeds`; a seed that would not import on its own is refused before anything is built.
The mirror goes in so the project's first build stages the seed datasets without reaching the
dataset's host (its sha256 is checked either way). Zips are reproducible (sorted entries, fixed
timestamps), and their keys carry their digest, so republishing never changes what an existing
project seeded from.

The uploaded project.yml is this repository's template with the seed parameters' defaults set
to the uploaded zips and the Datasets default to the registry's datasets; it is both the Service Catalog product's template and, tagged
sagemaker:studio-visibility=true, the S3-hosted project template.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from container.errors import InputError, ProjectError
from modelbuild import environment, naming
from modelbuild.cli_common import fail
from template import PORTFOLIO_TEMPLATE, PROJECT_TEMPLATE, seeds
from template.seeds import SEEDS, build_zip, missing_imports, seed_files

STUDIO_VISIBILITY_TAG = "sagemaker:studio-visibility"
# Where things go under the prefix. Studio lists every template under the S3 templates
# location, so the portfolio stack lives apart from the project template.
TEMPLATES_FOLDER = "templates"
PORTFOLIO_FOLDER = "portfolio"
SEED_FOLDER = "seedcode"


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
    if not (seeds.REPO / "buildspecs").is_dir():
        raise InputError(
            f"{seeds.REPO} is not a source checkout (no buildspecs/): package from a clone of the "
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
    region = (
        region or os.environ.get(environment.REGION) or os.environ.get(environment.DEFAULT_REGION)
    )
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


@click.command("package")
@click.option("--bucket", help="S3 bucket to publish to (it must exist, in --region)")
@click.option("--region", help="AWS region of the bucket and the SageMaker domain [env AWS_REGION]")
@click.option(
    "--prefix", default="sagemaker-mme", show_default=True, help="key prefix in the bucket"
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="write what would be uploaded here instead (no AWS access needed)",
)
def package_command(
    bucket: str | None, region: str | None, prefix: str, output_dir: Path | None
) -> None:
    """Zip the modelbuild and modeldeploy seeds and upload them with the templates."""
    try:
        if not bucket:
            raise InputError(
                "no bucket: pass --bucket BUCKET (an existing S3 bucket in --region that will "
                "hold the templates and seed zips)"
            )
        resolved_region = resolve_region(region)
        built = build_package(bucket, resolved_region, prefix)
        if output_dir is not None:
            # The published template names the bucket: build exactly what would be uploaded.
            for path in write_local(built, output_dir):
                click.echo(f"wrote {path}")
            return
        s3 = s3_client(resolved_region)
        check_bucket_access(s3, bucket, resolved_region)
        upload(built, s3)
    except ProjectError as error:
        # Also run alone (`python -m template.package`), outside any group that maps errors.
        raise fail(error) from None
    click.echo(next_steps(built))


def main(argv: list[str] | None = None) -> int:
    return package_command.main(args=argv, prog_name="python -m template.package") or 0


if __name__ == "__main__":
    sys.exit(main())
