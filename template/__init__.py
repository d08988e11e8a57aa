"""The SageMaker project template (CloudFormation) and the command that publishes it.

project.yml is both forms SageMaker accepts: the Service Catalog product that portfolio.yml
registers loads it from S3, and the same object, tagged sagemaker:studio-visibility, is the
S3-hosted project template. `python -m template.package` zips the seed repositories and uploads
everything (see template/package.py).
"""

from __future__ import annotations

from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent
PROJECT_TEMPLATE = TEMPLATE_DIR / "project.yml"
PORTFOLIO_TEMPLATE = TEMPLATE_DIR / "portfolio.yml"
