"""Per-model canary on the multi-model endpoint: judge a canary against the live version.

`Deployer.deploy(..., canary_weight=w)` places a newly approved version as a dataset's canary
next to its live version; the invoker sends it a `w` share of the dataset's requests and the
inference log records which target answered each one. `evaluate` compares the two from the log
records since the canary was deployed:

- rollback: the canary has at least `min_rollback_requests` calls and its error rate exceeds
  the live one by more than `max_error_rate_increase`, or its p95 latency exceeds the live p95
  times `latency_factor`;
- promote: the canary has at least `min_requests` calls and is within both bounds;
- wait: otherwise.

A canary is judged by what the live version did with the same traffic. Its errors are the calls
it failed (5xx) and the calls it refused (4xx) that the live version then answered: the invoker
sends a request the canary refuses on to the live version and logs the canary's refusal as a
record of its own (`modeldeploy.invoker.CANARY_REFUSED`). A refusal of rows the live version
refuses too is the caller's, not the canary's (and a live version's 4xx never counts: the caller
sent bad rows). So a canary whose schema differs from the callers' rows (a different feature
count) fails every call and is rolled back, while callers keep getting the live version's answers.

`Deployer.conclude_canary` applies the decision with the usual routing table swap; `run` does
both for a stage's canaries, on AWS and locally alike. The policy and the weight come from the
stage config's optional "Canary" block (`config/<stage>.json`), defaults below.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

from container.errors import InputError
from modeldeploy.deploy import Deployer, DeployReport
from modeldeploy.inference_log import InferenceRecord
from modeldeploy.invoker import CANARY_REFUSED
from modeldeploy.routing import Route
from modeldeploy.verdicts import Decision

CONFIG_DIR = Path(__file__).resolve().parent / "config"

# (dataset, since epoch seconds) -> every logged call of the dataset from then on, errors too.
RecordSource = Callable[[str, float], Iterable[InferenceRecord]]


@dataclass(frozen=True)
class Policy:
    weight: float = 0.1  # share of the dataset's requests the canary gets
    min_requests: int = 100  # canary calls needed before it can be promoted
    min_rollback_requests: int = 20  # canary calls needed before it can be rolled back
    max_error_rate_increase: float = 0.02  # canary error rate - live error rate
    latency_factor: float = 1.5  # canary p95 / live p95


_CONFIG_KEYS = {
    "Weight": "weight",
    "MinRequests": "min_requests",
    "MinRollbackRequests": "min_rollback_requests",
    "MaxErrorRateIncrease": "max_error_rate_increase",
    "LatencyFactor": "latency_factor",
}


def load_policy(stage: str, directory: Path = CONFIG_DIR) -> Policy:
    """The stage config's "Canary" block over the defaults; no block, the defaults."""
    path = directory / f"{stage}.json"
    try:
        block = json.loads(path.read_text()).get("Canary", {}) if path.is_file() else {}
    except ValueError as error:
        raise InputError(f"not valid JSON: {error}", file=path) from None
    if not isinstance(block, dict):
        raise InputError('"Canary" must be an object', file=path)
    unknown = sorted(set(block) - set(_CONFIG_KEYS))
    if unknown:
        raise InputError(f"unknown Canary setting(s) {unknown}", file=path)
    kinds = {f.name: f.type for f in fields(Policy)}
    values: dict[str, float | int] = {}
    for key, name in _CONFIG_KEYS.items():
        if key not in block:
            continue
        value = block[key]
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise InputError(f"Canary.{key} must be a non-negative number", file=path)
        values[name] = int(value) if kinds[name] == "int" else float(value)
    policy = Policy(**values)  # type: ignore[arg-type]
    if not 0 < policy.weight < 1:
        raise InputError(f"Canary.Weight must lie between 0 and 1, got {policy.weight}", file=path)
    return policy


@dataclass(frozen=True)
class Stats:
    requests: int
    errors: int
    p95_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def describe(self) -> str:
        p95 = "-" if self.p95_ms is None else f"{self.p95_ms:.1f} ms"
        return f"{self.requests} calls, error rate {self.error_rate:.1%}, p95 {p95}"


def is_error(record: InferenceRecord) -> bool:
    """A failure of the model or endpoint, or a canary's refusal of rows the live version
    answered; a caller's bad request (4xx that the live version refused too) is not."""
    return record.status >= 500 or record.error.startswith(f"{CANARY_REFUSED}:")


def p95(values: Sequence[float]) -> float | None:
    """Nearest-rank 95th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def stats(records: Iterable[InferenceRecord]) -> Stats:
    records = list(records)
    errors = sum(1 for record in records if is_error(record))
    latencies = [record.latency_ms for record in records if not is_error(record)]
    return Stats(len(records), errors, p95(latencies))


def evaluate(
    records_live: Iterable[InferenceRecord],
    records_canary: Iterable[InferenceRecord],
    policy: Policy = Policy(),
) -> Decision:
    live, canary = stats(records_live), stats(records_canary)
    summary = f"canary {canary.describe()}; live {live.describe()}"
    if canary.requests >= policy.min_rollback_requests:
        increase = canary.error_rate - live.error_rate
        if increase > policy.max_error_rate_increase:
            return Decision(
                "rollback",
                f"error rate {increase:+.1%} over live, more than "
                f"{policy.max_error_rate_increase:.1%} ({summary})",
            )
        if (
            canary.p95_ms is not None
            and live.p95_ms is not None
            and canary.p95_ms > live.p95_ms * policy.latency_factor
        ):
            return Decision(
                "rollback",
                f"p95 latency over {policy.latency_factor:g} x live ({summary})",
            )
    if canary.requests >= policy.min_requests:
        return Decision("promote", f"within bounds ({summary})")
    return Decision(
        "wait", f"{canary.requests} of {policy.min_requests} canary calls needed ({summary})"
    )


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def split(
    route: Route, records: Iterable[InferenceRecord]
) -> tuple[list[InferenceRecord], list[InferenceRecord]]:
    """The live and the canary target's records since the canary was deployed."""
    assert route.canary is not None
    since = epoch(route.canary.deployed_at)
    live: list[InferenceRecord] = []
    canary: list[InferenceRecord] = []
    for record in records:
        if record.time < since:
            continue
        if record.target_model == route.canary.target_model:
            canary.append(record)
        elif record.target_model == route.target_model:
            live.append(record)
    return live, canary


def evaluate_route(route: Route, source: RecordSource, dataset: str, policy: Policy) -> Decision:
    assert route.canary is not None
    live, canary = split(route, source(dataset, epoch(route.canary.deployed_at)))
    decision = evaluate(live, canary, policy)
    return Decision(decision.action, decision.reason, route.canary.target_model)


@dataclass(frozen=True)
class Outcome:
    dataset: str
    decision: Decision
    report: DeployReport


def run(
    deployer: Deployer,
    stage: str,
    source: RecordSource,
    policy: Policy,
    datasets: Iterable[str] | None = None,
) -> list[Outcome]:
    """Evaluate each canary of the stage (or of `datasets`) and apply the decisions."""
    table = deployer.read_table(stage)
    names = sorted(datasets) if datasets else sorted(table.routes)
    outcomes = []
    for dataset in names:
        route = table.routes.get(dataset)
        if route is None or route.canary is None:
            continue
        decision = evaluate_route(route, source, dataset, policy)
        outcomes.append(
            Outcome(dataset, decision, deployer.conclude_canary(stage, dataset, decision))
        )
    return outcomes
