"""The dataset registry (datasets.yml): its schema, and turning a source into a local CSV."""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from container.checksum import sha256_file
from container.errors import InputError
from container.files import write_atomically
from container.metrics import METRIC_NAMES
from modelbuild import environment
from modelbuild.environment import DatasetSettings

REGISTRY_FILE = Path(__file__).with_name("datasets.yml")
# Another registry file instead of datasets.yml (a copy with an added dataset, say).
REGISTRY_ENV = environment.DATASET_REGISTRY
# The offline mirror shipped with the package: URL datasets' files, checked like a download.
MIRROR_DIR = Path(__file__).with_name("data")
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
    # The column separator of a local file. The pipeline reads the comma-separated copy that
    # materialize() writes, so the image needs no option for it.
    sep: Literal[",", ";", "\t", "|"] = ","

    @property
    def remote(self) -> bool:
        return self.csv.startswith("s3://")

    @model_validator(mode="after")
    def _sep_needs_a_local_file(self) -> CsvSource:
        if self.remote and self.sep != ",":
            raise ValueError("sep applies to a local file; an s3:// source is read as it is")
        return self


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
    # The tuning job's ResourceLimits.MaxRuntimeInSeconds (its API range); None: trials only.
    max_runtime_seconds: Annotated[int, Field(ge=120, le=15_768_000)] | None = None


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
    # Rows whose target is empty: refuse the dataset, or train on the labelled rows only.
    unlabelled: Literal["refuse", "drop"] = "refuse"
    # A categorical column with more distinct values than max_levels is free text or an id, not
    # a feature a model learns from: warn about it, or refuse the dataset.
    max_levels: Annotated[int, Field(ge=2)] = 100
    many_levels: Literal["warn", "refuse"] = "warn"

    @field_validator("positive_class", mode="before")
    @classmethod
    def _label_as_text(cls, value: Any) -> Any:
        if isinstance(value, bool):
            # The registry reads only true/false as booleans (see _RegistryLoader): a label
            # spelled so is ambiguous (True? true? 1?) and must be quoted.
            raise ValueError(
                f"{str(value).lower()} reads as a boolean, not a label: quote the label as "
                f"it appears in the data, e.g. positive_class: '{str(value).lower()}'"
            )
        return None if value is None else str(value)

    @model_validator(mode="after")
    def _dropping_needs_a_local_file(self) -> Dataset:
        local = isinstance(self.source, CsvSource) and not self.source.remote
        if self.unlabelled == "drop" and not local:
            raise ValueError(
                "unlabelled: drop applies to a local csv source; other sources are read as "
                "they are (their content addresses their staged copy)"
            )
        return self


def _describe(error: ValidationError) -> str:
    """Pydantic's report as one line per field: 'budget.max_jobs: Input should be ... (got 0)'."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "entry"
        # A check across fields has no location, and its input is the whole entry.
        got = f" (got {item['input']!r})" if item["loc"] and item["type"] != "missing" else ""
        problems.append(f"{field}: {item['msg']}{got}")
    return "invalid entry: " + "; ".join(problems)


def _csv_relative_to(entry: Any, folder: Path) -> Any:
    """The entry with a relative `csv:` path made absolute from the registry file's folder, so a
    registry kept anywhere names files beside itself."""
    source = entry.get("source") if isinstance(entry, dict) else None
    location = source.get("csv") if isinstance(source, dict) else None
    if not isinstance(location, str) or location.startswith("s3://"):
        return entry
    path = Path(location.removeprefix("file://"))
    if path.is_absolute():
        return entry
    return {**entry, "source": {**source, "csv": str(folder / path)}}


class _RegistryLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true and false. YAML 1.1 also reads yes/no/on/off (any case) as
    booleans, so `positive_class: Yes` would become True and match no label; no registry field
    is a boolean, so these stay the text the user wrote."""


_RegistryLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RegistryLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_registry(path: Path = REGISTRY_FILE) -> dict[str, Dataset]:
    try:
        document = yaml.load(path.read_text(), Loader=_RegistryLoader)
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
            registry[name] = Dataset(name=name, **_csv_relative_to(entry or {}, path.parent))
        except ValidationError as error:
            raise InputError(_describe(error), dataset=str(name), file=path) from None
        except TypeError:
            raise InputError(
                "entry must be a mapping of fields", dataset=str(name), file=path
            ) from None
    return registry


