"""The step types the local executor runs: ONE table, so a new type is one handler added here.

Each handler carries its own pre-run check, its cache key attributes and its run
(`local.executor.steps.base.StepHandler`).
"""

from __future__ import annotations

from local.executor.steps.base import StepContext, StepHandler
from local.executor.steps.control import ConditionStep, FailStep
from local.executor.steps.processing import ProcessingStep
from local.executor.steps.register import RegisterModelStep
from local.executor.steps.training import TrainingStep
from local.executor.steps.tuning import TuningStep

HANDLERS: dict[str, StepHandler] = {
    handler.type: handler
    for handler in (
        ProcessingStep(),
        TrainingStep(),
        TuningStep(),
        ConditionStep(),
        RegisterModelStep(),
        FailStep(),
    )
}
STEP_TYPES = tuple(HANDLERS)

__all__ = ["HANDLERS", "STEP_TYPES", "StepContext", "StepHandler"]
