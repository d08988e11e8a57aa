"""The dataset (or model package group) a user names, resolved against the local registry."""

from __future__ import annotations

from local.commands.common import Settings


def group_of(settings: Settings, dataset_or_group: str) -> str:
    from local.approval import group_of as resolve

    return resolve(settings.home, settings.project, dataset_or_group)


def dataset_of(settings: Settings, dataset_or_group: str) -> str:
    from local.approval import dataset_of as resolve

    return resolve(settings.home, settings.project, dataset_or_group)
