"""Where the local tuner's trials come from: one proposer per tuning strategy.

`Random` draws every trial's hyperparameters from one seeded generator, training job
definitions (families) in turn. `Bayesian` is model-based, as on SageMaker: Optuna's TPE sampler,
seeded by the definition's `RandomSeed`, chooses the definition and then that definition's
hyperparameters (each named under its definition, so the density model is conditional on the
family), from the results of the trials before it. The first round tries every definition once.

Reproducibility with parallel trials: trial k is proposed knowing exactly the results of trials
0..k-lag (lag = MaxParallelTrainingJobs; later trials count as still running), told in trial
order, so the proposals do not depend on which job happened to finish first.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from container.search_space import CategoricalRange, ContinuousRange, IntegerRange, Range, sample

STRATEGIES = ("Bayesian", "Random")
# The family is one more choice for the sampler, under a name no hyperparameter can have.
_DEFINITION = "definition:"


class Proposer(Protocol):
    description: str

    def ready(self, index: int) -> bool:
        """Whether trial `index` may be proposed now (the results it depends on are in)."""
        ...

    def propose(self, index: int) -> tuple[str, dict[str, str]]:
        """(definition name, tuned hyperparameters as strings) of trial `index`."""
        ...

    def record(self, index: int, value: float | None) -> None:
        """Trial `index` finished with this objective value (None: it failed)."""
        ...


class RandomProposer:
    description = "random (definitions in turn, one seeded generator)"

    def __init__(self, ranges: Mapping[str, tuple[Range, ...]], seed: int) -> None:
        self._names = list(ranges)
        self._ranges = ranges
        self._rng = np.random.default_rng(seed)

    def ready(self, index: int) -> bool:
        return True

    def propose(self, index: int) -> tuple[str, dict[str, str]]:
        name = self._names[index % len(self._names)]
        return name, sample(self._ranges[name], self._rng)

    def record(self, index: int, value: float | None) -> None:
        """Random sampling ignores results."""


class TpeProposer:
    description = "model-based (Optuna TPE, conditional on the definition)"

    def __init__(
        self, ranges: Mapping[str, tuple[Range, ...]], seed: int, *, maximize: bool, lag: int
    ) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self._ranges = ranges
        self._lag = max(1, lag)
        with warnings.catch_warnings():
            # `group` is marked experimental; it is what keeps each family's ranges apart.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
        self._study = optuna.create_study(
            direction="maximize" if maximize else "minimize", sampler=sampler
        )
        for name in ranges:
            self._study.enqueue_trial({_DEFINITION: name})
        self._asked: dict[int, optuna.trial.Trial] = {}
        self._results: dict[int, float | None] = {}
        self._told = 0  # trials 0.._told-1 have been told to the study

    def ready(self, index: int) -> bool:
        return all(i in self._results for i in range(self._told, index - self._lag + 1))

    def propose(self, index: int) -> tuple[str, dict[str, str]]:
        while self._told <= index - self._lag:
            self._tell(self._told)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._optuna.exceptions.ExperimentalWarning)
            trial = self._study.ask()
            name = trial.suggest_categorical(_DEFINITION, list(self._ranges))
            tuned = {
                r.name: str(_suggest(trial, f"{name}:{r.name}", r)) for r in self._ranges[name]
            }
        self._asked[index] = trial
        return str(name), tuned

    def record(self, index: int, value: float | None) -> None:
        self._results[index] = value

    def _tell(self, index: int) -> None:
        value = self._results[index]
        trial = self._asked.pop(index)
        if value is None:
            self._study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(trial, value)
        self._told += 1


def _suggest(trial: object, name: str, spec: Range) -> int | float | str:
    log = getattr(spec, "scale", "Linear") == "Logarithmic"
    if isinstance(spec, IntegerRange):
        return trial.suggest_int(name, spec.low, spec.high, log=log)  # type: ignore[attr-defined]
    if isinstance(spec, ContinuousRange):
        return trial.suggest_float(name, spec.low, spec.high, log=log)  # type: ignore[attr-defined]
    if isinstance(spec, CategoricalRange):
        return trial.suggest_categorical(name, list(spec.values))  # type: ignore[attr-defined]
    raise TypeError(f"unsupported search range {spec!r}")


def proposer(
    strategy: str,
    ranges: Mapping[str, tuple[Range, ...]],
    seed: int,
    *,
    maximize: bool,
    max_parallel: int,
) -> Proposer:
    if strategy == "Bayesian":
        return TpeProposer(ranges, seed, maximize=maximize, lag=max_parallel)
    if strategy == "Random":
        return RandomProposer(ranges, seed)
    raise ValueError(f"unknown tuning strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