def registry_file() -> Path:
    return DatasetSettings.from_environ(os.environ).registry or REGISTRY_FILE


def default_registry() -> dict[str, Dataset]:
    """The project's registry: datasets.yml, or the file $MME_DATASET_REGISTRY names."""
    return _cached_registry(registry_file())


@cache
def _cached_registry(path: Path) -> dict[str, Dataset]:
    return load_registry(path)


def get_dataset(name: str, registry: dict[str, Dataset] | None = None) -> Dataset:
    registry = registry if registry is not None else default_registry()
    if name not in registry:
        raise InputError(f"unknown dataset '{name}' (registered: {', '.join(sorted(registry))})")
    return registry[name]


class DataUnavailableError(InputError):
    """A URL dataset could be neither found offline nor downloaded."""


def cache_dir() -> Path:
    return DatasetSettings.from_environ(os.environ).cache_dir


def data_dir() -> Path | None:
    return DatasetSettings.from_environ(os.environ).data_dir


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
    """The cached copy, else the named data directory's file (and nothing else: the user chose
    it), else the shipped mirror's, else a download; every copy is checked against sha256."""
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
    shipped = MIRROR_DIR / source.local_name
    if shipped.is_file():
        return write_atomically(
            cached, _verified(dataset, source, shipped.read_bytes(), str(shipped))
        )
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


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def source_file(dataset: Dataset) -> Path:
    """The user's own file of a local csv source: what a message about its content names."""
    source = dataset.source
    if not isinstance(source, CsvSource) or source.remote:
        raise InputError("has no local csv source", dataset=dataset.name)
    path = Path(source.csv.removeprefix("file://"))
    if not path.is_absolute():
        path = REGISTRY_FILE.parent / path
    if not path.is_file():
        raise InputError("file not found", dataset=dataset.name, file=display_path(path))
    return path


def read_table(path: Path, dataset: str, sep: str = ",", *, as_text: bool = False) -> pd.DataFrame:
    """Read a CSV with a header row as the preprocess step does (container.schema.read_csv), with
    any separator; as_text keeps every value's text ('007' stays '007')."""
    shown = display_path(path)
    try:
        return pd.read_csv(path, sep=sep, dtype=str if as_text else None, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError("the file is empty", dataset=dataset, file=shown) from None
    except UnicodeDecodeError:
        raise InputError("the file is not UTF-8 text", dataset=dataset, file=shown) from None
    except (pd.errors.ParserError, ValueError) as error:
        raise InputError(
            f"not a parseable CSV: {error}".strip(), dataset=dataset, file=shown
        ) from None


def _prepared(dataset: Dataset, source: CsvSource, path: Path) -> Path:
    """The comma-separated copy the pipeline reads, without unlabelled rows if so configured;
    cached under the digest of the file and the options, so an edit makes a new copy."""
    options = f"{sha256_file(path)}|{source.sep}|{dataset.unlabelled}|{dataset.target}"
    digest = hashlib.sha256(options.encode()).hexdigest()
    prepared = cache_dir() / "datasets" / f"prepared-{digest}.csv"
    if prepared.is_file():
        return prepared
    frame = read_table(path, dataset.name, source.sep, as_text=True)
    if dataset.unlabelled == "drop" and dataset.target in frame.columns:
        frame = frame[frame[dataset.target].notna()]
    return write_atomically(prepared, frame.to_csv(index=False).encode())


def materialize(dataset: Dataset, data_directory: Path | None = None) -> Path:
    """A local comma-separated CSV file holding the dataset as its registry entry defines it."""
    source = dataset.source
    if isinstance(source, SklearnSource):
        return _from_sklearn(dataset, source)
    if isinstance(source, UrlSource):
        return _from_url(dataset, source, data_directory or data_dir())
    if source.remote:
        raise InputError(
            "an s3:// source is read by the pipeline on AWS, not materialised locally",
            dataset=dataset.name,
            file=source.csv,
        )
    path = source_file(dataset)
    if source.sep == "," and dataset.unlabelled == "refuse":
        return path
    return _prepared(dataset, source, path)
