"""Keeping Python's cyclic garbage collector out of the request path.

A worker's heap is ~140k tracked objects after importing scikit-learn, XGBoost and LightGBM; a
full collection walks all of them, ~85-160 ms on the machines measured, and one lands on some
request every few seconds under load (issue 16). None of those objects ever becomes garbage, so
they are frozen (moved to the collector's permanent generation, which it never walks) once after
start-up and again after each load; full collections then walk only what was allocated since.

Loaded models hold no reference cycles (tests/test_serve_fastpath.py checks every family:
dropping the last reference frees them at once), so unloading needs no collection either. If a
model outlives its unload, the worker looks again FORGET_AFTER_SECONDS later (requests in flight
may have held it) and `forget` then pays one full collection for a model a cycle keeps alive.
"""

from __future__ import annotations

import gc
import logging
import weakref
from typing import Any

log = logging.getLogger("container.serve")

# Young generation size: requests allocate few container objects, so collections stay rare and
# short; the older generations keep their defaults' ratio.
THRESHOLDS = (10_000, 20, 20)
# Past any in-flight predict (a batch of the slowest family takes well under a second).
FORGET_AFTER_SECONDS = 5.0


def settle() -> None:
    """Collect what is garbage now, then freeze the rest: call after start-up and each load."""
    gc.collect()
    gc.freeze()


def start() -> None:
    gc.set_threshold(*THRESHOLDS)
    settle()


def forget(released: weakref.ref[Any]) -> None:
    """After the last references to a model are dropped: free it if a cycle keeps it alive."""
    if released() is None:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    if released() is not None:
        log.warning("an unloaded model is still referenced; its memory stays in use")
