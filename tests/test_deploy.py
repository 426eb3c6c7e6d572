"""The deploy recipes pass their real tools: systemd-analyze verify (the unit), hadolint (the
Dockerfile), check-jsonschema with the compose-spec schema (the compose file), and kubectl kustomize
plus kubernetes-validate (the Kubernetes manifests). deploy/check.sh holds the commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "deploy" / "check.sh"


def run_check(name: str) -> subprocess.CompletedProcess[str]:
    # The tools that pip installs live beside this interpreter; systemd-analyze comes from Debian.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.run(["bash", str(CHECK), name], env={**os.environ, "PATH": path}, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name", ["systemd", "dockerfile", "compose", "kubernetes"])
def test_recipe_passes_its_tool(name: str) -> None:
    result = run_check(name)
    assert result.returncode == 0, f"{name}: rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    assert f"{name}: ok" in result.stdout


def test_kubernetes_probes_and_replicas() -> None:
    import yaml

    rendered = subprocess.run(
        [str(Path(sys.executable).parent / "kubectl"), "kustomize", str(ROOT / "deploy" / "kubernetes")],
        capture_output=True, text=True, check=True, timeout=120).stdout
    docs = {d["kind"]: d for d in yaml.safe_load_all(rendered)}
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert docs["Service"]["spec"].get("sessionAffinity", "None") == "None", "no sticky sessions"
    assert docs["PodDisruptionBudget"]["spec"]["selector"] == deployment["spec"]["selector"]
    assert "users" in docs["Secret"]["stringData"]


def test_the_checks_catch_a_broken_recipe(tmp_path: Path) -> None:
    """A check that cannot fail checks nothing: a bad compose file and a bad unit are refused."""
    bad = tmp_path / "deploy"
    (bad / "compose").mkdir(parents=True)
    (bad / "systemd").mkdir()
    (bad / "check.sh").write_text(CHECK.read_text())
    compose = (ROOT / "deploy" / "compose" / "compose.yaml").read_text()
    (bad / "compose" / "compose.yaml").write_text(compose.replace("  postgres:\n", "  postgres:\n    bogus: 1\n", 1))
    unit = (ROOT / "deploy" / "systemd" / "batchgate.service").read_text()
    (bad / "systemd" / "batchgate.service").write_text(unit.replace("KillMode=process", "KillMode=process\nExecStop=relative"))
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    for name in ("compose", "systemd"):
        result = subprocess.run(["bash", str(bad / "check.sh"), name], env={**os.environ, "PATH": path},
                                capture_output=True, text=True, timeout=120)
        assert result.returncode != 0, (name, result.stdout, result.stderr)
