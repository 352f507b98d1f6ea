# Meshgate. Two commands matter: `make run` and `make test`.
SHELL := /bin/bash
# go.mod pins the toolchain; machines whose Go is older fetch it through the
# module proxy (GOTOOLCHAIN=local would silently build with the old one).
export GOTOOLCHAIN := go1.26.10
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Tools the tests use are built once per machine, outside the clone, keyed by version.
export MESHGATE_TOOLS ?= $(HOME)/.cache/meshgate

.PHONY: all build run test test-deps vet vulncheck xhttp2-sync fuzz bench bench-k8s soak clean generate conformance

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/gateway ./cmd/gateway
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/demo-backend ./cmd/demo-backend

## run: build and start the gateway on examples/demo with three demo backends.
run: build
	@bash examples/demo/run.sh

## test: install what the tests need, build, vet, check for known vulnerabilities, run every test.
test: test-deps build vet
	@$(MAKE) --no-print-directory vulncheck
	GO=$(GO) bash scripts/xhttp2.sh check
	$(GO) test -count=1 -race -timeout 25m ./...
	# Allocation counts are only meaningful without the race detector.
	$(GO) test -count=1 -run 'Alloc' ./metrics ./upstream ./ratelimit ./router ./filters ./dashboard ./dataplane
	cd deploy/test && $(GO) test -count=1 ./...
	CONFORMANCE_SHORT=1 CONFORMANCE_NO_BUILD=1 bash scripts/conformance.sh
	@$(MAKE) --no-print-directory fuzz FUZZTIME=10s

test-deps:
	@bash scripts/test-deps.sh

vet:
	$(GO) vet ./...

## vulncheck: govulncheck ./... against an offline vulnerability database (cached in $(MESHGATE_TOOLS)).
vulncheck:
	@GO=$(GO) bash scripts/vulncheck.sh ./...

## xhttp2-sync: rewrite internal/xhttp2 (the forked HTTP/2 server) from the x/net version in go.mod plus its fork.patch; after any x/net bump.
xhttp2-sync:
	GO=$(GO) bash scripts/xhttp2.sh sync

# Each fuzz target for a short, bounded time (its seed corpus also runs in `go test`).
FUZZTIME ?= 30s
# Minimizing a new input can outlast a short run; keep it short, the input
# is saved either way. scripts/fuzz.sh reruns a target only for Go 1.26's
# coordinator race (a bare "context deadline exceeded", no input written).
FUZZMINIMIZE ?= 2s
# package:target, fuzzed one after the other.
FUZZ_TARGETS = ./config:FuzzParse \
	./translate:FuzzTranslate \
	./router:FuzzMatch \
	./server:FuzzParseRequest \
	./grpcweb:FuzzDecodeText \
	./l4:FuzzParseClientHello \
	./dataplane:FuzzNormalizePath \
	./grpcweb:FuzzEncodeText \
	./server:FuzzH1Front \
	./router:FuzzRequestHost \
	./server:FuzzReadProxyHeader \
	./proxy:FuzzReadResponseHead \
	./translate:FuzzValidHostname \
	./internal/h1head:FuzzLineReader \
	./internal/h1head:FuzzValidValue \
	./server:FuzzRequestHeadMemo \
	./proxy:FuzzResponseHeadMemo
fuzz:
	@for pt in $(FUZZ_TARGETS); do \
		echo "fuzz $${pt}"; \
		GO=$(GO) bash scripts/fuzz.sh "$${pt%%:*}" "$${pt##*:}" $(FUZZTIME) $(FUZZMINIMIZE) || exit 1; \
	done

## generate: regenerate deepcopy functions and the CRDs in api/crds from api/v1alpha1 (controller-gen).
generate:
	@bash scripts/generate.sh

## bench: Meshgate vs nginx, haproxy and Caddy in one run: throughput, constant-rate latency, memory, gRPC/WebSocket, policy overhead (writes bench/results/DATE*.md).
bench: build
	bash bench/run.sh
	@if [[ "$${BENCH_SKIP_POLICY_OVERHEAD:-0}" != 1 ]]; then bash bench/policy-overhead.sh; fi

## bench-k8s: --kubernetes against a real kube-apiserver: route change latency, 1,000/5,000 HTTPRoutes (writes bench/results/DATE-k8s.md).
bench-k8s:
	bash bench/k8s.sh

## soak: mixed traffic with reloads and upstream faults for SOAK_DURATION (30m), sampling RSS, goroutines and fds.
soak: build
	bash scripts/soak.sh

## conformance: Gateway API v1.6.3 conformance suite (GATEWAY-HTTP, -GRPC, -TLS) against bin/gateway with a local control plane; writes conformance/reports/v1.6.3-meshgate-report.yaml (CONFORMANCE_SHORT=1: a few core tests, no report).
conformance: build
	@CONFORMANCE_NO_BUILD=1 VERSION=$(VERSION) bash scripts/conformance.sh

clean:
	rm -rf bin
