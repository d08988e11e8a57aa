"""A dataset name the user typed: the registry's entry, or a refusal suggesting the closest.

The refusal itself is `modelbuild.did_you_mean` (both seeds ship it; this module reads the
registry, which only the modelbuild seed has)."""

from __future__ import annotations

from modelbuild.datasets import Dataset, default_registry
from modelbuild.did_you_mean import unknown


def registered_dataset(name: str) -> Dataset:
    """The registry's entry for `name`, or an error suggesting the closest registered name."""
    registry = default_registry()
    if name not in registry:
        raise unknown("dataset", name, registry, "registered")
    return registry[name]
