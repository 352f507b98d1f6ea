package server

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

func TestConnInfoClientIdentity(t *testing.T) {
	complete := &tls.ConnectionState{HandshakeComplete: true}
	for _, c := range []struct {
		name      string
		ci        *ConnInfo
		want      string
		wantCalls int64 // after two calls
	}{
		{"no ConnInfo", nil, "", 0},
		{"cleartext", &ConnInfo{}, "", 0},
		{"TLS connection: once", newTLSConnInfo(complete), "id", 1},
		{"no memo (per request)", &ConnInfo{TLS: complete}, "id", 2},
		{"early data: not cached", newTLSConnInfo(&tls.ConnectionState{}), "id", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			var calls atomic.Int64
			f := func(*tls.ConnectionState) string { calls.Add(1); return "id" }
			for range 2 {
				if got := c.ci.ClientIdentity(f); got != c.want {
					t.Errorf("got %q, want %q", got, c.want)
				}
			}
			if calls.Load() != c.wantCalls {
				t.Errorf("computed %d times, want %d", calls.Load(), c.wantCalls)
			}
		})
	}
}

// TestClientIdentityPerConnection: the requests of one HTTP/1.1 or HTTP/2
// connection share one computation.
func TestClientIdentityPerConnection(t *testing.T) {
	t.Parallel()
	cert, pool := confCert(t)
	var calls atomic.Int64
	compute := func(*tls.ConnectionState) string { calls.Add(1); return "id" }
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, ConnInfoFrom(r.Context()).ClientIdentity(compute))
	})
	l, err := Listen("127.0.0.1:0", h, Limits{}, confLogger())
	if err != nil {
		t.Fatal(err)
	}
	l.SetTLS(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	l.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		l.Shutdown(ctx)
	})
	clientTLS := &tls.Config{RootCAs: pool, ServerName: "conformance.test"}
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"http/1.1", &http.Transport{TLSClientConfig: clientTLS, MaxConnsPerHost: 1}},
		{"h2", &http2.Transport{TLSClientConfig: clientTLS}},
	} {
		calls.Store(0)
		client := &http.Client{Transport: c.rt, Timeout: 5 * time.Second}
		for range 3 {
			resp, err := client.Get("https://" + l.Addr().String() + "/")
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "id" {
				t.Errorf("%s: body %q", c.name, b)
			}
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("%s: identity computed %d times for 3 requests on one connection, want 1", c.name, n)
		}
	}
}
