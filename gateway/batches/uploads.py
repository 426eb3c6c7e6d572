"""Files that come with a batch: the resourceFile and Kyuubi's extra resources.

A multipart submit stores every file in Postgres (batch_files, keyed by batch and name) in the batch's own
transaction, so that any instance can launch it. At launch, the launching instance writes them into the
batch's working dir under upload/, and each conf key of `extraResourcesMap` gets the paths of its files
appended, joined by commas, after any value the key already had.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from gateway.errors import BadRequest

UPLOAD_DIR = "upload"
# batch_info keys: the resource file's stored name, and {conf key: [stored names]} of the extra resources.
INFO_RESOURCE_FILE = "uploadedFile"
INFO_EXTRA_RESOURCES = "extraResources"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Upload:
    """A file received with a multipart submit, spooled to a temporary path."""

    name: str
    path: Path


def safe_file_name(name: str | None, field: str = "resourceFile") -> str:
    """A client's file name reduced to a plain name that cannot leave the batch's directory."""
    # Some clients percent-encode the file name (RFC 7578 allows it); decode before taking the base name.
    base = os.path.basename(unquote(name or "").replace("\\", "/"))
    base = _UNSAFE.sub("_", base).lstrip(".")
    if not base:
        raise BadRequest(f"{field}: the file name {name!r} is empty or invalid")
    return base[:200]


def match_extra_resources(
    wanted: dict[str, list[str]], uploads: dict[str, Upload], resource_file: str | None
) -> dict[str, list[str]]:
    """Each conf key's extra resource files as stored names, checked against the uploaded parts.

    A listed file that was not uploaded is refused with Kyuubi's message; so is an uploaded part that no
    key lists (it would be stored and never used), and a file named like the resourceFile."""
    stored: dict[str, list[str]] = {}
    missing: set[str] = set()
    for key, names in wanted.items():
        safe = []
        for name in names:
            stored_name = safe_file_name(name, f"extraResourcesMap.{key}")
            if stored_name not in uploads:
                missing.add(name)
            safe.append(stored_name)
        stored[key] = list(dict.fromkeys(safe))
    if missing:
        raise BadRequest(f"required extra resource files [{','.join(sorted(missing))}] are not uploaded "
                         "in the multipart form data")
    listed = {name for names in stored.values() for name in names}
    unlisted = sorted(set(uploads) - listed)
    if unlisted:
        raise BadRequest(f"multipart: part {unlisted[0]!r} is neither batchRequest, resourceFile nor a file "
                         "listed in extraResourcesMap")
    if resource_file is not None and resource_file in listed:
        raise BadRequest(f"extraResourcesMap: {resource_file!r} is also the resourceFile's name; "
                         "give the extra resource another name")
    return stored


def stored_files(batch_info: dict[str, object]) -> list[str]:
    """The names of every file stored with a batch, from its batch_info."""
    names: list[str] = []
    resource = batch_info.get(INFO_RESOURCE_FILE)
    if resource:
        names.append(str(resource))
    extras = batch_info.get(INFO_EXTRA_RESOURCES)
    if isinstance(extras, dict):
        for listed in extras.values():
            names.extend(str(n) for n in listed)
    return list(dict.fromkeys(names))


def conf_with_extra_resources(conf: dict[str, str], batch_info: dict[str, object], workdir: Path) -> dict[str, str]:
    """The batch's conf with each extra resource key's stored paths appended after its own value."""
    extras = batch_info.get(INFO_EXTRA_RESOURCES)
    if not isinstance(extras, dict) or not extras:
        return conf
    out = dict(conf)
    for key, names in extras.items():
        paths = ",".join(str(workdir / UPLOAD_DIR / str(n)) for n in names)
        current = out.get(key, "").strip()
        out[key] = f"{current},{paths}" if current else paths
    return out
