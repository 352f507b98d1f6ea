#!/usr/bin/env bash
# Runs the Gateway API conformance suite (v1.6.3, GATEWAY-HTTP/-GRPC/-TLS) against
# bin/gateway with a local control plane and the kubelet-less node agent of
# test/conformance. Needs root (private network namespace, pod netns on a
# bridge). See test/conformance/conformance_test.go and
# /work/shared/docs/conformance.md.
#
# Environment:
#   CONFORMANCE_SHORT=1     run a short slice (a few core tests, no report;
#                           a few minutes), for `make test`
#   CONFORMANCE_TESTS=A,B   run only these tests (no report)
#   CONFORMANCE_PROFILES    default GATEWAY-HTTP,GATEWAY-GRPC,GATEWAY-TLS (the suite runs the
#                           GRPCRoute/TLSRoute tests anyway: their features are inferred)
#   CONFORMANCE_ARGS        extra suite flags (e.g. "-debug", "-run-test=X")
#   CONFORMANCE_REPORT      report path (default conformance/reports/v1.6.3-meshgate-report.yaml)
#   CONFORMANCE_NO_BUILD=1  use the existing bin/gateway
#   VERSION                 implementation version in the report (default: git describe, else dev)
#   MESHGATE_CONFORMANCE_DIR / MESHGATE_CONFORMANCE_KEEP=1: where logs go / keep them
#
# Tools are built once per machine into ${MESHGATE_TOOLS:-$HOME/.cache/meshgate}
# (keyed by version): the control plane (scripts/k8s-tools.sh), echo-basic
# from the suite's own module, and coredns (the suite's base manifests run one
# and Setup waits for every pod to be Ready).
set -euo pipefail
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.26.10}
GO=${GO:-go}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${MESHGATE_TOOLS:-$HOME/.cache/meshgate}
export MESHGATE_TOOLS=$TOOLS
ECHO_VERSION=v1.6.3
COREDNS_VERSION=v1.12.2
SHORT_TESTS=HTTPRouteSimpleSameNamespace,HTTPRouteWeight,HTTPRouteInvalidCrossNamespaceParentRef,GatewayClassObservedGenerationBump

log() { echo "conformance: $*"; }

if [[ $(id -u) != 0 ]]; then
	log "needs root (network namespaces for the pods and a private netns for the run)" >&2
	exit 1
fi

bash "$root/scripts/k8s-tools.sh"

# install_bin NAME VERSION FILE: atomically into the tools cache.
install_bin() {
	local dir="$TOOLS/$1-$2"
	mkdir -p "$dir"
	cp "$3" "$dir/.$1.tmp.$$"
	chmod 0755 "$dir/.$1.tmp.$$"
	mv -f "$dir/.$1.tmp.$$" "$dir/$1"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/meshgate-conformance-tools.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [[ ! -x $TOOLS/echo-basic-$ECHO_VERSION/echo-basic ]]; then
	log "building echo-basic $ECHO_VERSION (sigs.k8s.io/gateway-api/conformance/echo-basic)"
	(cd "$root/test/conformance" && GOWORK=off $GO build -trimpath -ldflags='-s -w' -o "$work/echo-basic" sigs.k8s.io/gateway-api/conformance/echo-basic)
	install_bin echo-basic "$ECHO_VERSION" "$work/echo-basic"
fi

if [[ ! -x $TOOLS/coredns-$COREDNS_VERSION/coredns ]]; then
	log "building coredns $COREDNS_VERSION (about 2 minutes)"
	mkdir -p "$work/coredns"
	printf 'module corednsbuild\n\ngo 1.26\n' >"$work/coredns/go.mod"
	(cd "$work/coredns" && export GOWORK=off GOFLAGS=-mod=mod &&
		$GO get "github.com/coredns/coredns@$COREDNS_VERSION" &&
		$GO build -trimpath -ldflags='-s -w' -o coredns github.com/coredns/coredns)
	install_bin coredns "$COREDNS_VERSION" "$work/coredns/coredns"
fi

if [[ ${CONFORMANCE_NO_BUILD:-0} != 1 ]]; then
	make -C "$root" --no-print-directory build
fi

if [[ -z ${VERSION:-} ]]; then
	VERSION=$(cd "$root" && git describe --always --dirty 2>/dev/null || echo dev)
fi
export MESHGATE_VERSION=$VERSION

args=(-conformance-profiles="${CONFORMANCE_PROFILES:-GATEWAY-HTTP,GATEWAY-GRPC,GATEWAY-TLS}")
timeout=60m
if [[ ${CONFORMANCE_SHORT:-0} == 1 ]]; then
	export MESHGATE_CONFORMANCE_TESTS=${CONFORMANCE_TESTS:-$SHORT_TESTS}
	timeout=10m
elif [[ -n ${CONFORMANCE_TESTS:-} ]]; then
	export MESHGATE_CONFORMANCE_TESTS=$CONFORMANCE_TESTS
elif [[ -n ${CONFORMANCE_REPORT:-} ]]; then
	args+=(-report-output="$CONFORMANCE_REPORT")
fi
mkdir -p "$root/conformance/reports"
# shellcheck disable=SC2206 # CONFORMANCE_ARGS is a list of flags
args+=(${CONFORMANCE_ARGS:-})

cd "$root/test/conformance"
log "go test -timeout $timeout -run TestConformance -args ${args[*]}${MESHGATE_CONFORMANCE_TESTS:+ (tests: $MESHGATE_CONFORMANCE_TESTS)}"
GOWORK=off $GO test -count=1 -v -timeout "$timeout" -run '^TestConformance$' . -args "${args[@]}"
