#!/usr/bin/env bash
# Run the AWS emulator by hand: moto in server mode plus the CloudWatch
# bridge (aws-sdk-cloudwatch speaks rpc-v2-cbor, which moto lacks), the
# same pair the tests start. Prints the environment that points ballast
# (or the AWS CLI) at them; Ctrl-C stops both.
#
#   scripts/emulator.sh [--seed DIR] [MOTO_PORT] [BRIDGE_PORT]   # ports 5000, 5001
#
# moto starts empty. With --seed DIR it is seeded with the article's system
# (as the tests seed it: examples/emulator_seed.rs) and DIR receives the
# desired state that declares it. Then, in another shell, with what the
# script printed exported:
#   ballast plan --cloud aws DIR
# and make drift with the AWS CLI or boto3 against $AWS_ENDPOINT_URL.
# Tasks stay RUNNING (moto's state manager is told to hold them), as in
# the tests.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seed=""
if [[ "${1:-}" == "--seed" ]]; then
  seed=${2:?--seed needs a directory}
  shift 2
fi
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
# Hold tasks in RUNNING: moto otherwise moves them a step on every read.
"$py" - "$moto_port" <<'PY'
import sys, urllib.request
body = b'{"model_name":"ecs::task","transition":{"progression":"manual","times":1000000}}'
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/moto-api/state-manager/set-transition", data=body, method="POST")
urllib.request.urlopen(req, timeout=5)
PY

if [[ -n "$seed" ]]; then
  (cd "$root" && cargo run -q --locked --features emulator-seed --example emulator_seed -- \
    "http://127.0.0.1:$moto_port" "http://127.0.0.1:$bridge_port" "$seed") >&2
fi

cat <<ENV
# moto on 127.0.0.1:$moto_port, CloudWatch bridge on 127.0.0.1:$bridge_port
export AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_CLOUDWATCH=http://127.0.0.1:$bridge_port
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
ENV
wait
