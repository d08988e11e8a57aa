"""What a deploy run reports: each dataset's change, the routing table's revision, the deleted
artifacts; and the error a run with failed datasets ends in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from container.errors import InputError
from modeldeploy.routing import Route

Action = Literal[
    "deployed",
    "canary",
    "promoted",
    "rolled back",
    "verified",
    "unchanged",
    "removed",
    "not routed",
    "failed",
]


class DeployError(InputError):
    """A deploy run finished with datasets that could not be deployed."""


@dataclass(frozen=True)
class Change:
    dataset: str
    action: Action
    message: str
    route: Route | None = None


@dataclass
class DeployReport:
    stage: str
    revision: int
    table_written: bool
    changes: list[Change] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Change]:
        return [change for change in self.changes if change.action == "failed"]

    def raise_for_failures(self) -> None:
        if self.failures:
            raise DeployError(
                f"stage {self.stage}: "
                + "; ".join(f"{c.dataset}: {c.message}" for c in self.failures)
            )
