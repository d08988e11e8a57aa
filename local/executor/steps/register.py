"""RegisterModel steps: a model package version in the local registry (never cached)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from local.executor.model import Outcome, StepFailure
from local.executor.steps.base import StepContext, StepHandler
from local.expressions import text


class RegisterModelStep(StepHandler):
    type = "RegisterModel"

    def run(
        self, context: StepContext, step: Mapping[str, Any], arguments: dict[str, Any]
    ) -> Outcome:
        specification = arguments.get("InferenceSpecification") or {}
        containers = specification.get("Containers") or []
        if not containers or not containers[0].get("ModelDataUrl"):
            raise StepFailure("the model package has no container with a ModelDataUrl")
        model_data = text(containers[0]["ModelDataUrl"])
        if not context.home.s3.exists(model_data):
            raise StepFailure(f"the model artifact {model_data} does not exist")
        metrics = {
            k: v for k, v in (arguments.get("ModelMetrics") or {}).items() if v not in ({}, None)
        }
        customer_metadata = arguments.get("CustomerMetadataProperties") or {}
        package = context.home.registry.register(
            text(arguments.get("ModelPackageGroupName")),
            model_data,
            approval_status=text(arguments.get("ModelApprovalStatus", "PendingManualApproval")),
            image_uri=text(containers[0].get("Image", "")),
            model_metrics=metrics,
            customer_metadata={k: text(v) for k, v in customer_metadata.items()},
            content_types=[text(t) for t in specification.get("SupportedContentTypes") or []],
            response_types=[text(t) for t in specification.get("SupportedResponseMIMETypes") or []],
            inference_instance_types=[
                text(t) for t in specification.get("SupportedRealtimeInferenceInstanceTypes") or []
            ],
        )
        properties = {
            "ModelPackageArn": package.arn,
            "ModelPackageGroupName": package.group_name,
            "ModelPackageVersion": package.version,
            "ModelApprovalStatus": package.approval_status,
        }
        return Outcome(properties, metadata={"RegisterModel": {"Arn": package.arn}})
