"""sha256 of files and streams, read in blocks: artifacts and datasets can be large."""

import hashlib
from pathlib import Path
from typing import IO

BLOCK_BYTES = 1 << 20


def sha256_stream(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(BLOCK_BYTES), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with path.open("rb") as stream:
        return sha256_stream(stream)
