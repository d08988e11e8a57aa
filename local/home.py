"""The local runtime's one state directory (default `.mme/`, `--home` or `MME_HOME` to move it).

s3/<bucket>/<key>               local S3
registry.sqlite                 the model registry
pipelines/<name>.json           each pipeline's latest definition (UpsertPipeline)
executions/<id>/execution.json  an execution and its steps
executions/<id>/definition.json the definition it ran
executions/<id>/logs/<job>.log  every job's output
executions/<id>/jobs/<job>/     a job's /opt/ml (removed once the job succeeded)
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

from local.executions import ExecutionStore
from local.registry import DEFAULT_BUSY_TIMEOUT_SECONDS, LocalModelRegistry
from local.s3 import LocalS3

DEFAULT_HOME = Path(".mme")


class LocalHome:
    def __init__(self, root: Path, registry_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS) -> None:
        self.root = root
        self.registry_timeout = registry_timeout
        self.s3 = LocalS3(root / "s3")
        self.registry_path = root / "registry.sqlite"
        self.executions = ExecutionStore(root / "executions")

    @cached_property
    def registry(self) -> LocalModelRegistry:
        """Opened on first use: a corrupt registry must not stop anything that does not need it."""
        return LocalModelRegistry(self.registry_path, busy_timeout=self.registry_timeout)

    def save_pipeline(self, name: str, definition: dict[str, Any]) -> Path:
        path = self.root / "pipelines" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(definition, indent=2) + "\n")
        return path
