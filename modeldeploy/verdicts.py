"""What a smoke test and a canary judgement conclude, as the deploy logic applies it.

`modeldeploy.smoke` and `modeldeploy.canary` produce these and `Deployer.conclude_smoke` /
`Deployer.conclude_canary` apply them; they live apart from all three so that the deploy logic
knows the verdicts without importing the modules that reach them (which import it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["promote", "rollback", "wait"]


@dataclass(frozen=True)
class Decision:
    """A canary judgement."""

    action: Verdict
    reason: str
    target_model: str = ""  # the canary judged; conclude_canary refuses a different one


@dataclass(frozen=True)
class TargetCheck:
    """How one version (the live one or the canary) did in the smoke test."""

    role: str  # "live" or "canary"
    target_model: str
    ok: bool
    message: str
    transient: bool = False  # the endpoint was unavailable, not the model wrong


@dataclass(frozen=True)
class SmokeResult:
    dataset: str
    ok: bool
    message: str
    checks: tuple[TargetCheck, ...] = ()
