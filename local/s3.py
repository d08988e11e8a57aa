"""Local S3: `s3://bucket/key` is the file `<root>/bucket/key`.

Writes are atomic (a temporary file renamed into place), so a reader never sees half an object,
which is S3's own guarantee for a single PUT.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from container.errors import InputError
from container.files import write_atomically

# Bucket names as S3 allows them; keys may not climb out of their bucket.
_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")


def split_uri(uri: str) -> tuple[str, str]:
    match = _URI.match(uri)
    if not match:
        raise InputError(f"not an s3:// URI: {uri!r}")
    key = match["key"] or ""
    if any(part in ("..", ".") for part in key.split("/")):
        raise InputError(f"S3 key may not contain '.' or '..' segments: {uri!r}")
    return match["bucket"], key


class LocalS3:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, uri: str) -> Path:
        bucket, key = split_uri(uri)
        return self.root / bucket / key

    def uri(self, path: Path) -> str:
        relative = path.resolve().relative_to(self.root.resolve())
        return "s3://" + relative.as_posix()

    def exists(self, uri: str) -> bool:
        return self.path(uri).is_file()

    def put_bytes(self, uri: str, data: bytes) -> str:
        write_atomically(self.path(uri), data)
        return uri

    def put_file(self, uri: str, source: Path) -> str:
        return self.put_bytes(uri, source.read_bytes())

    def get_bytes(self, uri: str) -> bytes:
        path = self.path(uri)
        if not path.is_file():
            raise InputError(f"no such object: {uri}")
        return path.read_bytes()

    def list(self, prefix_uri: str) -> Iterator[str]:
        """Every object under a prefix, as S3 ListObjectsV2 would name them, sorted."""
        bucket, prefix = split_uri(prefix_uri)
        base = self.root / bucket
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            key = path.relative_to(base).as_posix()
            if path.is_file() and key.startswith(prefix) and not path.name.startswith("."):
                yield f"s3://{bucket}/{key}"

    def download_prefix(self, prefix_uri: str, destination: Path) -> list[Path]:
        """Copy a prefix into a directory as a processing or training input would."""
        _, prefix = split_uri(prefix_uri)
        copied = []
        for uri in self.list(prefix_uri):
            _, key = split_uri(uri)
            relative = key[len(prefix) :].lstrip("/") or Path(key).name
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.path(uri), target)
            copied.append(target)
        return copied

    def upload_dir(self, source: Path, prefix_uri: str) -> list[str]:
        """Upload a directory's files under a prefix as a job output would."""
        uploaded = []
        for path in sorted(source.rglob("*")):
            if path.is_file():
                uri = prefix_uri.rstrip("/") + "/" + path.relative_to(source).as_posix()
                uploaded.append(self.put_file(uri, path))
        return uploaded

    def delete(self, uri: str) -> None:
        self.path(uri).unlink(missing_ok=True)
