#!/usr/bin/env bash
# Creates or updates .venv at the repository root with the AWS emulator
# (moto server) and the CBOR library the CloudWatch bridge needs.
# Idempotent: when .venv already satisfies tests/emulator/requirements.txt
# it returns in about a second.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$root/tests/emulator/requirements.txt"
venv="$root/.venv"
stamp="$venv/.ballast-requirements"

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "emulator-setup: $python not found; install Python 3.9+ (python3 -m venv must work)" >&2
    exit 1
fi

# The stamp holds the requirements the venv was built from: equal means done.
if [[ -x "$venv/bin/moto_server" && -f "$stamp" ]] && cmp -s "$req" "$stamp"; then
    echo "emulator-setup: $venv is up to date"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "emulator-setup: creating $venv"
    "$python" -m venv "$venv"
fi

"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$req"
"$venv/bin/python" -c 'import moto, cbor2; print("emulator-setup: moto", moto.__version__)'
cp "$req" "$stamp"
echo "emulator-setup: done"
