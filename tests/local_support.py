"""Helpers for the local runtime's tests: a misbehaving job entry point and shared fixtures.

Run as `python -m tests.local_support raise|exit`, it fails the way a broken job does: an
uncaught exception, or a process that dies without a result.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from container.families import FAMILIES
from local.jobs import JobRunner

WORKERS = 2
# The smallest budget the definition allows: one trial per family, two folds.
SMALL_BUDGET = {"MaxTuningJobs": len(FAMILIES), "MaxParallelTuningJobs": 2, "CvFolds": 2}


@pytest.fixture(scope="session")
def runner() -> Iterator[JobRunner]:
    with JobRunner(WORKERS) as shared:
        shared.warm_up()
        yield shared


def misbehave(how: str) -> None:
    print("about to fail", flush=True)
    if how == "exit":
        os._exit(3)
    raise RuntimeError(f"the job broke on purpose ({how})")


if __name__ == "__main__":
    misbehave(sys.argv[1] if len(sys.argv) > 1 else "raise")


# Every module of `mme` that prints tables holds the one console by name.
CONSOLE_HOLDERS = (
    "local.commands.common",
    "local.commands.executions",
    "local.commands.registry",
    "local.commands.runs",
)


def widen_console(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    """`mme`'s tables at `width` columns, so cells are not wrapped in captured output."""
    from rich.console import Console

    wide = Console(width=width)
    for module in CONSOLE_HOLDERS:
        monkeypatch.setattr(f"{module}.console", wide)
