"""Zip artifacts: checked before they are stored, and extracted safely at launch.

Both steps refuse entries that escape the root (zip-slip: `../`, absolute paths, drive letters), links,
and more files or bytes than allowed. The uncompressed total is checked from the directory before
anything is extracted, and extraction counts bytes again, since a zip's headers can lie.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from gateway.errors import BadRequest

_DRIVE = re.compile(r"^[A-Za-z]:")


def _check_name(name: str) -> None:
    if not name or name.startswith(("/", "\\")) or _DRIVE.match(name) or "\\" in name or "\x00" in name:
        raise BadRequest(f"artifact: entry {name!r} escapes the archive root")
    if any(part == ".." for part in PurePosixPath(name).parts):
        raise BadRequest(f"artifact: entry {name!r} escapes the archive root")


def inspect_zip(path: Path, *, max_files: int, max_bytes: int) -> list[str]:
    """The file names in a zip that passes every rule; a 400 that says which rule it broke otherwise."""
    if not zipfile.is_zipfile(path):
        raise BadRequest("artifact: not a zip file")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BadRequest(f"artifact: not a readable zip file ({exc})") from None
    if len(infos) > max_files:
        raise BadRequest(f"artifact: {len(infos)} entries, more than the limit of {max_files}")
    total = 0
    files: list[str] = []
    for info in infos:
        _check_name(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise BadRequest(f"artifact: entry {info.filename!r} is a symbolic link; links are not allowed")
        total += info.file_size
        if total > max_bytes:
            raise BadRequest(f"artifact: more than {max_bytes} bytes uncompressed (a zip bomb?); refused "
                             "before extracting anything")
        if not info.is_dir():
            files.append(info.filename)
    return files


def extract(zip_path: Path, dest: Path, *, max_bytes: int) -> None:
    """Extract into dest, re-checking every rule and counting the bytes actually written."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written = 0
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            _check_name(info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise BadRequest(f"artifact: entry {info.filename!r} is a symbolic link")
            target = (root / info.filename).resolve()
            if root not in target.parents and target != root:
                raise BadRequest(f"artifact: entry {info.filename!r} escapes the archive root")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(target, "wb") as sink:
                while chunk := source.read(1 << 16):
                    written += len(chunk)
                    if written > max_bytes:
                        raise BadRequest(f"artifact: more than {max_bytes} bytes when extracted")
                    sink.write(chunk)
            target.chmod(0o700)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
