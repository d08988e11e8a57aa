"""Tuning steps: a hyperparameter tuning job over the step's training job definitions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from local.executor.model import Outcome
from local.executor.steps.base import StepContext, StepHandler
from local.executor.tuner import TuningJob, training_definitions

# What the cache key takes from each training job definition (SageMaker lists them per step
# type; for a tuning step, these of its training job definitions).
DEFINITION_CACHE_ATTRIBUTES = (
    "AlgorithmSpecification",
    "HyperParameterRanges",
    "InputDataConfig",
    "StaticHyperParameters",
    "TuningObjective",
)


class TuningStep(StepHandler):
    type = "Tuning"
    cache_attributes = ("HyperParameterTuningJobConfig",)

    def cache_payload(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        payload = super().cache_payload(arguments)
        payload["TrainingJobDefinitions"] = [
            {k: d.get(k) for k in DEFINITION_CACHE_ATTRIBUTES}
            for d in training_definitions(arguments)
        ]
        return payload

    def run(
        self, context: StepContext, step: Mapping[str, Any], arguments: dict[str, Any]
    ) -> Outcome:
        return TuningJob(context, step["Name"], arguments).run()
