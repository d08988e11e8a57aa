"""Run a SageMaker pipeline definition (the JSON modelbuild produces) on this machine.

The executor reads only the definition (through `modelbuild.definition`, the reader the offline
validator shares): its parameters (defaults, overridden per execution), its steps and their
expressions (`local.expressions`). Processing, training and tuning jobs run the image's entry
points on warm worker processes (`local.jobs`) with /opt/ml remapped into the execution's
directory; S3 is `local.s3`, the model registry `local.registry`. Everything is checked before
the first step starts: a step type, expression or entry point the executor cannot run is an
error naming the step, and nothing runs.

The parts, as a pipeline runner is usually split:

- `planning`: parameters, the pre-run checks and the order of the steps;
- `run`: `PipelineExecutor` and the run loop (branches, failure, stop, progress events);
- `caching`: cache keys and hits, as SageMaker's step caching;
- `layout`: each job's /opt/ml, logs and names;
- `steps`: ONE handler per step type (check, cache attributes, run) in one table;
- `tuner`: the hyperparameter tuning job a Tuning step runs.
"""

from __future__ import annotations

from local.executor.caching import image_identity, parse_duration
from local.executor.model import (
    DefinitionError,
    Listener,
    Outcome,
    ProgressEvent,
    StepFailure,
)
from local.executor.planning import plan, resolve_parameters
from local.executor.run import PipelineExecutor
from local.executor.steps import HANDLERS, STEP_TYPES
from local.executor.steps.tuning import DEFINITION_CACHE_ATTRIBUTES

# SageMaker's default cache key attributes per cached step type (each handler carries its own).
CACHE_ATTRIBUTES = {kind: h.cache_attributes for kind, h in HANDLERS.items() if h.cache_attributes}
TUNING_DEFINITION_CACHE_ATTRIBUTES = DEFINITION_CACHE_ATTRIBUTES

__all__ = [
    "CACHE_ATTRIBUTES",
    "STEP_TYPES",
    "TUNING_DEFINITION_CACHE_ATTRIBUTES",
    "DefinitionError",
    "Listener",
    "Outcome",
    "PipelineExecutor",
    "ProgressEvent",
    "StepFailure",
    "image_identity",
    "parse_duration",
    "plan",
    "resolve_parameters",
]
