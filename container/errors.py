"""The project's error root: what a user sees names the dataset, the file and the problem.

Two kinds, told apart by type so callers can act on them: `InputError` (the user's input is
wrong; retrying the same thing fails the same way) and `ServiceError` (a service the project
depends on, S3, SageMaker, the local endpoint, failed or throttled; the same call may succeed
later). Both derive from `ProjectError`, which the command lines and HTTP front ends map once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


class ProjectError(Exception):
    """Every error the project raises on purpose: a clear message, never a bug."""

    retryable = False

    def __init__(self, problem: str, *, dataset: str | None = None, file: str | Path | None = None):
        self.problem = problem
        self.dataset = dataset
        self.file = str(file) if file is not None else None
        super().__init__(self.describe())

    def describe(self) -> str:
        where = []
        if self.dataset:
            where.append(f"dataset '{self.dataset}'")
        if self.file:
            where.append(f"file '{self.file}'")
        return f"{', '.join(where)}: {self.problem}" if where else self.problem


class InputError(ProjectError):
    """Bad input (data, hyperparameters, artifact, a name or option) that the user must fix."""


class ServiceError(ProjectError):
    """A dependency failed or throttled (an outage, not the user's input): retrying may work."""

    retryable = True


def run_entry_point(main: Callable[[], None], failure_file: Path | None = None) -> None:
    """Run a job's main: an InputError becomes one clear line (and SageMaker's failure file).

    SageMaker shows the content of /opt/ml/output/failure as the job's FailureReason, so the user
    sees the problem in the console instead of a stack trace buried in CloudWatch.
    """
    try:
        main()
    except InputError as error:
        message = f"error: {error.describe()}"
        print(message, file=sys.stderr)
        if failure_file is not None:
            failure_file.parent.mkdir(parents=True, exist_ok=True)
            failure_file.write_text(message[:1024])
        raise SystemExit(2) from None
