"""Where an execution's jobs live: /opt/ml per job, logs, SageMaker job names, failure reasons.

`executions/<id>/jobs/<job>/ml` is a job's /opt/ml (removed once a job succeeds and its outputs
are uploaded, as SageMaker discards the instance), `executions/<id>/logs/<job>.log` its output.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

from local.executor.model import StepFailure
from local.jobs import Job, JobResult
from local.s3 import LocalS3

_NAME_CHARS = re.compile(r"[^A-Za-z0-9-]+")


def job_name(*parts: str, limit: int = 63) -> str:
    """A SageMaker job name ([a-zA-Z0-9-], at most `limit` characters)."""
    return _NAME_CHARS.sub("-", "-".join(parts)).strip("-")[:limit].rstrip("-")


def short_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]


class JobLayout:
    def __init__(self, directory: Path, s3: LocalS3) -> None:
        self.directory = directory
        self.s3 = s3

    def log(self, job: str) -> Path:
        return self.directory / "logs" / f"{job}.log"

    def ml_root(self, job: str) -> Path:
        return self.directory / "jobs" / job / "ml"

    def fresh_ml_root(self, job: str) -> Path:
        """The job's /opt/ml, emptied of what an earlier attempt left."""
        ml_root = self.ml_root(job)
        if ml_root.parent.exists():
            shutil.rmtree(ml_root.parent)
        return ml_root

    def relative(self, path: Path) -> str:
        return path.relative_to(self.directory).as_posix()

    def download(self, uri: str, destination: Path, what: str) -> None:
        if not self.s3.download_prefix(uri, destination):
            raise StepFailure(f"{what}: no objects at {uri}")

    def failure(self, result: JobResult, failure_file: Path | None = None) -> str:
        """Why a job failed: its failure file (SageMaker's FailureReason), the log's last lines."""
        reason = ""
        if failure_file is not None and failure_file.is_file():
            reason = failure_file.read_text(errors="replace").strip()
        head = f"job {result.name} exited with code {result.exit_code}"
        tail = result.log_tail()
        log = self.relative(result.log)
        if reason:
            return f"{head}: {reason}\nlog {log}, last lines:\n{tail}"
        return f"{head}; log {log}, last lines:\n{tail}"

    def finish(self, job: Job, result: JobResult) -> None:
        """A successful job's /opt/ml is gone once its outputs are uploaded, as on SageMaker."""
        if result.succeeded:
            shutil.rmtree(job.ml_root.parent, ignore_errors=True)
