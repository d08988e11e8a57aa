"""Reading a model.tar.gz that came from elsewhere, with the standard library only.

Both sides that open an archive before trusting it read it through here: the deploy side, which
verifies an artifact before it may be routed (`modeldeploy.artifacts`, which has no ML library),
and the serving side, which unpacks one it is given (`container.artifact.unpack`, run by the
serving supervisor, which must stay light). Each member's header is checked before its bytes are
decompressed, so a decompression bomb is refused at its header, not after filling a disk:

- at most MAX_MEMBERS members, only regular files and directories (no links, devices or sparse
  files), each named by a plain relative path;
- every member, and all of them together, at most `max_unpacked_bytes()` (env
  MME_MAX_MODEL_BYTES, default 4 GiB);
- extended headers (pax, GNU long names) at most MAX_HEADER_BYTES, since tarfile reads them whole
  into memory before it yields the member they describe.

A stream broken anywhere (a bad gzip header, a deflate error or checksum mismatch mid-way, a
truncated file) is an ArchiveError naming the archive, never a raw zlib.error; and the message
names the problem, not a path on this machine.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from container.errors import InputError

MAX_MODEL_BYTES_ENV = "MME_MAX_MODEL_BYTES"
DEFAULT_MAX_UNPACKED_BYTES = 4 * 1024**3
# A model.tar.gz holds model.joblib and signature.json, perhaps a directory entry: 64 leaves
# room for what a user's training code adds, and none for a million-entry header flood.
MAX_MEMBERS = 64
MAX_HEADER_BYTES = 1024 * 1024
_EXTENDED_HEADERS = frozenset(
    {
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    }
)


class ArchiveError(InputError):
    """An archive that cannot be read safely; the message names the archive and the problem."""


def max_unpacked_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The most an archive may unpack to: MME_MAX_MODEL_BYTES, else DEFAULT_MAX_UNPACKED_BYTES."""
    value = (os.environ if environ is None else environ).get(MAX_MODEL_BYTES_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_UNPACKED_BYTES
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"{MAX_MODEL_BYTES_ENV} must be a positive number of bytes, got {value!r}")
    return int(value)


class _BoundedTarInfo(tarfile.TarInfo):
    """A header that refuses an oversized extended header before tarfile reads it whole."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        # tarfile's one dispatch point for a header's payload; the pax and GNU long-name readers
        # it calls read self.size bytes at once.
        if self.type in _EXTENDED_HEADERS and self.size > MAX_HEADER_BYTES:
            raise ArchiveError(
                f"an extended tar header of {self.size} bytes (over {MAX_HEADER_BYTES})"
            )
        return super()._proc_member(tar)  # type: ignore[misc]


def error_reason(error: BaseException) -> str:
    """The problem without the path of the file on this machine (OSError's str names it)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


@contextmanager
def open_archive(path: Path, source: str | Path) -> Iterator[tarfile.TarFile]:
    """The gzip-compressed tar at `path`, read lazily; anything broken in its stream, while
    opening or while the caller reads it, becomes an ArchiveError naming `source`."""
    try:
        with tarfile.open(path, "r:gz", tarinfo=_BoundedTarInfo) as tar:
            yield tar
    except ArchiveError as error:
        if error.file is None:
            raise ArchiveError(error.problem, file=source) from None
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise ArchiveError(f"not a readable tar.gz: {error_reason(error)}", file=source) from None


def checked_members(
    tar: tarfile.TarFile, source: str | Path, limit: int | None = None
) -> Iterator[tarfile.TarInfo]:
    """The archive's members in order, each checked before its bytes are read (module doc)."""
    limit = max_unpacked_bytes() if limit is None else limit
    total = 0
    for count, member in enumerate(tar, start=1):
        if count > MAX_MEMBERS:
            raise ArchiveError(f"the archive holds more than {MAX_MEMBERS} members", file=source)
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts or "\\" in member.name:
            raise ArchiveError(f"member {member.name!r} is not a plain relative path", file=source)
        if member.issparse() or not (member.isfile() or member.isdir()):
            raise ArchiveError(
                f"member {member.name!r} is a link or special file; only files are allowed",
                file=source,
            )
        total += member.size
        if total > limit:
            raise ArchiveError(
                f"the archive unpacks to more than {limit} bytes (member {member.name!r} "
                f"alone is {member.size}); a larger model needs {MAX_MODEL_BYTES_ENV} raised",
                file=source,
            )
        yield member


def unpack_archive(
    path: Path, directory: Path, source: str | Path, limit: int | None = None
) -> None:
    """Extract the archive's checked members into `directory` (tarfile's "data" filter on top)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open_archive(path, source) as tar:
        for member in checked_members(tar, source, limit):
            tar.extract(member, directory, filter="data")
