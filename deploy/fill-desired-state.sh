#!/usr/bin/env bash
# Fill a stack's region and private subnets into a desired-state directory,
# in place, before the controller image is built.
#
#   YQ=/path/to/yq deploy/fill-desired-state.sh DIR REGION SUBNET_A ZONE_A SUBNET_B ZONE_B
#
# Every document gets spec.region = REGION. In every Capacity document the
# alwaysOn zone gets SUBNET_A/ZONE_A (the subnet the stack puts in the Auto
# Scaling group) and the onDemand zone SUBNET_B/ZONE_B (the one ballast adds
# on demand). The result must hold exactly one zone of each, or this fails:
# the stack has two private subnets, and a desired state that names others
# would have ballast add subnets its IAM role may not use.
#
# YQ must be the jq wrapper from PyPI (`yq`, pinned in
# deploy/requirements-lint.txt), not the Go yq of the same name; comments
# in the files are not kept, which is fine for a build input.
set -euo pipefail

usage() {
  echo "usage: YQ=yq $0 DIR REGION SUBNET_A ZONE_A SUBNET_B ZONE_B" >&2
  exit 2
}
[ "$#" -eq 6 ] || usage
dir=$1 region=$2 subnet_a=$3 zone_a=$4 subnet_b=$5 zone_b=$6
yq=${YQ:-yq}

# Captured first: `grep -q` would close the pipe early and, under pipefail,
# fail the check on yq's broken pipe.
yq_help=$("$yq" --help 2>&1 || true)
if [[ $yq_help != *"jq wrapper"* ]]; then
  echo "error: $yq is not the jq-wrapper yq from PyPI (pip install yq)" >&2
  exit 1
fi
for subnet in "$subnet_a" "$subnet_b"; do
  if ! [[ $subnet =~ ^subnet-[0-9a-f]{8,17}$ ]]; then
    echo "error: '$subnet' is not a subnet id (subnet-...): check the stack's outputs" >&2
    exit 1
  fi
done
if [ -z "$region" ] || [ -z "$zone_a" ] || [ -z "$zone_b" ]; then
  echo "error: region and both zones must be non-empty" >&2
  exit 1
fi

# The desired-state loader reads *.yaml and *.yml recursively, skipping
# hidden files and directories; fill exactly those.
mapfile -t files < <(find "$dir" -type f \( -name '*.yaml' -o -name '*.yml' \) \
  -not -path '*/.*' | sort)
if [ "${#files[@]}" -eq 0 ]; then
  echo "error: no YAML files under $dir" >&2
  exit 1
fi

# `select(. != null)` drops empty documents instead of writing them back as
# a literal null document.
# shellcheck disable=SC2016 # $a etc. are jq variables, not shell ones
"$yq" -y -i \
  --arg region "$region" \
  --arg a "$subnet_a" --arg za "$zone_a" \
  --arg b "$subnet_b" --arg zb "$zone_b" \
  'select(. != null)
   | if (.spec | type) == "object" then .spec.region = $region else . end
   | if .kind == "Capacity" then
       .spec.zones |= map(
         if (.mode // "alwaysOn") == "alwaysOn"
         then .subnet = $a | .zone = $za
         else .subnet = $b | .zone = $zb
         end)
     else . end' \
  "${files[@]}"

found=$("$yq" -r 'select(. != null) | select(.kind == "Capacity") | .spec.zones[]
  | "\(.mode // "alwaysOn") \(.subnet) \(.zone)"' "${files[@]}" | sort)
want=$(printf '%s\n' "alwaysOn $subnet_a $zone_a" "onDemand $subnet_b $zone_b")
if [ "$found" != "$want" ]; then
  echo "error: after filling, the Capacity zones in $dir are:" >&2
  echo "${found:-  (none)}" >&2
  echo "expected exactly one alwaysOn and one onDemand zone:" >&2
  echo "$want" >&2
  exit 1
fi
echo "filled $dir: region $region; alwaysOn $subnet_a ($zone_a), onDemand $subnet_b ($zone_b)"
