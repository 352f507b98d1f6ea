package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/meshgate/meshgate/proxy"
)

// interopFailure is what the interop cases' fatal log calls panic with, so
// a failing case fails its subtest instead of exiting the test binary.
type interopFailure string

// panicLogger is a grpclog.LoggerV2 that turns Fatal into a panic and drops
// everything else (the gateway's own logs say what happened).
type panicLogger struct{}

func (panicLogger) Info(...any)                    {}
func (panicLogger) Infoln(...any)                  {}
func (panicLogger) Infof(string, ...any)           {}
func (panicLogger) Warning(...any)                 {}
func (panicLogger) Warningln(...any)               {}
func (panicLogger) Warningf(string, ...any)        {}
func (panicLogger) Error(...any)                   {}
func (panicLogger) Errorln(...any)                 {}
func (panicLogger) Errorf(string, ...any)          {}
func (panicLogger) V(int) bool                     { return false }
func (panicLogger) Fatal(a ...any)                 { panic(interopFailure(fmt.Sprint(a...))) }
func (panicLogger) Fatalln(a ...any)               { panic(interopFailure(fmt.Sprint(a...))) }
func (panicLogger) Fatalf(f string, a ...any)      { panic(interopFailure(fmt.Sprintf(f, a...))) }
func init()                                        { grpclog.SetLoggerV2(panicLogger{}) }
func (panicLogger) String() string                 { return "panicLogger" }
func (panicLogger) Printf(format string, a ...any) {}

// runInterop runs one interop case, turning its fatal log into t.Fatal.
func runInterop(t *testing.T, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			if msg, ok := r.(interopFailure); ok {
				t.Fatalf("interop case failed: %s", msg)
			}
			panic(r)
		}
	}()
	f()
}

// startInteropServer runs the grpc-go interop test service, cleartext h2c,
// on a loopback port.
func startInteropServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, interop.NewTestServer())
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().(*net.TCPAddr).Port
}

// grpcRoute is a GRPCRoute on Gateway gw sending everything for hostnames
// to one Backend.
func grpcRoute(name string, hostnames []string, backendName string) string {
	hs := ""
	if len(hostnames) > 0 {
		hs = "  hostnames: [" + quoteAll(hostnames) + "]\n"
	}
	return fmt.Sprintf(`---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: %s
  namespace: default
spec:
  parentRefs:
  - name: gw
%s  rules:
  - backendRefs:
    - %s
`, name, hs, ref(backendName))
}

// TestGRPCInterop runs the 14 standard grpc-go interop cases through the
// gateway, over cleartext HTTP/2 (h2c) and over TLS, to an h2c backend
// reached through a GRPCRoute.
func TestGRPCInterop(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	pTLS, pPlain := freePort(t, ip), freePort(t, ip)
	cert := newTestCert(t, "grpc.test")
	port := startInteropServer(t)
	cfg := gatewayYAML(ip,
		listener{name: "https", port: pTLS, protocol: "HTTPS", hostname: "grpc.test", certs: []string{"grpc-tls"}},
		listener{name: "http", port: pPlain},
	) + cert.secretYAML("grpc-tls") + backendYAML("interop", port) + grpcRoute("interop", nil, "interop")
	g := startGateway(t, ip, cfg)

	roots := x509.NewCertPool()
	roots.AddCert(cert.cert)
	transports := []struct {
		name string
		addr string
		opt  grpc.DialOption
	}{
		{"h2c", g.addr(pPlain), grpc.WithTransportCredentials(insecure.NewCredentials())},
		{"tls", g.addr(pTLS), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{ServerName: "grpc.test", RootCAs: roots}))},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			cc, err := grpc.NewClient(tr.addr, tr.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			tc := testgrpc.NewTestServiceClient(cc)
			cases := []struct {
				name string
				run  func(ctx context.Context)
			}{
				{"empty_unary", func(ctx context.Context) { interop.DoEmptyUnaryCall(ctx, tc) }},
				{"large_unary", func(ctx context.Context) { interop.DoLargeUnaryCall(ctx, tc) }},
				{"client_streaming", func(ctx context.Context) { interop.DoClientStreaming(ctx, tc) }},
				{"server_streaming", func(ctx context.Context) { interop.DoServerStreaming(ctx, tc) }},
				{"ping_pong", func(ctx context.Context) { interop.DoPingPong(ctx, tc) }},
				{"empty_stream", func(ctx context.Context) { interop.DoEmptyStream(ctx, tc) }},
				{"timeout_on_sleeping_server", func(ctx context.Context) { interop.DoTimeoutOnSleepingServer(ctx, tc) }},
				{"cancel_after_begin", func(ctx context.Context) { interop.DoCancelAfterBegin(ctx, tc) }},
				{"cancel_after_first_response", func(ctx context.Context) { interop.DoCancelAfterFirstResponse(ctx, tc) }},
				{"status_code_and_message", func(ctx context.Context) { interop.DoStatusCodeAndMessage(ctx, tc) }},
				{"special_status_message", func(ctx context.Context) { interop.DoSpecialStatusMessage(ctx, tc) }},
				{"custom_metadata", func(ctx context.Context) { interop.DoCustomMetadata(ctx, tc) }},
				{"unimplemented_method", func(ctx context.Context) { interop.DoUnimplementedMethod(ctx, cc) }},
				{"unimplemented_service", func(ctx context.Context) {
					interop.DoUnimplementedService(ctx, testgrpc.NewUnimplementedServiceClient(cc))
				}},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					runInterop(t, func() { c.run(ctx) })
				})
			}
		})
	}
}

