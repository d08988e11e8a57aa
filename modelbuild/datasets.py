"""The dataset registry (datasets.yml): its schema, and turning a source into a local CSV."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from container.errors import InputError
from container.files import write_atomically
from container.metrics import METRIC_NAMES

REGISTRY_FILE = Path(__file__).with_name("datasets.yml")
# Dataset names become parts of SageMaker resource names (model package groups, pipelines).
DATASET_NAME_PATTERN = r"^[a-z0-9](-?[a-z0-9])*$"
MAX_DATASET_NAME_LENGTH = 24
DOWNLOAD_TIMEOUT_SECONDS = 60

MetricName = Literal[METRIC_NAMES]  # type: ignore[valid-type]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SklearnSource(_Strict):
    sklearn: Literal["load_breast_cancer", "load_wine", "load_iris", "load_digits"]


class CsvSource(_Strict):
    csv: str


class UrlSource(_Strict):
    url: Annotated[str, Field(pattern=r"^https?://")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    filename: str | None = None
    columns: list[str] | None = None

    @property
    def local_name(self) -> str:
        return self.filename or self.url.rstrip("/").rsplit("/", 1)[-1]


def _source_kind(value: Any) -> str | None:
    """Pick the source model by its defining key, so errors speak of that kind only."""
    if isinstance(value, dict):
        return next((key for key in ("sklearn", "csv", "url") if key in value), None)
    return {SklearnSource: "sklearn", CsvSource: "csv", UrlSource: "url"}.get(type(value))


Source = Annotated[
    Annotated[SklearnSource, Tag("sklearn")]
    | Annotated[CsvSource, Tag("csv")]
    | Annotated[UrlSource, Tag("url")],
    Discriminator(
        _source_kind,
        custom_error_type="source_kind",
        custom_error_message="a source needs one of the keys sklearn, csv or url",
    ),
]


class Budget(_Strict):
    max_jobs: Annotated[int, Field(ge=1, le=500)] = 60
    max_parallel_jobs: Annotated[int, Field(ge=1, le=100)] = 6


class Dataset(_Strict):
    name: Annotated[str, Field(pattern=DATASET_NAME_PATTERN, max_length=MAX_DATASET_NAME_LENGTH)]
    description: str = ""
    source: Source
    target: str
    positive_class: str | int | None = None
    categorical: list[str] = []
    metric: MetricName = "roc_auc"
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.7
    test_size: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    cv_folds: Annotated[int, Field(ge=2, le=20)] = 5
    random_state: int = 42
    budget: Budget = Budget()

    @field_validator("positive_class", mode="before")
    @classmethod
    def _label_as_text(cls, value: Any) -> Any:
        return None if value is None else str(value)


def _describe(error: ValidationError) -> str:
    """Pydantic's report as one line per field: 'budget.max_jobs: Input should be ... (got 0)'."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "entry"
        got = f" (got {item['input']!r})" if item["type"] != "missing" else ""
        problems.append(f"{field}: {item['msg']}{got}")
    return "invalid entry: " + "; ".join(problems)


