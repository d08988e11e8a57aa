"""Processing steps: the job's inputs downloaded under its /opt/ml, its outputs uploaded after."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local.executor.layout import job_name
from local.executor.model import DefinitionError, Outcome, StepFailure
from local.executor.steps.base import StepContext, StepHandler
from local.expressions import text
from local.jobs import IMAGE_ENTRYPOINT, Job, JobError, python_module, remap


class ProcessingStep(StepHandler):
    type = "Processing"
    cache_attributes = ("AppSpecification", "Environment", "ProcessingInputs")

    def check(self, step: Mapping[str, Any]) -> None:
        arguments = step.get("Arguments") or {}
        entrypoint = (arguments.get("AppSpecification") or {}).get("ContainerEntrypoint")
        try:
            if entrypoint is not None and all(isinstance(p, str) for p in entrypoint):
                python_module(entrypoint)
        except JobError as error:
            raise DefinitionError(f"step '{step['Name']}': {error.problem}") from None
        for item in arguments.get("ProcessingInputs") or []:
            if "S3Input" not in item:
                raise DefinitionError(
                    f"step '{step['Name']}': processing input {item.get('InputName')!r} is not "
                    "an S3Input; the local executor reads inputs from local S3 only"
                )

    def run(
        self, context: StepContext, step: Mapping[str, Any], arguments: dict[str, Any]
    ) -> Outcome:
        layout = context.layout
        name = job_name("pipelines", context.execution_id, step["Name"])
        app = arguments.get("AppSpecification") or {}
        command = [text(p) for p in app.get("ContainerEntrypoint") or IMAGE_ENTRYPOINT]
        command += [text(a) for a in app.get("ContainerArguments") or []]
        try:
            python_module(command)
        except JobError as error:
            raise StepFailure(error.problem) from None
        ml_root = layout.fresh_ml_root(name)
        job = Job(
            name=name,
            command=tuple(command),
            ml_root=ml_root,
            log=layout.log(name),
            environment={k: text(v) for k, v in (arguments.get("Environment") or {}).items()},
            max_seconds=(arguments.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds"),
        )
        for item in arguments.get("ProcessingInputs") or []:
            source = item["S3Input"]
            local = Path(remap(source["LocalPath"], ml_root))
            layout.download(source["S3Uri"], local, f"processing input '{item['InputName']}'")
        outputs = (arguments.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        for item in outputs:
            Path(remap(item["S3Output"]["LocalPath"], ml_root)).mkdir(parents=True, exist_ok=True)
        result = context.runner.run(job)
        if not result.succeeded:
            raise StepFailure(layout.failure(result), logs=[layout.relative(result.log)])
        uploaded = []
        for item in outputs:
            target = item["S3Output"]["S3Uri"]
            context.home.s3.upload_dir(Path(remap(item["S3Output"]["LocalPath"], ml_root)), target)
            uploaded.append(target)
        layout.finish(job, result)
        properties = {
            "ProcessingJobName": name,
            "ProcessingJobStatus": "Completed",
            "AppSpecification": app,
            "ProcessingInputs": arguments.get("ProcessingInputs") or [],
            "ProcessingOutputConfig": {"Outputs": outputs},
            "Environment": arguments.get("Environment") or {},
        }
        files = _property_files(context, step, outputs)
        return Outcome(
            properties, files, uploaded, [layout.relative(result.log)], {"ProcessingJob": name}
        )


def _property_files(
    context: StepContext, step: Mapping[str, Any], outputs: list[dict[str, Any]]
) -> dict[str, str]:
    """Each declared property file's S3 URI, once the job has written it to its output."""
    files = {}
    for declared in step.get("PropertyFiles") or []:
        output = next((o for o in outputs if o["OutputName"] == declared["OutputName"]), None)
        if output is None:
            raise StepFailure(
                f"property file {declared['PropertyFileName']!r} names output "
                f"{declared['OutputName']!r}, which the step does not have"
            )
        uri = f"{output['S3Output']['S3Uri'].rstrip('/')}/{declared['FilePath']}"
        if not context.home.s3.exists(uri):
            raise StepFailure(
                f"the job did not write property file {declared['PropertyFileName']!r} "
                f"({declared['FilePath']} in output {declared['OutputName']!r})"
            )
        files[declared["PropertyFileName"]] = uri
    return files
