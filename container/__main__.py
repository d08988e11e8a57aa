"""The image's entry point: `python -m container <command> [args]`.

SageMaker starts a training job as `<entrypoint> train` and an endpoint as `<entrypoint> serve`;
processing jobs name their command in ContainerEntrypoint. Each command is imported only when
chosen, so a job pays for nothing it does not run.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "preprocess": "container.preprocess",
    "train": "container.train",
    "evaluate": "container.evaluate",
    "serve": "container.serve",
}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m container {{{','.join(COMMANDS)}}} [args]", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(COMMANDS[argv[0]])
    sys.argv = [f"container {argv[0]}", *argv[1:]]
    module.run()


if __name__ == "__main__":
    main(sys.argv[1:])
