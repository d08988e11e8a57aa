"""Local S3: URIs map to files under a root, writes are atomic, keys stay in their bucket."""

from __future__ import annotations

from pathlib import Path

import pytest

from container.errors import InputError
from local.s3 import LocalS3


def test_objects_round_trip_and_list_by_prefix(tmp_path: Path) -> None:
    s3 = LocalS3(tmp_path)
    s3.put_bytes("s3://bucket/dev/models/wine/1.tar.gz", b"one")
    s3.put_bytes("s3://bucket/dev/models/wine/2.tar.gz", b"two")
    s3.put_bytes("s3://bucket/prod/models/wine/1.tar.gz", b"p")
    assert s3.get_bytes("s3://bucket/dev/models/wine/2.tar.gz") == b"two"
    assert s3.path("s3://bucket/dev/x") == tmp_path / "bucket" / "dev" / "x"
    assert list(s3.list("s3://bucket/dev/")) == [
        "s3://bucket/dev/models/wine/1.tar.gz",
        "s3://bucket/dev/models/wine/2.tar.gz",
    ]
    assert s3.uri(s3.path("s3://bucket/dev/x")) == "s3://bucket/dev/x"
    s3.delete("s3://bucket/dev/models/wine/1.tar.gz")
    assert not s3.exists("s3://bucket/dev/models/wine/1.tar.gz")


def test_directories_go_up_and_come_down_like_job_channels(tmp_path: Path) -> None:
    s3 = LocalS3(tmp_path / "s3")
    source = tmp_path / "out"
    (source / "sub").mkdir(parents=True)
    (source / "a.csv").write_text("a")
    (source / "sub" / "b.json").write_text("b")
    s3.upload_dir(source, "s3://bucket/run/1/train")
    copied = s3.download_prefix("s3://bucket/run/1/train", tmp_path / "in")
    assert sorted(p.relative_to(tmp_path / "in").as_posix() for p in copied) == [
        "a.csv",
        "sub/b.json",
    ]


@pytest.mark.parametrize(
    "uri", ["http://bucket/x", "s3://Bad_Bucket/x", "s3://bucket/../etc/passwd"]
)
def test_bad_uris_are_refused(tmp_path: Path, uri: str) -> None:
    with pytest.raises(InputError):
        LocalS3(tmp_path).path(uri)


def test_missing_object_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such object: s3://bucket/none"):
        LocalS3(tmp_path).get_bytes("s3://bucket/none")
