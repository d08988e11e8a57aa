"""`template` commands: package and publish the SageMaker project template.

Mountable into `mme` as `mme template package ...`; also `python -m template.package ...`.
"""

from __future__ import annotations

from pathlib import Path

import click

from container.errors import InputError


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
    from template import package as packaging

    try:
        if not bucket:
            raise InputError(
                "no bucket: pass --bucket BUCKET (an existing S3 bucket in --region that will "
                "hold the templates and seed zips)"
            )
        resolved_region = packaging.resolve_region(region)
        if output_dir is not None:
            # The published template names the bucket: build exactly what would be uploaded.
            built = packaging.build_package(bucket, resolved_region, prefix)
            for path in packaging.write_local(built, output_dir):
                click.echo(f"wrote {path}")
            return
        built = packaging.build_package(bucket, resolved_region, prefix)
        s3 = packaging.s3_client(resolved_region)
        packaging.check_bucket_access(s3, bucket, resolved_region)
        packaging.upload(built, s3)
    except InputError as error:
        raise click.ClickException(error.describe()) from None
    click.echo(packaging.next_steps(built))


@click.group("template", context_settings={"help_option_names": ["-h", "--help"]})
def template() -> None:
    """The SageMaker project template: package the seeds and publish the templates."""


template.add_command(package_command)
