#!/usr/bin/env bash
# Replaces tests/spec/testsuite/ with the .wast scripts of WebAssembly/testsuite at one commit:
# the top-level scripts, custom/ and legacy/ (the proposals/ folder is left out), plus LICENSE.
# The README is kept, with the commit and its date rewritten. <commit> is a full 40-digit hash.
#   tools/refresh_spec_suite.sh <commit>       (or: make refresh-spec-suite COMMIT=<commit>)
# $SPEC_SUITE_REPO overrides the upstream URL (e.g. a local mirror).
set -euo pipefail
commit="${1:?usage: tools/refresh_spec_suite.sh <commit of WebAssembly/testsuite>}"
repo="${SPEC_SUITE_REPO:-https://github.com/WebAssembly/testsuite}"
dest="$(cd "$(dirname "$0")/.." && pwd)/tests/spec/testsuite"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

git -C "$work" init --quiet up
git -C "$work/up" fetch --quiet --depth 1 "$repo" "$commit"
full="$(git -C "$work/up" rev-parse FETCH_HEAD)"
mkdir "$work/new"
git -C "$work/up" archive FETCH_HEAD LICENSE custom legacy $(git -C "$work/up" ls-tree --name-only FETCH_HEAD | grep '\.wast$') \
  | tar -x -C "$work/new"
day="$(git -C "$work/up" log -1 --format=%cs FETCH_HEAD)"
sed -E "s/[0-9a-f]{40} \([0-9-]{10}\)/$full ($day)/" "$dest/README.md" > "$work/new/README.md"
rm -rf "$dest"
mv "$work/new" "$dest"
echo "tests/spec/testsuite: WebAssembly/testsuite at $full ($(find "$dest" -name '*.wast' | wc -l) scripts)"
echo "now run the spec tests and update tests/spec/expectations.toml"
