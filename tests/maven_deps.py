"""Maven Central artifacts that tests run for real (Kyuubi's clients, Hadoop's YARN).

Each set is a pom under tests/maven/<name>/pom.xml that pins its versions. Maven itself resolves it
(`dependency:copy-dependencies`), so transitive dependencies, exclusions and checksums are Maven's job,
not ours. The jars land in a cache outside the repository: $BATCHGATE_MAVEN_CACHE, or
~/.cache/batchgate/maven, under a directory named by the pom's hash, so a changed pin fetches afresh.
Nothing downloaded is ever committed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

POMS = Path(__file__).resolve().parent / "maven"


def cache_root() -> Path:
    configured = os.environ.get("BATCHGATE_MAVEN_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "batchgate" / "maven"


def artifact_dir(name: str) -> Path:
    """The directory holding every jar of the set `name`, fetched on first use (blocking; call it from
    a session fixture, not from the event loop)."""
    pom = POMS / name / "pom.xml"
    if not pom.is_file():
        raise FileNotFoundError(f"no pom for the Maven set {name!r}: {pom}")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    dest = cache_root() / name / digest
    done = dest / ".complete"
    if done.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs on one machine fetch once
        if done.exists():
            return dest
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError("Maven (mvn) is required to fetch the test artifacts from Maven Central")
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run(
            [mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
             f"-DoutputDirectory={staging}", "-DincludeScope=runtime", "-Dmdep.useRepositoryLayout=false"],
            check=True, timeout=1800,
        )
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)
        done.touch()
    return dest


def classpath(name: str) -> str:
    """The set's jars as a Java class path."""
    return os.pathsep.join(str(p) for p in sorted(artifact_dir(name).glob("*.jar")))
