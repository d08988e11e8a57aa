"""Hyperparameter ranges declared as data, for the SageMaker tuner and the local runtime alike.

Names, kinds and scales follow the SageMaker `ParameterRanges` API (Integer, Continuous and
Categorical ranges; Linear or Logarithmic scaling). Values arrive as strings, as SageMaker passes
them to a training job, and are parsed and range-checked here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from container.errors import InputError

Scale = Literal["Linear", "Logarithmic"]


@dataclass(frozen=True)
class _NumericRange:
    name: str
    low: float
    high: float
    scale: Scale = "Linear"

    kind = "a number"

    def _convert(self, value: float) -> float:
        return value

    def parse(self, raw: str) -> Any:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if math.isnan(value) or (self.kind == "an integer" and not value.is_integer()):
            raise InputError(f"hyperparameter '{self.name}' must be {self.kind}, got {raw!r}")
        if not self.low <= value <= self.high:
            raise InputError(
                f"hyperparameter '{self.name}'={raw} is outside its range [{self.low}, {self.high}]"
            )
        return self._convert(value)

    def _draw(self, rng: np.random.Generator) -> float:
        if self.scale == "Logarithmic":
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class IntegerRange(_NumericRange):
    low: int
    high: int
    kind = "an integer"

    def _convert(self, value: float) -> int:
        return int(value)

    def sample(self, rng: np.random.Generator) -> int:
        if self.scale == "Logarithmic":
            return min(self.high, max(self.low, round(self._draw(rng))))
        return int(rng.integers(self.low, self.high + 1))


@dataclass(frozen=True)
class ContinuousRange(_NumericRange):
    def sample(self, rng: np.random.Generator) -> float:
        return self._draw(rng)


@dataclass(frozen=True)
class CategoricalRange:
    name: str
    values: tuple[str, ...]

    def parse(self, raw: str) -> str:
        if raw not in self.values:
            raise InputError(
                f"hyperparameter '{self.name}'={raw!r} is not one of {list(self.values)}"
            )
        return raw

    def sample(self, rng: np.random.Generator) -> str:
        return self.values[int(rng.integers(len(self.values)))]


Range = IntegerRange | ContinuousRange | CategoricalRange


def unquote(raw: Any) -> str:
    """SageMaker framework estimators JSON-encode string hyperparameters ('"gini"'); undo that."""
    text = str(raw)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except ValueError:
            return text
        return str(decoded)
    return text


def sample(space: tuple[Range, ...], rng: np.random.Generator) -> dict[str, str]:
    """One random configuration, as the strings a training job would receive."""
    return {r.name: str(r.sample(rng)) for r in space}
