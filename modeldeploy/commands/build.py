"""The build stage's command: package the invoker and write each stage's stack configuration."""

from __future__ import annotations

import json
from pathlib import Path

import click

from modeldeploy import environment, naming


@click.command()
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build"),
    show_default=True,
)
@click.option("--project-name", envvar=environment.PROJECT_NAME, required=True)
@click.option("--project-id", envvar=environment.PROJECT_ID, required=True)
@click.option("--bucket", envvar=environment.ARTIFACT_BUCKET, required=True)
@click.option("--image-uri", envvar=environment.IMAGE_URI, required=True)
@click.option(
    "--model-execution-role-arn", envvar=environment.MODEL_EXECUTION_ROLE_ARN, required=True
)
@click.option("--artifact-kms-key-arn", envvar=environment.ARTIFACT_KMS_KEY_ARN, default="")
@click.option(
    "--alarm-topic-arn",
    envvar=naming.ALARM_TOPIC_ENV,
    default="",
    help=f"SNS topic the endpoint alarms notify; empty for none [env {naming.ALARM_TOPIC_ENV}]",
)
@click.option("--upload/--no-upload", default=True, help="upload the invoker zip to the bucket")
def build(
    output_dir: Path,
    project_name: str,
    project_id: str,
    bucket: str,
    image_uri: str,
    model_execution_role_arn: str,
    artifact_kms_key_arn: str,
    alarm_topic_arn: str,
    upload: bool,
) -> None:
    """The build stage: package the invoker and write each stage's stack configuration."""
    from modeldeploy.build import TEMPLATE, export_stage_config, package_invoker

    zip_path, key = package_invoker(output_dir)
    if upload:
        from modeldeploy.aws import S3Storage

        S3Storage().upload(zip_path, naming.s3_uri(naming.check_bucket(bucket), key))
    for stage in naming.STAGES:
        config = export_stage_config(
            stage,
            project=project_name,
            project_id=project_id,
            bucket=bucket,
            image_uri=image_uri,
            model_execution_role_arn=model_execution_role_arn,
            invoker_code_key=key,
            artifact_kms_key_arn=artifact_kms_key_arn,
            alarm_topic_arn=alarm_topic_arn,
        )
        path = output_dir / f"{stage}-config-export.json"
        path.write_text(json.dumps(config, indent=2))
        click.echo(f"wrote {path}")
    (output_dir / TEMPLATE.name).write_bytes(TEMPLATE.read_bytes())
    click.echo(f"invoker package {zip_path} -> s3://{bucket}/{key}")
