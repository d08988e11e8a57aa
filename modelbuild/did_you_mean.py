"""A name the user typed that names nothing (a dataset, a stage): the refusal that lists what
exists and suggests the closest, so a typo never goes on to create state under the wrong name.

Standard library and the error root only: both seeds ship it (the modeldeploy seed has no dataset
registry, so `modelbuild.suggest`, which reads the registry, cannot come along).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from container.errors import InputError


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name nearest to `name` (difflib's ratio of at least 0.6), if any."""
    return next(iter(difflib.get_close_matches(name, list(known), n=1)), None)


def unknown(kind: str, name: str, known: Iterable[str], listed_as: str = "known") -> InputError:
    """`unknown dataset 'wien'; did you mean 'wine'? (registered: banknote, wine)`."""
    choices = sorted(set(known))
    near = closest(name, choices)
    hint = f"; did you mean '{near}'?" if near else ""
    return InputError(f"unknown {kind} '{name}'{hint} ({listed_as}: {', '.join(choices) or '-'})")
