#!/usr/bin/env bash
# Regenerates what is derived from the API types in api/v1alpha1: their
# deepcopy functions (zz_generated.deepcopy.go) and the CustomResourceDefinitions
# in api/crds. `make generate` runs it; api/crds/generate_test.go fails when
# the committed files differ from what this produces.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${MESHGATE_TOOLS:-$HOME/.cache/meshgate}

# controller-gen's version, and how it is built into the tools cache, are the
# ones test-deps.sh uses, so `make test` and `make generate` agree.
read -r _ name module version < <(grep -E '^build_tool controller-gen ' scripts/test-deps.sh)
eval "$(sed -n '/^build_tool() {/,/^}/p' scripts/test-deps.sh)"
build_tool "$name" "$module" "$version"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$TOOLS/$name-$version/$name" object crd paths=./api/v1alpha1/... output:crd:dir="$out"
# Replace the CRDs as a set, so a removed or renamed kind leaves no file behind.
rm -f api/crds/*.yaml
cp "$out"/*.yaml api/crds/
