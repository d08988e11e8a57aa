"""Condition and Fail steps: they run no job, they decide what runs next."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from local.executor.model import DefinitionError, Outcome, StepFailure
from local.executor.steps.base import StepContext, StepHandler
from local.expressions import ExpressionError, check_condition, condition_holds, text


class ConditionStep(StepHandler):
    """Every condition holds: the IfSteps run, else the ElseSteps (the run loop picks them)."""

    type = "Condition"

    def check(self, step: Mapping[str, Any]) -> None:
        for condition in (step.get("Arguments") or {}).get("Conditions") or []:
            try:
                check_condition(condition, step["Name"])
            except ExpressionError as error:
                raise DefinitionError(error.problem) from None

    def run(
        self, context: StepContext, step: Mapping[str, Any], arguments: dict[str, Any]
    ) -> Outcome:
        # The unresolved conditions: Not, Or and In evaluate their operands themselves.
        holds = all(
            condition_holds(c, context.scope, step["Name"]) for c in step["Arguments"]["Conditions"]
        )
        return Outcome({"Outcome": holds}, metadata={"Condition": {"Outcome": str(holds)}})


class FailStep(StepHandler):
    """Stops the execution as Failed with the step's ErrorMessage."""

    type = "Fail"

    def run(
        self, context: StepContext, step: Mapping[str, Any], arguments: dict[str, Any]
    ) -> Outcome:
        message = text(arguments.get("ErrorMessage", "")) or f"step '{step['Name']}' failed"
        raise StepFailure(message, {"Fail": {"ErrorMessage": message}})
