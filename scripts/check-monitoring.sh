#!/usr/bin/env bash
# Check deploy/monitoring/: the alert rules load (`promtool check rules`),
# their unit tests pass (`promtool test rules`), and the tests can fail:
# each rule in turn, with the metric names of its expression misspelt,
# must make them fail (a rule without a firing test would pass anyway).
# Also: every metric the rules and the dashboard name is one ballast
# registers in src/metrics.rs, every runbook link has its heading in
# docs/operations.md, and the dashboard is valid JSON.
# Needs promtool (Debian package prometheus) and python3; takes seconds.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dir=deploy/monitoring
rules=$dir/alerts.yaml
tests=$dir/alerts.test.yaml
dashboard=$dir/grafana-dashboard.json

run() {
  echo "+ $*"
  "$@"
}

run promtool check rules "$rules"
run promtool test rules "$tests"

# Mutants: rule i's expression with every metric name misspelt, the other
# rules as they are. The test file names its rule file relatively, so each
# mutant sits beside a copy of it.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$tests" "$tmp/alerts.test.yaml"
count=$(grep -c '^ *- alert: ' "$rules")
survived=()
for i in $(seq 1 "$count"); do
  awk -v target="$i" '
    /^ *- alert: / { rule++; in_expr = 0 }
    rule == target && /^ *expr:/ { in_expr = 1 }
    rule == target && /^ *for:/ { in_expr = 0 }
    in_expr { gsub(/ballast_[a-z_]+/, "&_broken"); gsub(/up\{/, "up_broken{") }
    { print }
  ' "$rules" > "$tmp/alerts.yaml"
  name=$(grep '^ *- alert: ' "$rules" | sed -n "${i}p" | sed 's/.*- alert: //')
  if cmp -s "$rules" "$tmp/alerts.yaml"; then
    echo "error: found no metric name to break in $name's expression" >&2
    exit 1
  fi
  if promtool test rules "$tmp/alerts.test.yaml" >/dev/null 2>&1; then
    survived+=("$name")
  else
    echo "ok: breaking $name's expression fails its tests"
  fi
done
if [ ${#survived[@]} -gt 0 ]; then
  echo "error: the tests still pass with these rules' expressions broken: ${survived[*]}" >&2
  echo "       give each a test in $tests in which it fires" >&2
  exit 1
fi

# Metric names: `ballast_x_total` is registered as "x" (counters get their
# suffix from the client library), histograms add _bucket, _sum, _count.
missing=()
while read -r metric; do
  base=${metric#ballast_}
  base=$(sed -E 's/_(total|bucket|sum|count)$//' <<<"$base")
  grep -q "\"$base\"" src/metrics.rs || missing+=("$metric")
done < <(grep -ohE 'ballast_[a-z_]+' "$rules" "$dashboard" | sort -u)
if [ ${#missing[@]} -gt 0 ]; then
  echo "error: ballast exports no such metric (src/metrics.rs): ${missing[*]}" >&2
  exit 1
fi
echo "ok: every metric named in $rules and $dashboard is registered in src/metrics.rs"

# Runbook links: docs/operations.md#name needs a heading `name`.
while read -r anchor; do
  if ! grep -qiE "^#+ $anchor\$" docs/operations.md; then
    echo "error: $rules links to docs/operations.md#$anchor, which has no such heading" >&2
    exit 1
  fi
done < <(grep -oE 'docs/operations\.md#[a-z0-9-]+' "$rules" | sed 's/.*#//' | sort -u)
echo "ok: every runbook link has its heading in docs/operations.md"

run python3 -m json.tool "$dashboard" >/dev/null
echo "monitoring: all checks passed"
