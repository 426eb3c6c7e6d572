"""batchgate as released at a commit of main's history, installed into a venv of its own (the base package,
no engines), for the upgrade tests.

The source comes from this repository's history (`git archive`), so the commit must be in the clone. The
venv is built once per commit and constraints file, in a cache outside the repository:
$BATCHGATE_RELEASE_CACHE, or ~/.cache/batchgate/releases. Nothing of it is committed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / ".ci" / "constraints.txt"


def cache_root() -> Path:
    configured = os.environ.get("BATCHGATE_RELEASE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "batchgate" / "releases"


def source(commit: str, dest: Path) -> Path:
    """The tree of `commit`, unpacked under dest."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit], capture_output=True,
                             check=False)
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {commit} failed (is the repository's history there?): "
                           f"{archive.stderr.decode(errors='replace')}")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as tar:
        tar.write(archive.stdout)
        tar.seek(0)
        with tarfile.open(fileobj=tar) as unpacked:
            unpacked.extractall(dest, filter="data")
    return dest


def install(commit: str) -> Path:
    """The Python of a venv holding batchgate at `commit` (blocking: call it from a session fixture)."""
    full = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{commit}^{{commit}}"],
                          capture_output=True, text=True, check=False)
    if full.returncode != 0:
        raise RuntimeError(f"commit {commit} is not in this clone: {full.stderr.strip()}")
    digest = hashlib.sha256(full.stdout.strip().encode() + CONSTRAINTS.read_bytes()).hexdigest()[:16]
    dest = cache_root() / f"{commit}-{digest}"
    python = dest / "venv" / "bin" / "python"
    done = dest / ".complete"
    if done.exists():
        return python
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs on one machine install once
        if done.exists():
            return python
        shutil.rmtree(dest, ignore_errors=True)
        tree = source(commit, dest / "src")
        subprocess.run([sys.executable, "-m", "venv", str(dest / "venv")], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "-c", str(CONSTRAINTS), str(tree)], check=True, timeout=1800)
        shutil.rmtree(tree)
        done.touch()
    return python
