#!/usr/bin/env bash
# Validates the Kubernetes manifests (deploy/kubernetes, or the directory given) with kubernetes-validate from PyPI
# (installed into .build-venv-k8s on first use), strictly (unknown fields are errors), against the oldest and the
# newest Kubernetes versions we claim, and checks that kustomization.yaml lists exactly the manifests beside it.
#   scripts/validate-kubernetes.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-deploy/kubernetes}"
die() { echo "validate-kubernetes: $*" >&2; exit 1; }
venv=.build-venv-k8s
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv" >/dev/null || die "cannot create a Python virtual environment (install python3-venv)"
  "$venv/bin/pip" install -q kubernetes-validate >/dev/null 2>&1 || die "pip could not install kubernetes-validate from PyPI"
fi
manifests=()
for file in "$dir"/*.yaml; do
  [ "$(basename "$file")" = kustomization.yaml ] || manifests+=("$file")
done
[ ${#manifests[@]} -gt 0 ] || die "no manifests in $dir"
status=0
for version in 1.29.0 1.37.0; do
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}" || status=1
done
"$venv/bin/python" - "$dir" "${manifests[@]}" <<'PY' || status=1
import os, sys, yaml
directory, manifests = sys.argv[1], sorted(os.path.basename(m) for m in sys.argv[2:])
kustomization = yaml.safe_load(open(os.path.join(directory, "kustomization.yaml")))
listed = sorted(kustomization.get("resources", []))
if listed != manifests:
    print(f"validate-kubernetes: kustomization.yaml lists {listed}, the directory holds {manifests}", file=sys.stderr)
    sys.exit(1)
PY
[ $status -eq 0 ] && echo "validate-kubernetes: ${#manifests[@]} manifests valid, all in kustomization.yaml"
exit $status
