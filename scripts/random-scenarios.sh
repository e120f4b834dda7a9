#!/usr/bin/env bash
# Play random scenarios (scripts/random-scenario.py) with a ballast binary and
# list those that lose a request or fail a change.
#   scripts/random-scenarios.sh target/release/ballast FROM TO
# SHIPPED=1 starts every run from desired-state/ (ds2 edits its task bounds).
set -u
bin=$1; from=$2; to=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
valid=0; invalid=0; failed=0
for i in $(seq "$from" "$to"); do
  d=$work/s$i
  python3 "$here/random-scenario.py" "$i" "$d"
  if ! "$bin" simulate "$d/scenario.yaml" "$d/ds" --output json > "$d/out.json" 2> "$d/err.txt"; then
    invalid=$((invalid + 1)); continue
  fi
  valid=$((valid + 1))
  verdict=$(python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
print('FAIL failedRequests=%s changesFailed=%s' % (d['failedRequests'], d['changesFailed'])
      if d['failedRequests'] > 0 or d['changesFailed'] > 0 else 'ok')" "$d/out.json")
  if [ "$verdict" != ok ]; then failed=$((failed + 1)); echo "seed $i: $verdict ($d)"; fi
done
echo "valid=$valid invalid=$invalid failed=$failed (runs kept in $work)"
[ "$failed" -eq 0 ]
