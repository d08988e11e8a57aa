"""The benchmark's own virtual environment: FLAML and the dataset packages, never the project's.

`ensure_env(repo)` makes `<repo>/.venv-bench-tuning` with `python -m venv` and installs the pinned
`requirements.txt` beside this file into it; it reinstalls only when that file changes (its
sha256 is kept in the environment), so later runs start at once.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

ENV_DIR_NAME = ".venv-bench-tuning"
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
STAMP_FILE = "requirements.sha256"


def env_python(repo: Path) -> Path:
    return repo / ENV_DIR_NAME / "bin" / "python"


def ensure_env(repo: Path, log: Path | None = None) -> Path:
    """The environment's interpreter, created and installed first if needed."""
    env = repo / ENV_DIR_NAME
    python = env_python(repo)
    stamp = env / STAMP_FILE
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return python
    print(f"setting up {env} (FLAML and the dataset packages; once) ...", flush=True)
    if not python.is_file():
        # The project's interpreter makes the environment, so both sides run the same Python.
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "-r", str(REQUIREMENTS)]  # fmt: skip
    with open(log or env / "install.log", "w") as output:
        done = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(
            f"installing {REQUIREMENTS} into {env} failed; see {log or env / 'install.log'}"
        )
    stamp.write_text(digest + "\n")
    return python
