package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// faultYAML is a FaultInjection in namespace default with spec indented
// under spec.
func faultYAML(name, spec string) string {
	return fmt.Sprintf(`---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: FaultInjection
metadata: {name: %s, namespace: default}
spec:
%s
`, name, indent(spec, 2))
}

// faultRef is an ExtensionRef filter list naming FaultInjection name.
func faultRef(name string) string {
	return `[{type: ExtensionRef, extensionRef: {group: gateway.meshgate.dev, kind: FaultInjection, name: ` + name + `}}]`
}

// TestTrafficFaultInjection covers FaultInjection through ExtensionRef
// filters: an abort of 100% answers its status without forwarding; an
// abort of 30% hits a share within 5 sigma of the binomial expectation; a
// delay limited to a tester's header holds that tester's requests at least
// the delay and still forwards them, and leaves other requests alone; a
// gRPC abort answers the configured gRPC status to a grpc-go client.
func TestTrafficFaultInjection(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	be := newBackend(t, "app")
	grpcPort := startInteropServer(t)
	const delay = 400 * time.Millisecond
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) + be.yaml() + backendYAML("interop", grpcPort) +
		faultYAML("abort-all", `abort: {httpStatus: 418, percentage: "100"}`) +
		faultYAML("abort-some", `abort: {httpStatus: 503, percentage: "30"}`) +
		faultYAML("tester-delay", `headers: [{name: x-fault-tester, value: "yes"}]
delay: {duration: `+delay.String()+`, percentage: "100"}`) +
		// An hour: a request it wrongly held would never come back
		// within the client's timeout.
		faultYAML("tester-delay-long", `headers: [{name: x-fault-tester, value: "yes"}]
delay: {duration: 1h, percentage: "100"}`) +
		faultYAML("grpc-abort", `abort: {grpcStatus: ResourceExhausted, percentage: "100"}`) + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: faults, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["fault.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /abort-all}}]
    filters: ` + faultRef("abort-all") + `
    backendRefs: [` + ref("app") + `]
  - matches: [{path: {type: PathPrefix, value: /abort-some}}]
    filters: ` + faultRef("abort-some") + `
    backendRefs: [` + ref("app") + `]
  - matches: [{path: {type: PathPrefix, value: /delay-long}}]
    filters: ` + faultRef("tester-delay-long") + `
    backendRefs: [` + ref("app") + `]
  - matches: [{path: {type: PathPrefix, value: /delay}}]
    filters: ` + faultRef("tester-delay") + `
    backendRefs: [` + ref("app") + `]
  - matches: [{path: {type: PathPrefix, value: /grpc-as-http}}]
    filters: ` + faultRef("grpc-abort") + `
    backendRefs: [` + ref("app") + `]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc-faults, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["grpc-fault.test"]
  rules:
  - matches: [{method: {service: grpc.testing.TestService, method: EmptyCall}}]
    filters: ` + faultRef("grpc-abort") + `
    backendRefs: [` + ref("interop") + `]
  - backendRefs: [` + ref("interop") + `]
`
	g := startGateway(t, ip, cfg)
	c := newClient()
	defer c.CloseIdleConnections()
	const host = "fault.test"

	t.Run("abort 100%", func(t *testing.T) {
		for i := 0; i < 20; i++ {
			r := do(t, c, request{url: g.url(port, fmt.Sprintf("/abort-all/%d", i)), host: host})
			if r.status != http.StatusTeapot || r.echo != nil {
				t.Fatalf("request %d: %v, want the injected 418", i, r)
			}
		}
		for _, e := range be.requests() {
			if strings.HasPrefix(e.Path, "/abort-all") {
				t.Fatalf("backend saw aborted request %s", e.Path)
			}
		}
	})

	t.Run("abort 30%", func(t *testing.T) {
		const n = 1000
		got := sendConcurrent(t, g.url(port, "/abort-some"), host, n, 8)
		aborted := got["status 503"]
		if aborted+got["app"] != n {
			t.Fatalf("%v, want only 503s and the backend's 200s", got)
		}
		ok, msg := within5Sigma(aborted, n, 0.3)
		t.Logf("aborted: %s", msg)
		if !ok {
			t.Fatalf("aborted share: %s", msg)
		}
		forwarded := 0
		for _, e := range be.requests() {
			if e.Path == "/abort-some" {
				forwarded++
			}
		}
		if forwarded != got["app"] {
			t.Fatalf("backend saw %d requests, clients got %d answers from it: aborted requests must not be forwarded", forwarded, got["app"])
		}
	})

	t.Run("delay only with the tester header", func(t *testing.T) {
		tester := http.Header{"X-Fault-Tester": {"yes"}}
		for i := 0; i < 3; i++ {
			path := fmt.Sprintf("/delay/tester-%d", i)
			start := time.Now()
			r := do(t, c, request{url: g.url(port, path), host: host, header: tester})
			took := time.Since(start)
			if r.status != http.StatusOK || r.backend() != "app" || r.echo.Path != path {
				t.Fatalf("tester request: %v, want the backend's echo of %s", r, path)
			}
			// A lower bound: the delay was applied.
			if took < delay {
				t.Fatalf("tester request answered after %v, before the injected delay of %v", took, delay)
			}
		}
		// Without the header (or with another value), requests to a rule
		// whose fault holds the tester's requests for an hour come back:
		// the delay is not applied to them.
		for i, h := range []http.Header{nil, {"X-Fault-Tester": {"no"}}, {"X-Other": {"yes"}}} {
			path := fmt.Sprintf("/delay-long/other-%d", i)
			r := do(t, c, request{url: g.url(port, path), host: host, header: h})
			if r.status != http.StatusOK || r.backend() != "app" || r.echo.Path != path {
				t.Fatalf("request with headers %v: %v, want the backend's echo of %s", h, r, path)
			}
		}
	})

	t.Run("gRPC abort answers the gRPC status", func(t *testing.T) {
		cc, err := grpc.NewClient(g.addr(port), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("grpc-fault.test"))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		tc := testgrpc.NewTestServiceClient(cc)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := 0; i < 5; i++ {
			_, err := tc.EmptyCall(ctx, &testgrpc.Empty{})
			if got := status.Code(err); got != codes.ResourceExhausted {
				t.Fatalf("EmptyCall %d: %v (%v), want ResourceExhausted", i, got, err)
			}
		}
		// The other method has no fault.
		if _, err := tc.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 10}); err != nil {
			t.Fatalf("UnaryCall on the rule without a fault: %v", err)
		}
		// A plain HTTP request to a rule whose fault names only a gRPC
		// status gets that status's HTTP twin (RESOURCE_EXHAUSTED: 429).
		r := do(t, c, request{url: g.url(port, "/grpc-as-http"), host: host})
		if r.status != http.StatusTooManyRequests || r.echo != nil {
			t.Fatalf("HTTP request to a gRPC-only abort: %v, want 429", r)
		}
	})
}
