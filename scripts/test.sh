#!/usr/bin/env bash
# Run every check ballast has, installing what the checks need first:
#   - Debian packages: chromium (the app's browser test), prometheus
#     (promtool, and a real server scraping the daemon);
#   - .venv: the AWS emulator (moto) and the deploy linters;
#   - then cargo fmt, clippy, the deploy linters, the alert rules and
#     dashboard (promtool), the deploy dry run and every test.
# Safe to run again: installs are skipped when already done.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

# Debian packages. Root on the CI and developer machines; sudo elsewhere.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  sudo_=""
  [ "$(id -u)" -eq 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Debian prometheus package starts a server on :9090 (ballast's default
# port); the tests start their own, so stop it if it runs.
if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi
pkill -x prometheus >/dev/null 2>&1 || true

step "AWS emulator (moto) into .venv"
bash scripts/emulator-setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "deploy linters (cfn-lint, hadolint, actionlint, shellcheck)"
bash scripts/lint.sh

step "alert rules and dashboard (promtool check/test rules, each rule broken must fail its tests)"
bash scripts/check-monitoring.sh

step "deploy dry run: the first day against the emulator (deploy/dry-run.sh)"
bash deploy/dry-run.sh

step "tests"
log=target/test-output.txt
mkdir -p target
set +e
# Four test threads on two cores: most of the suite waits on the emulator,
# on ballast subprocesses and on headless Chromium, not on the CPU (the
# emulator tests take about a quarter less wall time than with the
# default of one thread per core; BENCHMARKS.md, "Test suite").
cargo test --workspace --locked -- --test-threads 4 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
sum() { grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
# One closing line over every test binary (cargo prints one per binary).
printf '%s passed, %s failed\n' "$(sum passed)" "$(sum failed)" | tee target/test-summary.txt
exit "$status"
