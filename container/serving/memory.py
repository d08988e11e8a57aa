"""Measuring memory, so a load that cannot fit is refused with 507 instead of an OOM kill.

SageMaker answers a 507 by unloading unused models and retrying, so the refusal must come before
the memory is taken. Readings come from /proc and the cgroup files, which exist in every Linux
container; elsewhere the server runs without a budget check.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# Unpickled models take more room than their file: Python objects, allocator slack, caches
# built on first predict. Measured ratios are 1.1-1.3 for forests and boosters; 2 leaves margin.
LOAD_SIZE_FACTOR = 2.0
# Room kept free on the machine beyond the budget, for request buffers and the kernel.
SYSTEM_RESERVE_BYTES = 64 * 1024 * 1024
_UNLIMITED = 1 << 60


def process_rss(pid: int) -> int:
    """Resident set size in bytes; 0 when the process is gone or /proc is absent."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * PAGE_SIZE


def _meminfo() -> dict[str, int]:
    info = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            info[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    return info


def _cgroup_value(*candidates: str) -> int | None:
    for candidate in candidates:
        try:
            text = Path(candidate).read_text().strip()
        except OSError:
            continue
        if text and text != "max" and int(text) < _UNLIMITED:
            return int(text)
    return None


def memory_limit() -> int | None:
    """The memory this container may use: its cgroup limit, else the machine's total."""
    limit = _cgroup_value(
        "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    )
    total = _meminfo().get("MemTotal")
    if limit is not None and total is not None:
        return min(limit, total)
    return limit if limit is not None else total


def memory_available() -> int | None:
    """Memory that can still be taken without pushing the machine or the cgroup into reclaim."""
    available = _meminfo().get("MemAvailable")
    limit = _cgroup_value(
        "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    )
    usage = _cgroup_value(
        "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"
    )
    if limit is not None and usage is not None:
        headroom = max(limit - usage, 0)
        available = headroom if available is None else min(available, headroom)
    return available


def default_budget(fraction: float) -> int | None:
    limit = memory_limit()
    return int(limit * fraction) if limit is not None else None


def estimate_load_bytes(artifact_dir: Path, model_file: str, workers: int) -> int:
    """What loading one model will add across all workers (each holds its own copy)."""
    try:
        size = (artifact_dir / model_file).stat().st_size
    except OSError:
        size = 0
    return int(size * LOAD_SIZE_FACTOR) * workers


class Budget:
    """Decides whether a load fits, from the processes' measured memory and the machine's."""

    def __init__(self, budget_bytes: int | None):
        self.budget_bytes = budget_bytes

    def refusal(self, pids: list[int], estimate: int) -> str | None:
        """None if `estimate` more bytes fit; otherwise why not, for the 507 message."""
        used = sum(process_rss(pid) for pid in pids)
        mb = 1024 * 1024
        if self.budget_bytes is not None and used + estimate > self.budget_bytes:
            return (
                f"loading needs about {estimate / mb:.1f} MB but the server already uses "
                f"{used / mb:.1f} MB of its {self.budget_bytes / mb:.1f} MB memory budget"
            )
        available = memory_available()
        if available is not None and estimate + SYSTEM_RESERVE_BYTES > available:
            return (
                f"loading needs about {estimate / mb:.1f} MB but only {available / mb:.1f} MB "
                "of memory is available"
            )
        return None


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018  (glibc only: musl has no malloc_trim)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _load_libc()


def release_freed_memory() -> None:
    """Hand free heap pages back to the OS, so an unload lowers RSS (~1 ms).

    Without malloc_trim, glibc keeps freed arenas mapped and the memory the platform sees (and
    our own budget check) would not go down after a DELETE. The model's objects are already
    freed by then (`heap.forget`), so no garbage collection is needed here.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
