"""The local model registry: versions, approval states, events, and its faults."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from local.registry import EVENT_DETAIL_TYPE, LocalModelRegistry, RegistryError, StateChangeEvent

GROUP = "proj-wine"


@pytest.fixture
def registry(tmp_path: Path) -> LocalModelRegistry:
    return LocalModelRegistry(tmp_path / "registry.sqlite")


def test_versions_count_up_per_group_and_list_newest_first(registry: LocalModelRegistry) -> None:
    first = registry.register(GROUP, "s3://b/one.tar.gz", model_metrics={"auc": 0.9})
    second = registry.register(GROUP, "s3://b/two.tar.gz", content_types=["text/csv"])
    other = registry.register("proj-banknote", "s3://b/x.tar.gz")
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert first.approval_status == "PendingManualApproval"
    assert first.arn.endswith(":model-package/proj-wine/1")
    assert first.model_metrics == {"auc": 0.9}
    assert [p.version for p in registry.list_packages(GROUP)] == [2, 1]
    assert registry.get(GROUP, 2).content_types == ["text/csv"]
    assert registry.list_groups() == ["proj-banknote", "proj-wine"]


def test_approval_and_rejection_emit_state_change_events(registry: LocalModelRegistry) -> None:
    seen: list[StateChangeEvent] = []
    registry.subscribe(seen.append)
    registry.register(GROUP, "s3://b/one.tar.gz")
    approved = registry.update_approval(GROUP, 1, "Approved", "looks good")
    assert approved.approval_status == "Approved"
    assert approved.approval_description == "looks good"
    registry.update_approval(GROUP, 1, "Approved")  # no change, no event
    registry.update_approval(GROUP, 1, "Rejected", "drifted")

    assert [e.approval_status for e in seen] == ["PendingManualApproval", "Approved", "Rejected"]
    assert seen[1].detail["ModelPackageVersion"] == 1
    assert seen[1].group_name == GROUP
    persisted = registry.events()
    assert [e.detail for e in persisted] == [e.detail for e in seen]
    assert registry.events(after_id=persisted[1].id) == persisted[2:]
    assert registry.list_packages(GROUP, approval_status="Rejected")[0].version == 1
    assert EVENT_DETAIL_TYPE == "SageMaker Model Package State Change"


def test_unknown_version_and_bad_status_are_named(registry: LocalModelRegistry) -> None:
    registry.register(GROUP, "s3://b/one.tar.gz")
    with pytest.raises(RegistryError, match="'proj-wine' has no version 7"):
        registry.update_approval(GROUP, 7, "Approved")
    with pytest.raises(RegistryError, match="'Approve' is not one of"):
        registry.update_approval(GROUP, 1, "Approve")  # type: ignore[arg-type]
    assert registry.get(GROUP, 1).approval_status == "PendingManualApproval"


def test_concurrent_registrations_never_share_a_version(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    LocalModelRegistry(path)

    def register(i: int) -> int:
        return LocalModelRegistry(path).register(GROUP, f"s3://b/{i}.tar.gz").version

    with ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(register, range(40)))
    assert sorted(versions) == list(range(1, 41))


def test_racing_approvals_of_one_version_emit_one_event(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    LocalModelRegistry(path).register(GROUP, "s3://b/one.tar.gz")

    def approve(_: int) -> None:
        LocalModelRegistry(path).update_approval(GROUP, 1, "Approved")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(approve, range(16)))
    statuses = [e.approval_status for e in LocalModelRegistry(path).events()]
    assert statuses == ["PendingManualApproval", "Approved"]


def test_a_corrupt_database_is_named_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RegistryError, match="corrupt or not a registry"):
        LocalModelRegistry(path)
    assert path.read_bytes() == b"this is not sqlite" * 100


def test_a_locked_database_fails_clearly_and_loses_nothing(registry: LocalModelRegistry) -> None:
    registry.register(GROUP, "s3://b/one.tar.gz")
    quick = LocalModelRegistry(registry.path, busy_timeout=0.2)
    holder = sqlite3.connect(registry.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RegistryError, match="locked by another process"):
            quick.register(GROUP, "s3://b/two.tar.gz")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [p.version for p in registry.list_packages(GROUP)] == [1]
    assert quick.register(GROUP, "s3://b/two.tar.gz").version == 2
