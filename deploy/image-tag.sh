#!/usr/bin/env bash
# Print the tag of an image built from the working tree: a hash of exactly
# the files that image is built from, so an unchanged image keeps its tag
# and the deploy workflow leaves a service running it alone.
#
#   deploy/image-tag.sh app|ballast      # run at the repository root
#
# ballast's inputs include desired-state/ as it is on disk: the workflow
# fills the stack's subnets in first, and the image carries the result.
set -euo pipefail

case "${1:-}" in
  app) inputs=(Dockerfile Cargo.toml Cargo.lock app) ;;
  ballast) inputs=(Dockerfile Cargo.toml Cargo.lock src desired-state) ;;
  *)
    echo "usage: $0 app|ballast" >&2
    exit 2
    ;;
esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Names and contents, in a fixed order; the image name too, so the two
# images never share a tag.
hash=$(
  {
    echo "$1"
    find "${inputs[@]}" -type f -not -path '*/target/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum
)
echo "$1-${hash:0:20}"
