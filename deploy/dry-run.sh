#!/usr/bin/env bash
# The first day, against the AWS emulator: create the stack in moto's
# CloudFormation, fill the desired state from it, and check that ballast,
# holding exactly the actions of its task role, converges the new system.
# What it does and what it cannot prove: deploy/dry_run.py.
#
#   deploy/dry-run.sh            # builds target/debug/ballast if needed
#   BALLAST=path/to/ballast deploy/dry-run.sh
#
# Installs what it needs into .venv (the emulator, parliament, and the yq
# the desired-state filler uses). Exits non-zero with a message on failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/emulator-setup.sh >&2
# The filler's yq and the template loader (cfn-lint), at the lint pins.
for pin in yq cfn-lint; do
  if ! .venv/bin/pip show --quiet "$pin" >/dev/null 2>&1; then
    .venv/bin/pip install --quiet --disable-pip-version-check "$(grep "^$pin==" deploy/requirements-lint.txt)"
  fi
done

if [ -z "${BALLAST:-}" ]; then
  cargo build --quiet --locked -p ballast
  BALLAST=$root/target/debug/ballast
fi
exec .venv/bin/python deploy/dry_run.py --ballast "$BALLAST" "$@"