def load_registry(path: Path = REGISTRY_FILE) -> dict[str, Dataset]:
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError("dataset registry not found", file=path) from None
    except yaml.YAMLError as error:
        raise InputError(f"dataset registry is not valid YAML: {error}", file=path) from None
    entries = (document or {}).get("datasets") if isinstance(document, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise InputError("dataset registry has no 'datasets' mapping", file=path)
    registry = {}
    for name, entry in entries.items():
        try:
            registry[name] = Dataset(name=name, **(entry or {}))
        except ValidationError as error:
            raise InputError(_describe(error), dataset=str(name), file=path) from None
        except TypeError:
            raise InputError(
                "entry must be a mapping of fields", dataset=str(name), file=path
            ) from None
    return registry


@cache
def default_registry() -> dict[str, Dataset]:
    return load_registry()


def get_dataset(name: str, registry: dict[str, Dataset] | None = None) -> Dataset:
    registry = registry if registry is not None else default_registry()
    if name not in registry:
        raise InputError(f"unknown dataset '{name}' (registered: {', '.join(sorted(registry))})")
    return registry[name]


class DataUnavailableError(InputError):
    """A URL dataset could be neither found offline nor downloaded."""


def cache_dir() -> Path:
    return Path(os.environ.get("MME_CACHE_DIR", Path.home() / ".cache" / "sagemaker-mme"))


def data_dir() -> Path | None:
    value = os.environ.get("MME_DATA_DIR")
    return Path(value) if value else None


def normalize_csv(raw: bytes, columns: list[str] | None) -> bytes:
    """The canonical text a URL source's sha256 is taken over (see datasets.yml)."""
    lines = [line for line in raw.decode("utf-8-sig").splitlines() if line.strip()]
    if columns and (not lines or lines[0].strip() != ",".join(columns)):
        lines.insert(0, ",".join(columns))
    return ("\n".join(lines) + "\n").encode()


def _verified(dataset: Dataset, source: UrlSource, raw: bytes, origin: str) -> bytes:
    data = normalize_csv(raw, source.columns)
    digest = hashlib.sha256(data).hexdigest()
    if digest != source.sha256:
        # Unavailable rather than plain bad input: a run over every dataset skips it with this
        # message instead of failing the datasets whose data is fine.
        raise DataUnavailableError(
            f"checksum mismatch: expected sha256 {source.sha256}, got {digest}",
            dataset=dataset.name,
            file=origin,
        )
    return data


def _from_url(dataset: Dataset, source: UrlSource, mirror: Path | None) -> Path:
    cached = cache_dir() / "datasets" / f"{source.sha256}.csv"
    if cached.is_file():
        return cached
    if mirror is not None:
        local = mirror / source.local_name
        if not local.is_file():
            raise DataUnavailableError(
                "not in the data directory (MME_DATA_DIR / --data-dir)",
                dataset=dataset.name,
                file=local,
            )
        return write_atomically(cached, _verified(dataset, source, local.read_bytes(), str(local)))
    try:
        with urllib.request.urlopen(source.url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            raw = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise DataUnavailableError(
            f"download failed ({error}); with no network, point MME_DATA_DIR at a directory "
            f"holding {source.local_name}",
            dataset=dataset.name,
            file=source.url,
        ) from None
    return write_atomically(cached, _verified(dataset, source, raw, source.url))


def _from_sklearn(dataset: Dataset, source: SklearnSource) -> Path:
    from sklearn import datasets as sk_datasets

    path = cache_dir() / "datasets" / f"sklearn-{source.sklearn}-{dataset.target}.csv"
    if path.is_file():
        return path
    bunch = getattr(sk_datasets, source.sklearn)(as_frame=True)
    frame = bunch.frame.rename(columns={"target": dataset.target})
    names = list(getattr(bunch, "target_names", []))
    if names:
        frame[dataset.target] = frame[dataset.target].map(lambda i: str(names[int(i)]))
    return write_atomically(path, frame.to_csv(index=False).encode())


def materialize(dataset: Dataset, data_directory: Path | None = None) -> Path:
    """A local CSV file holding the dataset as its source defines it."""
    source = dataset.source
    if isinstance(source, SklearnSource):
        return _from_sklearn(dataset, source)
    if isinstance(source, UrlSource):
        return _from_url(dataset, source, data_directory or data_dir())
    location = source.csv
    if location.startswith("s3://"):
        raise InputError(
            "an s3:// source is read by the pipeline on AWS, not materialised locally",
            dataset=dataset.name,
            file=location,
        )
    path = Path(location.removeprefix("file://"))
    if not path.is_absolute():
        path = REGISTRY_FILE.parent / path
    if not path.is_file():
        raise InputError("file not found", dataset=dataset.name, file=path)
    return path
