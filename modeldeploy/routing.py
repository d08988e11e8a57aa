"""The routing table: per stage, dataset -> the live target model on the multi-model endpoint.

Written by the deploy logic, read by the invoker; standard library only, because the invoker
Lambda ships this module and nothing heavier. One JSON document per stage:

    {"format": 1, "stage": "dev", "revision": 7, "updated_at": "2026-11-22T18:00:00+00:00",
     "datasets": {"breast-cancer": {
         "target_model": "breast-cancer/3-<model_sha256>.tar.gz",
         "model_data_url": "s3://<bucket>/dev/models/breast-cancer/3-<model_sha256>.tar.gz",
         "model_package_arn": "arn:aws:sagemaker:...:model-package/mlops-breast-cancer/3",
         "model_package_version": 3,
         "sha256": "<sha256 of the model.tar.gz>",
         "model_sha256": "<sha256 of model.joblib: the model_version the container answers>",
         "source_model_data_url": "<the registered artifact>",
         "deployed_at": "...",
         "previous": {<the same fields, "previous": null>} | null,
         "canary": {<the same fields, "previous": null>},     optional
         "canary_weight": 0.1,                                 optional, with canary
         "awaiting_smoke_test": true}}}                        optional, on any target

The target model's name carries the full model_sha256, the checksum the pipeline recorded in
the registry and the deploy checked: the serving container compares the model file with it
before unpickling (`container.provenance`), so what the table routes is what gets loaded.
`previous` names the artifact kept for rollback; it only ever names a still-approved package.
`canary` (per-model canary, `modeldeploy.canary`) names a newly approved version served next to
the live one for a `canary_weight` share (0 < w < 1) of the dataset's requests until it is
promoted or rolled back. Both keys are absent when there is no canary, so a table without
canaries reads and writes exactly as before.
`awaiting_smoke_test` marks a target placed by a deploy whose smoke test has not passed yet: the
smoke test (a separate command after the deploy) rolls such a target back to `previous` when it
fails, and clears the mark when it passes; a target without the mark has passed before, and a
later failure is reported without a rollback. Absent when false.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

FORMAT = 1
_ROUTE_FIELDS = {
    "target_model": str,
    "model_data_url": str,
    "model_package_arn": str,
    "model_package_version": int,
    "sha256": str,
    "model_sha256": str,
    "source_model_data_url": str,
    "deployed_at": str,
}


class RoutingTableError(ValueError):
    """The stored routing table cannot be read; the message names what is wrong."""


@dataclass(frozen=True)
class Route:
    target_model: str
    model_data_url: str
    model_package_arn: str
    model_package_version: int
    sha256: str
    model_sha256: str
    source_model_data_url: str
    deployed_at: str
    previous: Route | None = None
    canary: Route | None = None
    canary_weight: float = 0.0
    awaiting_smoke_test: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: getattr(self, name) for name in _ROUTE_FIELDS}
        data["previous"] = self.previous.to_dict() if self.previous else None
        if self.canary is not None:
            data["canary"] = self.canary.to_dict()
            data["canary_weight"] = self.canary_weight
        if self.awaiting_smoke_test:
            data["awaiting_smoke_test"] = True
        return data

    def without_previous(self) -> Route:
        """The bare target: no rollback artifact and no canary."""
        return replace(self, previous=None, canary=None, canary_weight=0.0)

    def without_canary(self) -> Route:
        return replace(self, canary=None, canary_weight=0.0)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Route:
        if not isinstance(data, dict):
            raise RoutingTableError(f"{where} is not an object")
        values: dict[str, Any] = {}
        for name, kind in _ROUTE_FIELDS.items():
            value = data.get(name)
            # bool is an int subclass; a version of `true` is still malformed.
            if not isinstance(value, kind) or isinstance(value, bool):
                raise RoutingTableError(f"{where}.{name} must be a {kind.__name__}, got {value!r}")
            values[name] = value
        previous = data.get("previous")
        values["previous"] = (
            None if previous is None else cls.from_dict(previous, f"{where}.previous")
        )
        canary = data.get("canary")
        if canary is not None:
            weight = data.get("canary_weight")
            if (
                not isinstance(weight, int | float)
                or isinstance(weight, bool)
                or not 0 < weight < 1
            ):
                raise RoutingTableError(
                    f"{where}.canary_weight must be a number between 0 and 1, got {weight!r}"
                )
            values["canary"] = cls.from_dict(canary, f"{where}.canary").without_previous()
            values["canary_weight"] = float(weight)
        awaiting = data.get("awaiting_smoke_test", False)
        if not isinstance(awaiting, bool):
            raise RoutingTableError(
                f"{where}.awaiting_smoke_test must be true or false, got {awaiting!r}"
            )
        values["awaiting_smoke_test"] = awaiting
        return cls(**values)


@dataclass(frozen=True)
class RoutingTable:
    stage: str
    revision: int = 0
    updated_at: str = ""
    routes: dict[str, Route] = field(default_factory=dict)

    def to_json(self) -> bytes:
        document = {
            "format": FORMAT,
            "stage": self.stage,
            "revision": self.revision,
            "updated_at": self.updated_at,
            "datasets": {name: self.routes[name].to_dict() for name in sorted(self.routes)},
        }
        return json.dumps(document, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, source: str = "routing table") -> RoutingTable:
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            raise RoutingTableError(f"{source} is not valid JSON: {error}") from None
        if not isinstance(document, dict):
            raise RoutingTableError(f"{source} is not a JSON object")
        if document.get("format") != FORMAT:
            raise RoutingTableError(
                f"{source} has format {document.get('format')!r}; this code reads format {FORMAT}"
            )
        stage, revision = document.get("stage"), document.get("revision")
        datasets = document.get("datasets")
        if not isinstance(stage, str) or not stage:
            raise RoutingTableError(f"{source} has no stage")
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            raise RoutingTableError(f"{source} has an invalid revision {revision!r}")
        if not isinstance(datasets, dict):
            raise RoutingTableError(f"{source} has no 'datasets' object")
        routes = {
            str(name): Route.from_dict(entry, f"{source}: datasets.{name}")
            for name, entry in datasets.items()
        }
        return cls(stage, revision, str(document.get("updated_at", "")), routes)
