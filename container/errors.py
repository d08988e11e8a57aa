"""The one error type a user sees: it names the dataset, the file and the problem."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


class InputError(Exception):
    """Bad input (data, hyperparameters, artifact) that the user must fix; never a bug."""

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
