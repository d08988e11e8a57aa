"""Faulty model.tar.gz files, made from real packed artifacts by the tests that need them.

Each fault is injected here, in the test, and checked to be the fault it claims to be (a stream
that really raises zlib.error mid-way, a header that really claims more than it holds), so a
test cannot pass because the fault went missing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib

from container.layout import MODEL_FILE, SIGNATURE_FILE


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def repack(
    archive: Path,
    destination: Path,
    *,
    model: bytes | None = None,
    signature: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """The artifact with its model file and/or signature changed, the signature's checksum
    recomputed: only the change is wrong, every archive-level check passes."""
    files = members(archive)
    data = files[MODEL_FILE] if model is None else model
    document = json.loads(files[SIGNATURE_FILE])
    if signature is not None:
        signature(document)
    document["model_sha256"] = hashlib.sha256(data).hexdigest()
    destination.write_bytes(
        _tar_gz({MODEL_FILE: data, SIGNATURE_FILE: json.dumps(document).encode()})
    )
    return destination


def not_a_model(archive: Path, destination: Path) -> Path:
    """A valid archive whose pickle loads but is no classifier: only serving it can tell."""
    buffer = io.BytesIO()
    joblib.dump({"weights": [1.0, 2.0]}, buffer)
    return repack(archive, destination, model=buffer.getvalue())


def _raises_zlib_error(data: bytes) -> bool:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                stream = tar.extractfile(member)
                if stream is not None:
                    stream.read()
    except zlib.error:
        return True
    except Exception:
        return False
    return False


def corrupt_mid_stream(archive: Path, destination: Path) -> Path:
    """The archive with bytes flipped half-way through its deflate stream, at the first offset
    where reading it raises zlib.error (what a damaged upload or disk gives)."""
    data = bytearray(archive.read_bytes())
    for offset in range(len(data) // 2, len(data) - 64, 97):
        damaged = bytearray(data)
        for i in range(offset, offset + 16):
            damaged[i] ^= 0x5A
        if _raises_zlib_error(bytes(damaged)):
            destination.write_bytes(bytes(damaged))
            return destination
    raise AssertionError("no offset gives a zlib.error")


def lying_header(destination: Path, claimed: int) -> Path:
    """A model file whose header claims `claimed` bytes and is followed by one megabyte: read
    before its header is checked, it would be a truncated archive, not a refused one."""
    header = tarfile.TarInfo(MODEL_FILE)
    header.size = claimed
    raw = header.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * (1024 * 1024)
    destination.write_bytes(gzip.compress(raw))
    with tarfile.open(destination, "r:gz") as tar:  # the fault: the header says what it says
        assert tar.next().size == claimed  # type: ignore[union-attr]
    return destination


def zero_bomb(archive: Path, destination: Path, size: int) -> Path:
    """The artifact with its model file replaced by `size` zero bytes: a few KB compressed."""
    return repack(archive, destination, model=bytes(size))


def pax_bomb(destination: Path, claimed: int) -> Path:
    """An extended (pax) header claiming `claimed` bytes, which tarfile would read whole."""
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = claimed
    raw = header.tobuf(format=tarfile.USTAR_FORMAT) + b"\0" * (64 * 1024)
    destination.write_bytes(gzip.compress(raw))
    return destination
