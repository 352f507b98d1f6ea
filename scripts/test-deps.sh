#!/usr/bin/env bash
# Installs and builds what `make test` needs on a fresh Debian machine.
# Built tools are cached outside the clone, keyed by version, so a fresh clone
# (CI) reuses them and a new machine builds them once.
set -euo pipefail
TOOLS=${MESHGATE_TOOLS:-$HOME/.cache/meshgate}

# Debian packages.
need=()
for pkg_cmd in curl:curl openssl:openssl patch:patch chromium:chromium slowhttptest:slowhttptest redis-server:redis-server; do
	command -v "${pkg_cmd#*:}" >/dev/null || need+=("${pkg_cmd%%:*}")
done
if ((${#need[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "test-deps: missing ${need[*]}; run as root or install them" >&2
		exit 1
	fi
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi

# Go tools from pinned module versions.
build_tool() { # name module version
	local dir="$TOOLS/$1-$3"
	if [[ -x "$dir/$1" ]]; then return; fi
	echo "test-deps: building $1 $3 into $dir"
	mkdir -p "$dir"
	GOBIN="$dir" go install "$2@$3"
	# go install names the binary after the package folder; keep it as NAME.
	if [[ ! -e "$dir/$1" ]]; then mv "$dir/${2##*/}" "$dir/$1"; fi
}
build_tool h2spec github.com/summerwind/h2spec/cmd/h2spec v2.2.1+incompatible
build_tool toxiproxy-server github.com/Shopify/toxiproxy/v2/cmd/server v2.5.0
build_tool controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen v0.23.0
build_tool pebble github.com/letsencrypt/pebble/v2/cmd/pebble v2.10.1 # ACME test server for test/e2e/acme_test.go
bash "$(dirname "${BASH_SOURCE[0]}")/k8s-tools.sh" # etcd, kube-apiserver, kube-controller-manager, kubectl for internal/k8stest
