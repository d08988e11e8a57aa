"""What a step handler is, and what it is given while it runs a step."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from local.executor.layout import JobLayout
from local.executor.model import Outcome
from local.expressions import Scope
from local.home import LocalHome
from local.jobs import JobRunner


@dataclass(frozen=True)
class StepContext:
    """One running execution, as a handler sees it."""

    home: LocalHome
    runner: JobRunner
    execution_id: str
    scope: Scope  # parameters, execution variables and the finished steps' properties
    layout: JobLayout
    progress: Callable[..., None]  # (step, kind, **details): a ProgressEvent for the listener


class StepHandler:
    """One step type: what is checked before anything runs, what its cache key covers, its run.

    Subclasses are registered in `local.executor.steps.HANDLERS`, the one table of step types.
    """

    type: ClassVar[str]
    # SageMaker's default cache key attributes for the type (Developer Guide, "Default cache key
    # attributes by pipeline step type"); empty: the step is never cached.
    cache_attributes: ClassVar[tuple[str, ...]] = ()

    def check(self, step: Mapping[str, Any]) -> None:
        """Raise DefinitionError, naming the step, for what the local runtime cannot run."""

    def cache_payload(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The resolved attributes a cache hit must match."""
        return {k: arguments.get(k) for k in self.cache_attributes}

    def run(
        self, context: StepContext, step: Mapping[str, Any], arguments: dict[str, Any]
    ) -> Outcome:
        """Run the step with its resolved arguments; raise StepFailure if it fails."""
        raise NotImplementedError
