"""Loads a file of named queries (batches.sql, jobs.sql, stats.sql, migrate.sql...) once into a name -> SQL map."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def load_queries(file: str) -> dict[str, str]:
    text = resources.files("gateway.store").joinpath(file).read_text()
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        queries[name] = "\n".join(lines).strip().rstrip(";")
    return queries


def schema_sql() -> str:
    """schema.sql as shipped in the package, or from the source tree when running uninstalled."""
    packaged = resources.files("gateway").joinpath("schema.sql")
    if packaged.is_file():
        return packaged.read_text()
    from pathlib import Path

    return (Path(__file__).resolve().parents[2] / "schema.sql").read_text()
