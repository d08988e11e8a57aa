"""The executor's vocabulary: its two errors, what a finished step leaves, and progress events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from container.errors import InputError


class DefinitionError(InputError):
    """The definition cannot be run locally; raised before any step starts."""


class StepFailure(Exception):
    """A step failed while it ran: the execution fails with this reason (and keeps the logs)."""

    def __init__(
        self, reason: str, metadata: dict[str, Any] | None = None, logs: list[str] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.metadata = metadata or {}
        self.logs = logs or []


@dataclass(frozen=True)
class ProgressEvent:
    execution_id: str
    step: str
    kind: str  # "step-started", "step-finished", "job-finished"
    status: str = ""
    done: int = 0
    total: int = 0
    cached: bool = False


Listener = Callable[[ProgressEvent], None]


@dataclass
class Outcome:
    """What a succeeded step leaves: its Describe* properties, property files, outputs, logs."""

    properties: dict[str, Any] = field(default_factory=dict)
    property_files: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
