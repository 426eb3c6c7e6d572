"""The arrows between rooms (docs/architecture.md): the import-linter contracts in pyproject.toml hold on
the code, and each contract breaks when a forbidden import is added to a copy of the code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run([LINT_IMPORTS, "--no-cache", "--no-logo", *selected], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_import_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for contract in ("engines never import gateway", "the client never imports the server",
                     "infrastructure rooms (instance, security, store) import no domain",
                     "handlers never import the storage layer",
                     "domains reach storage only through their repositories",
                     "the wire contract imports neither the client nor the server"):
        assert f"{contract} KEPT" in result.stdout


# One forbidden import per contract, added to a copy of the code: the contract must break and name it.
VIOLATIONS = [
    ("engines", "engines/local.py", "import gateway.errors"),
    ("contract", "gateway/contract/jobs.py", "import gateway.settings"),
    ("client", "gateway/client/errors.py", "import gateway.store"),
    ("client", "gateway/client/commands/output.py", "import asyncpg"),
    ("client", "gateway/client/streams.py", "import gateway.security.sessions"),
    ("infrastructure", "gateway/instance/heartbeat.py", "import gateway.batches.logs"),
    ("infrastructure", "gateway/security/policy.py", "import gateway.jobs.service"),
    ("infrastructure", "gateway/store/records.py", "import gateway.projects.service"),
    ("api", "gateway/api/health.py", "from gateway.store.batches import BatchRepository"),
    ("api", "gateway/livy/handlers.py", "import asyncpg"),
    ("repositories", "gateway/jobs/plan.py", "from gateway.store.database import Database"),
    ("repositories", "gateway/batches/scheduler.py", "import asyncpg"),
    ("repositories", "gateway/security/sessions.py", "from gateway.store.queries import load_queries"),
    ("repositories", "gateway/schedules/timing.py", "from gateway.store.rows import QueryRepository"),
]


@pytest.mark.parametrize(("contract", "module", "line"), VIOLATIONS, ids=[f"{c}:{m}" for c, m, _ in VIOLATIONS])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, contract: str, module: str, line: str) -> None:
    for package in ("gateway", "engines"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "ui"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert lint_imports(tmp_path, contract).returncode == 0, "the copy keeps the contract before the change"
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # the forbidden import\n")
    result = lint_imports(tmp_path, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout


def _private_reaches(path: Path) -> list[str]:
    """`other._name` anywhere but on self or cls: code that reaches into another object's private parts."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


# Known and named: namedtuple's public _replace; the client's log follower drives its own AsyncClient.
PRIVATE_REACH_ALLOWED = ("._replace", "self._client._open")


def test_no_module_reaches_into_another_objects_private_parts() -> None:
    reaches = [r for path in sorted((ROOT / "gateway").rglob("*.py")) for r in _private_reaches(path)
               if not r.endswith(PRIVATE_REACH_ALLOWED)]
    assert reaches == []


def test_each_repository_has_its_own_named_queries() -> None:
    import re

    from gateway.store.queries import load_queries

    homes: dict[str, str] = {}
    for path in sorted((ROOT / "gateway" / "store").glob("*.sql")):
        text = path.read_text()
        names = re.findall(r"^-- name: (\w+)\s*$", text, re.M)
        assert names, f"{path.name} holds no named query"
        assert set(load_queries(path.name)) == set(names)
        for name in names:
            assert name not in homes, f"query {name} is in both {homes[name]} and {path.name}"
            homes[name] = path.name
    for subject in ("batches", "claims", "control", "logs", "audit", "sessions", "instances", "jobs",
                    "projects", "schedules", "slas"):
        assert f"{subject}.sql" in homes.values()
    outside = [str(p.relative_to(ROOT)) for p in (ROOT / "gateway").rglob("*.py")
               if "store" not in p.parts and "load_queries" in p.read_text()]
    assert outside == [], "only the storage layer loads SQL"
