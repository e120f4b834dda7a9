#!/usr/bin/env bash
# Run the AWS emulator by hand: moto in server mode plus the CloudWatch
# bridge (aws-sdk-cloudwatch speaks rpc-v2-cbor, which moto lacks), the
# same pair the tests start. Prints the environment that points ballast
# (or the AWS CLI) at them; Ctrl-C stops both.
#
#   scripts/emulator.sh [MOTO_PORT] [BRIDGE_PORT]     # defaults 5000, 5001
#
# Then, in another shell, with what it printed exported:
#   ballast plan --cloud aws desired-state
#
# moto starts empty: create the system first (the tests' seeding is in
# tests/support/emulator.rs, `Actors::seed`; boto3 or the AWS CLI against
# $AWS_ENDPOINT_URL work as well).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
moto_port=${1:-5000}
bridge_port=${2:-5001}

bash "$root/scripts/emulator-setup.sh" >&2
py="$root/.venv/bin/python"

# Both exit when their stdin closes; hold it open with a pipe that lives
# as long as this script.
trap 'kill 0 2>/dev/null' EXIT INT TERM
tail -f /dev/null | "$py" "$root/tests/emulator/moto_server.py" -H 127.0.0.1 -p "$moto_port" &
tail -f /dev/null | "$py" "$root/tests/emulator/cloudwatch_bridge.py" "$bridge_port" "http://127.0.0.1:$moto_port" &

for _ in $(seq 100); do
  if "$py" - "$moto_port" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1)
PY
  sleep 0.1
done

cat <<ENV
# moto on 127.0.0.1:$moto_port, CloudWatch bridge on 127.0.0.1:$bridge_port
export AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_CLOUDWATCH=http://127.0.0.1:$bridge_port
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-2
ENV
wait