// TestGRPCGatewayErrors checks that errors the gateway makes on gRPC calls
// are gRPC statuses: no route is UNIMPLEMENTED, an unreachable backend
// UNAVAILABLE, and an expired grpc-timeout DEADLINE_EXCEEDED; and that a
// GRPCRoute method match routes by service and method.
func TestGRPCGatewayErrors(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	port := startInteropServer(t)
	dead := freePort(t, "127.0.0.1")
	cfg := gatewayYAML(ip, listener{name: "http", port: p}) +
		backendYAML("interop", port) + backendYAML("dead", dead) +
		grpcRoute("dead", []string{"dead.test"}, "dead") + fmt.Sprintf(`---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: by-method
  namespace: default
spec:
  parentRefs:
  - name: gw
  hostnames: ["live.test"]
  rules:
  - matches:
    - method: {service: grpc.testing.TestService, method: EmptyCall}
    - method: {type: RegularExpression, service: "grpc\\.testing\\.Test.*", method: "Unary.*"}
    backendRefs:
    - %s
`, ref("interop"))
	g := startGateway(t, ip, cfg)

	call := func(t *testing.T, authority string, f func(ctx context.Context, tc testgrpc.TestServiceClient) error) error {
		t.Helper()
		cc, err := grpc.NewClient(g.addr(p), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return f(ctx, testgrpc.NewTestServiceClient(cc))
	}
	empty := func(ctx context.Context, tc testgrpc.TestServiceClient) error {
		_, err := tc.EmptyCall(ctx, &testgrpc.Empty{})
		return err
	}
	unary := func(ctx context.Context, tc testgrpc.TestServiceClient) error {
		_, err := tc.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 10})
		return err
	}
	sleepy := func(ctx context.Context, tc testgrpc.TestServiceClient) error {
		// The server sleeps for the response's interval; the client's
		// 200 ms deadline reaches the gateway as grpc-timeout.
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		st, err := tc.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
			ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1, IntervalUs: 5_000_000}},
		})
		if err != nil {
			return err
		}
		_, err = st.Recv()
		return err
	}
	tests := []struct {
		name      string
		authority string
		f         func(ctx context.Context, tc testgrpc.TestServiceClient) error
		want      codes.Code
	}{
		{"exact method routed", "live.test", empty, codes.OK},
		{"regex method routed", "live.test", unary, codes.OK},
		{"method without a route is UNIMPLEMENTED", "live.test", sleepy, codes.Unimplemented},
		{"host without a route is UNIMPLEMENTED", "nothing.test", empty, codes.Unimplemented},
		{"unreachable backend is UNAVAILABLE", "dead.test", empty, codes.Unavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := call(t, tc.authority, tc.f)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("code %v (%v), want %v", got, err, tc.want)
			}
			if tc.want == codes.Unimplemented && !strings.Contains(status.Convert(err).Message(), "no_route") {
				t.Errorf("message %q does not say no_route", status.Convert(err).Message())
			}
		})
	}
	t.Run("malformed gRPC frames get a gRPC error and hurt nobody else", func(t *testing.T) {
		tr := h2cTransport(t)
		for _, body := range [][]byte{
			{0, 0, 0, 3, 0xE8, 1, 2, 3},             // claims 1000 bytes, has 3
			{9, 0, 0, 0, 1, 0},                      // bad compression flag
			{0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff}, // not a protobuf Empty
		} {
			req, _ := http.NewRequest("POST", "http://"+g.addr(p)+"/grpc.testing.TestService/EmptyCall", bytes.NewReader(body))
			req.Host = "live.test"
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("Te", "trailers")
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			st := resp.Trailer.Get("Grpc-Status")
			if st == "" {
				st = resp.Header.Get("Grpc-Status")
			}
			if resp.StatusCode != http.StatusOK || st == "" || st == "0" {
				t.Errorf("body %x: HTTP %d grpc-status %q, want a gRPC error", body, resp.StatusCode, st)
			}
			if err := call(t, "live.test", empty); err != nil {
				t.Fatalf("a good call after a malformed one: %v", err)
			}
		}
	})

	t.Run("expired grpc-timeout is DEADLINE_EXCEEDED", func(t *testing.T) {
		// A backend that ignores grpc-timeout and stalls: the gateway
		// itself must end the call when the client's deadline passes.
		stall := newH2CBackend(t, "stall")
		stall.setHook(func(w http.ResponseWriter, r *http.Request) bool {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return true
		})
		g.reload(cfg + stall.yaml() + grpcRoute("stall", []string{"stall.test"}, "stall"))
		tr := h2cTransport(t)
		// One empty gRPC message: flag 0, length 0.
		req, _ := http.NewRequest("POST", "http://"+g.addr(p)+"/grpc.testing.TestService/EmptyCall", bytes.NewReader(make([]byte, 5)))
		req.Host = "stall.test"
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		req.Header.Set("Grpc-Timeout", "300m")
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Grpc-Status") != "4" || len(body) != 0 {
			t.Fatalf("got HTTP %d grpc-status %q body %q, want a trailers-only DEADLINE_EXCEEDED (4)", resp.StatusCode, resp.Header.Get("Grpc-Status"), body)
		}
		seen := stall.requests()
		if len(seen) != 1 {
			t.Fatalf("backend saw %d requests, want 1", len(seen))
		}
		d, ok := proxy.GRPCTimeout(seen[0].Header.Get("Grpc-Timeout"))
		if !ok || d <= 0 || d > 300*time.Millisecond {
			t.Errorf("backend saw grpc-timeout %q, want the time left of 300m", seen[0].Header.Get("Grpc-Timeout"))
		}
	})
}
