"""Zip artifacts: checked before they are stored, so that what is accepted unpacks; extracted safely at launch.

At upload, an archive is refused (a 400 naming the entry) when an entry:
- escapes the root (zip-slip: `../`, absolute paths, drive letters, backslashes) or is a link;
- has a NUL or a control character in its name (Python's zipfile would cut the name at a NUL);
- has the name of another entry (after `./` and `//` are folded), or is a file where another entry needs a
  directory (`a` beside `a/b.py`);
- fails its CRC or cannot be decompressed (every entry is read through once, so a header that lies about a
  size fails here);
and when it holds more entries or, read through, more bytes than allowed (a zip bomb). Extraction at
launch checks again, counts the bytes it writes, and turns any failure into ArtifactError, which the
supervisor reports as the batch's diagnostic.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from gateway.errors import BadRequest

_DRIVE = re.compile(r"^[A-Za-z]:")
READ_CHUNK = 1 << 16
# What reading a damaged member raises, besides BadZipFile: a bad deflate stream, a truncated member.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError)


class ArtifactError(BadRequest):
    """An artifact that breaks a rule, or cannot be read or unpacked; the message names the entry."""


def _check_name(raw: str) -> str:
    """The entry's path, normalized; an ArtifactError for a name that is dangerous or cannot be stored."""
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise ArtifactError(f"artifact: entry {raw!r} has a NUL or control character in its name")
    if not raw or raw.startswith(("/", "\\")) or _DRIVE.match(raw) or "\\" in raw:
        raise ArtifactError(f"artifact: entry {raw!r} escapes the archive root")
    path = PurePosixPath(raw)
    if any(part == ".." for part in path.parts):
        raise ArtifactError(f"artifact: entry {raw!r} escapes the archive root")
    return str(path)


def inspect_zip(path: Path, *, max_files: int, max_bytes: int) -> list[str]:
    """The file names in a zip that passes every rule; a 400 that says which rule it broke otherwise."""
    if not zipfile.is_zipfile(path):
        raise ArtifactError("artifact: not a zip file")
    try:
        with zipfile.ZipFile(path) as archive:
            return _inspect(archive, max_files=max_files, max_bytes=max_bytes)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArtifactError(f"artifact: not a readable zip file ({exc})") from None


def _inspect(archive: zipfile.ZipFile, *, max_files: int, max_bytes: int) -> list[str]:
    infos = archive.infolist()
    if len(infos) > max_files:
        raise ArtifactError(f"artifact: {len(infos)} entries, more than the limit of {max_files}")
    total = 0
    files: dict[str, str] = {}  # normalized path -> the entry's name
    dirs: dict[str, str] = {}  # every directory an entry needs -> the entry that needs it
    seen: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = _check_name(info.orig_filename)
        if name in seen:
            other = seen[name]
            if other.is_dir() != info.is_dir():
                file, folder = (other, info) if info.is_dir() else (info, other)
                raise ArtifactError(f"artifact: entry {file.filename!r} is a file, and {folder.filename!r} "
                                    "needs it to be a directory")
            raise ArtifactError(f"artifact: entry {info.orig_filename!r} appears twice")
        seen[name] = info
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArtifactError(f"artifact: entry {info.filename!r} is a symbolic link; links are not allowed")
        total += info.file_size
        if total > max_bytes:
            raise ArtifactError(f"artifact: more than {max_bytes} bytes uncompressed (a zip bomb?); refused "
                                "before extracting anything")
        if info.is_dir():
            dirs.setdefault(name, info.filename)
        else:
            files[name] = info.filename
        for parent in PurePosixPath(name).parents:
            if str(parent) != ".":
                dirs.setdefault(str(parent), info.filename)
    for name, entry in files.items():
        if name in dirs:
            raise ArtifactError(f"artifact: entry {entry!r} is a file, and {dirs[name]!r} needs it to be a "
                                "directory")
    _read_through(archive, infos, max_bytes)
    return [info.filename for info in infos if not info.is_dir()]


def _read_through(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], max_bytes: int) -> None:
    """Read every entry once: its CRC and its real size are checked, whatever the headers say."""
    read = 0
    for info in infos:
        if info.is_dir():
            continue
        try:
            with archive.open(info) as member:
                while chunk := member.read(READ_CHUNK):
                    read += len(chunk)
                    if read > max_bytes:
                        raise ArtifactError(f"artifact: more than {max_bytes} bytes when read (a zip bomb?)")
        except _READ_ERRORS as exc:
            raise ArtifactError(f"artifact: entry {info.filename!r} cannot be read: {exc}") from None


def extract(zip_path: Path, dest: Path, *, max_bytes: int) -> None:
    """Extract into dest, re-checking every rule and counting the bytes actually written. Any failure is an
    ArtifactError that names the entry."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            _extract(archive, dest, max_bytes)
    except ArtifactError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArtifactError(f"artifact: cannot be unpacked ({exc})") from None


def _extract(archive: zipfile.ZipFile, dest: Path, max_bytes: int) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written = 0
    for info in archive.infolist():
        _check_name(info.orig_filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArtifactError(f"artifact: entry {info.filename!r} is a symbolic link")
        target = (root / info.filename).resolve()
        if root not in target.parents and target != root:
            raise ArtifactError(f"artifact: entry {info.filename!r} escapes the archive root")
        try:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(target, "wb") as sink:
                while chunk := source.read(READ_CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        raise ArtifactError(f"artifact: more than {max_bytes} bytes when extracted")
                    sink.write(chunk)
            target.chmod(0o700)
        except ArtifactError:
            raise
        except _READ_ERRORS as exc:
            raise ArtifactError(f"artifact: entry {info.filename!r} cannot be unpacked: {exc}") from None


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
