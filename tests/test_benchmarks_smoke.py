"""The benchmark harness runs: `python -m benchmarks.run --smoke --skip-ray` exits 0 and prints its table.

Figures of a smoke run mean nothing (tiny sizes); this only keeps the harness from rotting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_smoke_run_prints_the_table() -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--skip-ray"],
        cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    out = proc.stdout
    assert "| scenario | figure | value | target | result |" in out, out[-3000:]
    for scenario in ("baseline", "submit", "get", "e2e", "state", "list", "log", "follow", "running", "recovery"):
        assert f"| {scenario} |" in out, f"no {scenario} row in the table:\n{out[-3000:]}"
    assert "could not run" not in out, out[-3000:]
    assert elapsed < 60
