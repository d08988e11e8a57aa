"""The dataset registry: its entries, its validation, and fetching URL sources once, verified."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from container.errors import InputError
from modelbuild import datasets
from modelbuild.datasets import (
    MIRROR_DIR,
    REGISTRY_ENV,
    Dataset,
    UrlSource,
    default_registry,
    get_dataset,
    load_registry,
    materialize,
    normalize_csv,
)

BANKNOTE_SHA = "a4e6eb57f00dc0c5696badf6553001e8871644b5b98ab1b2869054af1d255125"
# The attribution CC BY 4.0 requires for the shipped banknote file (Lohweg 2012, UCI).
BANKNOTE_DOI = "https://doi.org/10.24432/C55P57"


def test_seed_datasets_are_registered_and_load() -> None:
    registry = default_registry()
    assert {"breast-cancer", "banknote", "wine"} <= set(registry)
    for dataset in registry.values():
        frame = pd.read_csv(materialize(dataset))
        assert dataset.target in frame.columns
    assert pd.read_csv(materialize(registry["wine"]))["cultivar"].nunique() == 3
    breast = pd.read_csv(materialize(registry["breast-cancer"]))
    assert set(breast["diagnosis"]) == {"malignant", "benign"}


def test_unknown_dataset_lists_the_registered_ones() -> None:
    with pytest.raises(InputError, match=r"unknown dataset 'iris' \(registered: .*banknote"):
        get_dataset("iris")


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("metric: r2", "metric"),
        ("threshold: 1.5", "threshold"),
        ("colour: blue", "colour"),
        ("budget: {max_jobs: 0}", "max_jobs"),
    ],
)
def test_invalid_entries_name_the_dataset_and_field(
    tmp_path: Path, entry: str, problem: str
) -> None:
    path = tmp_path / "datasets.yml"
    path.write_text(
        f"datasets:\n  my-data:\n    source: {{sklearn: load_wine}}\n    target: t\n    {entry}\n"
    )
    with pytest.raises(InputError, match=rf"dataset 'my-data', file '.*datasets.yml'.*{problem}"):
        load_registry(path)


def test_dataset_names_must_fit_sagemaker_resource_names(tmp_path: Path) -> None:
    path = tmp_path / "datasets.yml"
    path.write_text("datasets:\n  My_Data:\n    source: {sklearn: load_wine}\n    target: t\n")
    with pytest.raises(InputError, match="dataset 'My_Data'"):
        load_registry(path)


def test_the_uci_original_normalises_to_the_registered_checksum() -> None:
    """The headerless CRLF file UCI serves and the shipped copy hash the same after normalising."""
    shipped = (MIRROR_DIR / "banknote_authentication.csv").read_bytes()
    body = shipped.split(b"\n", 1)[1]
    uci_like = body.replace(b"\n", b"\r\n") + b"\r\n"
    columns = ["variance", "skewness", "curtosis", "entropy", "class"]
    assert hashlib.sha256(normalize_csv(uci_like, columns)).hexdigest() == BANKNOTE_SHA
    assert hashlib.sha256(normalize_csv(shipped, columns)).hexdigest() == BANKNOTE_SHA


def test_every_shipped_file_is_a_registered_url_source_verified_and_attributed() -> None:
    sources = {
        d.source.local_name: d.source
        for d in default_registry().values()
        if isinstance(d.source, UrlSource)
    }
    notice = (MIRROR_DIR / "NOTICE.md").read_text()
    shipped = sorted(p.name for p in MIRROR_DIR.iterdir() if p.name != "NOTICE.md")
    assert shipped == ["banknote_authentication.csv"]
    for name in shipped:
        source = sources[name]
        data = (MIRROR_DIR / name).read_bytes()
        # Shipped already normalised, so the file's own digest is the registry's.
        assert hashlib.sha256(data).hexdigest() == source.sha256
        assert normalize_csv(data, source.columns) == data
        assert f"## {name}" in notice and source.sha256 in notice
    assert "CC BY 4.0" in notice and BANKNOTE_DOI in notice and "Lohweg" in notice


def _no_download(*args: object, **kwargs: object) -> None:
    raise AssertionError("a dataset was downloaded")


def test_the_seed_url_dataset_needs_no_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an empty cache and no data directory, banknote comes from the shipped mirror."""
    monkeypatch.setenv("MME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MME_DATA_DIR", raising=False)
    monkeypatch.setattr("urllib.request.urlopen", _no_download)
    path = materialize(get_dataset("banknote"))
    assert path.read_bytes() == (MIRROR_DIR / "banknote_authentication.csv").read_bytes()
    frame = pd.read_csv(path)
    assert len(frame) == 1372
    assert frame["class"].value_counts().to_dict() == {0: 762, 1: 610}


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A loopback HTTP server over a directory, recording the paths it served."""
    served: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            served.append(self.path)

    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, served
    finally:
        server.shutdown()


def _url_dataset(url: str, sha256: str) -> Dataset:
    return Dataset(
        name="remote",
        source=UrlSource(url=url, sha256=sha256, columns=["a", "b", "label"]),
        target="label",
    )


@pytest.mark.integration
def test_url_source_is_downloaded_once_and_verified(
    file_server: tuple[str, Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root, served = file_server
    monkeypatch.setenv("MME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MME_DATA_DIR", raising=False)
    raw = b"1,2,x\r\n3,4,y\r\n\r\n"
    (root / "remote.txt").write_bytes(raw)
    sha = hashlib.sha256(normalize_csv(raw, ["a", "b", "label"])).hexdigest()

    dataset = _url_dataset(f"{base}/remote.txt", sha)
    first = materialize(dataset)
    second = materialize(dataset)
    assert first == second
    assert first.read_text() == "a,b,label\n1,2,x\n3,4,y\n"
    assert len([p for p in served if "remote.txt" in p]) == 1


@pytest.mark.integration
def test_checksum_mismatch_is_refused_and_nothing_is_cached(
    file_server: tuple[str, Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root, _ = file_server
    monkeypatch.setenv("MME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MME_DATA_DIR", raising=False)
    (root / "remote.txt").write_bytes(b"1,2,x\n3,4,y\n")
    dataset = _url_dataset(f"{base}/remote.txt", "0" * 64)
    with pytest.raises(
        InputError, match=r"dataset 'remote', file 'http://.*remote.txt'.*checksum mismatch"
    ):
        materialize(dataset)
    assert not list((tmp_path / "cache").rglob("*.csv"))


@pytest.mark.integration
def test_the_mirror_is_read_before_the_network(
    file_server: tuple[str, Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root, served = file_server
    monkeypatch.setenv("MME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MME_DATA_DIR", raising=False)
    raw = b"a,b,label\n1,2,x\n3,4,y\n"
    (root / "remote.txt").write_bytes(raw)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "remote.txt").write_bytes(raw)
    monkeypatch.setattr(datasets, "MIRROR_DIR", mirror)
    dataset = _url_dataset(f"{base}/remote.txt", hashlib.sha256(raw).hexdigest())
    assert materialize(dataset).read_bytes() == raw
    assert served == []


def test_a_corrupt_mirror_file_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MME_DATA_DIR", raising=False)
    monkeypatch.setattr("urllib.request.urlopen", _no_download)
    (tmp_path / "remote.txt").write_bytes(b"a,b,label\n1,2,x\n")
    monkeypatch.setattr(datasets, "MIRROR_DIR", tmp_path)
    dataset = _url_dataset("https://example.invalid/remote.txt", "0" * 64)
    with pytest.raises(InputError, match=r"file '.*remote.txt'.*checksum mismatch"):
        materialize(dataset)


def test_a_data_directory_replaces_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MME_DATA_DIR holding a dataset's file (any rendering that normalises to its sha256)."""
    monkeypatch.setenv("MME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("urllib.request.urlopen", _no_download)
    rendering = b"1,2,x\r\n\r\n3,4,y\r\n"
    sha = hashlib.sha256(normalize_csv(rendering, ["a", "b", "label"])).hexdigest()
    (tmp_path / "remote.txt").write_bytes(rendering)
    monkeypatch.setenv("MME_DATA_DIR", str(tmp_path))
    dataset = _url_dataset("https://example.invalid/remote.txt", sha)
    assert materialize(dataset).read_text() == "a,b,label\n1,2,x\n3,4,y\n"


def test_a_registry_elsewhere_is_the_default_and_names_files_beside_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "my-project"
    (folder / "data").mkdir(parents=True)
    pd.DataFrame({"x": [1, 2, 3, 4], "y": ["a", "b", "a", "b"]}).to_csv(
        folder / "data" / "mine.csv", index=False
    )
    registry = folder / "datasets.yml"
    registry.write_text(
        "datasets:\n"
        "  mine:\n    source: {csv: data/mine.csv}\n    target: y\n"
        "  gone:\n    source: {csv: data/gone.csv}\n    target: y\n"
    )
    monkeypatch.setenv(REGISTRY_ENV, str(registry))
    assert list(default_registry()) == ["mine", "gone"]
    assert materialize(get_dataset("mine")) == folder / "data" / "mine.csv"
    with pytest.raises(InputError, match=r"dataset 'gone', file '.*my-project/data/gone.csv'"):
        materialize(get_dataset("gone"))
    monkeypatch.delenv(REGISTRY_ENV)
    assert "mine" not in default_registry()


def test_offline_mirror_missing_file_names_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MME_CACHE_DIR", str(tmp_path / "cache"))
    dataset = _url_dataset("https://example.invalid/remote.txt", "0" * 64)
    with pytest.raises(InputError, match=r"remote.txt'.*not in the data directory"):
        materialize(dataset, tmp_path / "empty-mirror")
