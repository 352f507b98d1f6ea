#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries the integration tests
# (internal/k8stest) need, from Go modules only, and caches them outside the
# clone, keyed by version:
#   $TOOLS/kube-apiserver-v1.36.3/kube-apiserver
#   $TOOLS/kube-controller-manager-v1.36.3/kube-controller-manager
#   $TOOLS/kubectl-v1.36.3/kubectl
#   $TOOLS/etcd-v3.6.16/etcd
# A binary already in the cache is not rebuilt. Each binary is built under a
# temporary name and renamed into place, so an interrupted build never leaves a
# broken cached binary. A fresh machine needs about 10 minutes on 2 cores.
# See docs: /work/shared/docs/conformance.md §0a.
set -euo pipefail
TOOLS=${MESHGATE_TOOLS:-$HOME/.cache/meshgate}
K8S_VERSION=1.36.3
STAGING_VERSION=v0.36.3
ETCD_VERSION=v3.6.16
BUILD_FLAGS=(-trimpath "-ldflags=-s -w")

log() { echo "k8s-tools: $*"; }

have() { [[ -x "$TOOLS/$1-$2/$1" ]]; }

# install_bin NAME VERSION BUILT_FILE: moves a freshly built binary into the cache atomically.
install_bin() {
	local dir="$TOOLS/$1-$2"
	mkdir -p "$dir"
	local tmp="$dir/.$1.tmp.$$"
	cp "$3" "$tmp"
	chmod 0755 "$tmp"
	mv -f "$tmp" "$dir/$1"
}

# go_build NAME VERSION PACKAGE: builds PACKAGE in the current module into the cache.
go_build() {
	local name=$1 version=$2 pkg=$3 start out
	if have "$name" "$version"; then
		log "$name $version cached in $TOOLS/$name-$version"
		return
	fi
	log "building $name $version ($pkg)"
	start=$SECONDS
	out="$work/$name.build"
	rm -f "$out"
	go build "${BUILD_FLAGS[@]}" -o "$out" "$pkg"
	install_bin "$name" "$version" "$out"
	rm -f "$out"
	log "built $name $version in $((SECONDS - start))s -> $TOOLS/$name-$version/$name"
}

total_start=$SECONDS
mkdir -p "$TOOLS"
work=$(mktemp -d "${TMPDIR:-/tmp}/meshgate-k8s-tools.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The scratch modules must not see the project's go.work or toolchain settings.
export GOWORK=off GOFLAGS=-mod=mod

# --- etcd (go install refuses: the module has replace directives) ---
if ! have etcd "$ETCD_VERSION"; then
	mod="$work/etcd"
	mkdir -p "$mod"
	cd "$mod"
	printf 'module etcdbuild\n\ngo 1.26\n' >go.mod
	go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
	go_build etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3
else
	log "etcd $ETCD_VERSION cached in $TOOLS/etcd-$ETCD_VERSION"
fi

# --- kube-apiserver, kube-controller-manager, kubectl from k8s.io/kubernetes ---
if ! have kube-apiserver "v$K8S_VERSION" || ! have kube-controller-manager "v$K8S_VERSION" || ! have kubectl "v$K8S_VERSION"; then
	mod="$work/k8s"
	mkdir -p "$mod"
	cd "$mod"
	log "preparing wrapper module for k8s.io/kubernetes v$K8S_VERSION"
	gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
	if [[ -z "$gomod" || ! -f "$gomod" ]]; then
		echo "k8s-tools: cannot download k8s.io/kubernetes@v$K8S_VERSION" >&2
		exit 1
	fi
	{
		echo "module k8sbuild"
		echo
		echo "go 1.26"
		echo
		echo "require k8s.io/kubernetes v$K8S_VERSION"
		echo
		echo "replace ("
		awk -v v="$STAGING_VERSION" '/=> .\/staging\/src\//{print "\t"$1" => "$1" "v}' "$gomod" | sort -u
		echo ")"
	} >go.mod
	cat >tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
	GOFLAGS=-mod=mod go mod tidy
	go_build kube-apiserver "v$K8S_VERSION" k8s.io/kubernetes/cmd/kube-apiserver
	go_build kube-controller-manager "v$K8S_VERSION" k8s.io/kubernetes/cmd/kube-controller-manager
	go_build kubectl "v$K8S_VERSION" k8s.io/kubernetes/cmd/kubectl
else
	log "kube-apiserver, kube-controller-manager, kubectl v$K8S_VERSION cached in $TOOLS"
fi

log "done in $((SECONDS - total_start))s"
