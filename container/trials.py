"""The tuning trials' artifacts an Evaluate job receives, read without unpickling anything.

The pipeline gives Evaluate every object whose key starts with `<tuning output>/<tuning job>-`:
SageMaker names a tuning job's training jobs `<tuning job>-<NNN>-<hash>` and writes each one's
artifact to `<S3OutputPath>/<training job>/output/model.tar.gz`, so exactly this execution's (or,
when Tune was cached, the cached tuning job's) trials arrive, and a trial that failed before
saving a model has no artifact. Where the job's name lands locally depends on how the prefix is
cut (the whole key below the last '/', or the key below the whole prefix), so both are accepted.

Only `signature.json` is read from each archive (its members checked before any byte is
decompressed, `container.archive`); the one model the rule chooses is verified and unpickled
later, by `container.artifact.load_artifact`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from container.archive import checked_members, error_reason, open_archive
from container.errors import InputError
from container.layout import ARTIFACT_FILE, SIGNATURE_FILE
from container.selection import TrialScores

# A signature is feature names, classes and baseline statistics: a few hundred KB at most.
MAX_SIGNATURE_BYTES = 16 * 1024 * 1024


def trial_name(archive: Path, root: Path, tuning_job: str) -> str:
    """The training job an artifact under `root` belongs to (see the module doc)."""
    parts = archive.relative_to(root).parts
    if len(parts) >= 3 and parts[-2] == "output":
        name = parts[-3]
    else:
        name = "/".join(parts[:-1]) or archive.name
    if tuning_job and not name.startswith(f"{tuning_job}-"):
        name = f"{tuning_job}-{name.lstrip('-')}"
    return name


def find_artifacts(root: Path, tuning_job: str = "") -> dict[str, Path]:
    """Training job name -> its model.tar.gz, for every artifact under `root`."""
    if not root.is_dir():
        raise InputError("the tuning trials' input directory does not exist", file=root)
    return {trial_name(p, root, tuning_job): p for p in sorted(root.rglob(ARTIFACT_FILE))}


def find_signature(archive: Path, source: str) -> dict[str, Any] | None:
    """The JSON signature inside a model.tar.gz, without extracting or unpickling the model;
    None when the archive holds none. `source` names the artifact in errors. The one reader of
    a signature from an archive (Evaluate here, `modelbuild.trials` for a tuning job's trials)."""
    with open_archive(archive, source) as tar:
        for member in checked_members(tar, source):
            if member.name != SIGNATURE_FILE:
                continue
            if member.size > MAX_SIGNATURE_BYTES:
                raise InputError(f"{SIGNATURE_FILE} is {member.size} bytes", file=source)
            stream = tar.extractfile(member)
            try:
                signature = json.loads(stream.read()) if stream else None
            except ValueError as error:
                raise InputError(f"{SIGNATURE_FILE} is not JSON: {error}", file=source) from None
            if not isinstance(signature, dict):
                raise InputError(f"{SIGNATURE_FILE} is not a JSON object", file=source)
            return signature
    return None


def read_signature(archive: Path, source: str) -> dict[str, Any]:
    """`find_signature`, where an archive without a signature is the user's problem."""
    signature = find_signature(archive, source)
    if signature is None:
        raise InputError(f"the archive holds no {SIGNATURE_FILE}", file=source)
    return signature


def read_trial(name: str, archive: Path) -> TrialScores:
    """One trial's CV result from its signature; a problem reading it is recorded, not raised,
    so one broken artifact does not hide the others."""
    source = f"{name}/output/{ARTIFACT_FILE}"
    try:
        signature = read_signature(archive, source)
    except InputError as error:
        return TrialScores(name, "unknown", None, problem=error.describe())
    except OSError as error:
        return TrialScores(name, "unknown", None, problem=f"{source}: {error_reason(error)}")
    algorithm = str(signature.get("algorithm", "unknown"))
    raw = signature.get("hyperparameters")
    hyperparameters = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    cv = signature.get("cv")
    if not isinstance(cv, dict):
        return TrialScores(name, algorithm, None, hyperparameters=hyperparameters)
    folds = cv.get("fold_scores")
    if not isinstance(folds, list) or not all(
        isinstance(s, int | float) and not isinstance(s, bool) for s in folds
    ):
        return TrialScores(
            name, algorithm, None, hyperparameters=hyperparameters,
            problem=f"{source}: the signature's cv.fold_scores is not a list of numbers",
        )  # fmt: skip
    metric = cv.get("metric")
    return TrialScores(
        name,
        algorithm,
        tuple(float(s) for s in folds),
        metric=str(metric) if metric is not None else None,
        hyperparameters=hyperparameters,
    )


def read_trials(root: Path, tuning_job: str = "") -> tuple[list[TrialScores], dict[str, Path]]:
    """Every trial artifact under `root`, read; and where each one is."""
    artifacts = find_artifacts(root, tuning_job)
    return [read_trial(name, path) for name, path in artifacts.items()], artifacts
