"""The image's `serve` command: the SageMaker multi-model (and single-model) inference server.

    python -m container serve [--port 8080] [--workers N] [--memory-budget-mb M] ...

See `container/serving/` for how it works and `--help` for every setting.
"""

from __future__ import annotations

import sys

from container.serving.config import parse_config
from container.serving.supervisor import run_supervisor


def run() -> None:
    raise SystemExit(run_supervisor(parse_config(sys.argv[1:])))


if __name__ == "__main__":
    run()
