"""A name the user typed that names nothing (a dataset, a stage): refuse it, list what exists and
suggest the closest, so a typo never goes on to create state under the wrong name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from container.errors import InputError
from modelbuild.datasets import Dataset, default_registry


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name nearest to `name` (difflib's ratio of at least 0.6), if any."""
    return next(iter(difflib.get_close_matches(name, list(known), n=1)), None)


def unknown(kind: str, name: str, known: Iterable[str], listed_as: str = "known") -> InputError:
    """`unknown dataset 'wien'; did you mean 'wine'? (registered: banknote, wine)`."""
    choices = sorted(set(known))
    near = closest(name, choices)
    hint = f"; did you mean '{near}'?" if near else ""
    return InputError(f"unknown {kind} '{name}'{hint} ({listed_as}: {', '.join(choices) or '-'})")


def registered_dataset(name: str) -> Dataset:
    """The registry's entry for `name`, or an error suggesting the closest registered name."""
    registry = default_registry()
    if name not in registry:
        raise unknown("dataset", name, registry, "registered")
    return registry[name]
