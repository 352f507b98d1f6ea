package dataplane

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/obs"
)

// seen is what a sink records of each request.
type seen struct{ route, backend, policy, section, reason string }

type chanSink chan seen

func (c chanSink) ObserveRequest(r *obs.Request) {
	c <- seen{r.Route, r.Backend, r.DeniedPolicy, r.DeniedSection, r.Reason}
}

// TestClaimRouting checks claim-based routing with a route-level JWT
// policy: the request is matched again with the claim headers set, a
// client's own copy of them never counts, sections of the same policy run
// once, and the re-matched route's own sections are checked.
func TestClaimRouting(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	token := func(tier string) string {
		s, err := jwt.Signed(signer).Claims(map[string]any{"iss": "https://issuer.test", "sub": "alice", "tier": tier,
			"exp": time.Now().Add(time.Hour).Unix()}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var extCalls atomic.Int64
	authz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		extCalls.Add(1)
		if r.Header.Get("X-Tier") == "" {
			w.WriteHeader(http.StatusForbidden) // the claims are set before extAuth asks
		}
	}))
	defer authz.Close()

	jwtSec := &ir.JWTAuth{Policy: "default/tiers", Providers: []*ir.JWTProvider{{
		Name: "idp", Issuer: "https://issuer.test", Algorithms: []string{"RS256"}, JWKS: jwks,
		ClaimToHeaders: []ir.ClaimToHeader{{Claim: "tier", Header: "x-tier"}},
	}}}
	extSec := &ir.ExtAuth{Policy: "default/tiers", Timeout: 2 * time.Second,
		Backend: &ir.Backend{Name: "authz", Endpoints: []ir.Endpoint{{Address: authz.Listener.Addr().String()}}}}
	tiers := &ir.SecurityPolicy{JWT: jwtSec, ExtAuth: extSec}
	// The gold rule of /vip adds an address check of its own policy.
	vipGold := &ir.SecurityPolicy{JWT: jwtSec, ExtAuth: extSec,
		IPAccess: &ir.IPAccess{Policy: "default/vip-office", Allow: []string{"192.0.2.0/24"}}}

	gold, free := namedBackend(t, "gold"), namedBackend(t, "free")
	goldHeader := []ir.StringMatch{{Type: ir.MatchExact, Name: "x-tier", Value: "gold"}}
	route := func(rule int, prefix string, headers []ir.StringMatch, sec *ir.SecurityPolicy, b *ir.Backend) *ir.Route {
		return &ir.Route{Name: "default/tiers", RuleIndex: rule, Security: sec,
			Match:    ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: prefix}, Headers: headers},
			Backends: []ir.WeightedBackend{{Weight: 1, Target: b}}}
	}
	addr := freeAddr(t)
	l := &ir.Listener{Name: addr, Address: addr, Protocol: ir.ProtocolHTTP,
		Hosts: []*ir.ListenerHost{{Name: "default/gw/http", Routes: []*ir.Route{
			route(0, "/vip", goldHeader, vipGold, gold),
			route(1, "/vip", nil, tiers, free),
			route(2, "/", goldHeader, tiers, gold),
			route(3, "/", nil, tiers, free),
		}}}}
	sink := make(chanSink, 16)
	d := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DrainTimeout: time.Second,
		Observers: obs.Observers{Sinks: []obs.Sink{sink}}})
	defer d.Shutdown(context.Background())
	if _, err := d.Apply(&ir.Config{Listeners: []*ir.Listener{l}}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, path, token, spoof string
		wantStatus               int
		wantBody                 string
		want                     seen
		wantExt                  int64
	}{
		{name: "gold token", path: "/", token: token("gold"), wantStatus: 200, wantBody: "gold",
			want: seen{route: "default/tiers", backend: "backend/default/gold"}, wantExt: 1},
		{name: "free token", path: "/", token: token("free"), wantStatus: 200, wantBody: "free",
			want: seen{route: "default/tiers", backend: "backend/default/free"}, wantExt: 1},
		{name: "no token", path: "/", wantStatus: 401,
			want: seen{route: "default/tiers", policy: "default/tiers", section: "jwt", reason: "auth_invalid_jwt"}},
		{name: "spoofed header without token", path: "/", spoof: "gold", wantStatus: 401,
			want: seen{route: "default/tiers", policy: "default/tiers", section: "jwt", reason: "auth_invalid_jwt"}},
		{name: "free token with spoofed header", path: "/", token: token("free"), spoof: "gold", wantStatus: 200, wantBody: "free",
			want: seen{route: "default/tiers", backend: "backend/default/free"}, wantExt: 1},
		{name: "gold token with spoofed header", path: "/", token: token("gold"), spoof: "free", wantStatus: 200, wantBody: "gold",
			want: seen{route: "default/tiers", backend: "backend/default/gold"}, wantExt: 1},
		{name: "re-matched route's own section denies", path: "/vip", token: token("gold"), wantStatus: 403,
			want: seen{route: "default/tiers", policy: "default/vip-office", section: "ipAccess", reason: "auth_denied_ip"}, wantExt: 1},
		{name: "free tier skips the gold rule's check", path: "/vip", token: token("free"), wantStatus: 200, wantBody: "free",
			want: seen{route: "default/tiers", backend: "backend/default/free"}, wantExt: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			extCalls.Store(0)
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.spoof != "" {
				req.Header.Set("X-Tier", tc.spoof)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := <-sink; got != tc.want {
				t.Errorf("observed %+v, want %+v", got, tc.want)
			}
			if resp.StatusCode != tc.wantStatus || (tc.wantBody != "" && string(body) != tc.wantBody) {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
			if n := extCalls.Load(); n != tc.wantExt {
				t.Errorf("authorization service asked %d times, want %d", n, tc.wantExt)
			}
		})
	}
}

// TestClientClaimHeaderRemovedBeforeMatching: a host whose route copies
// a claim to a header never matches on a client's own copy, even for a
// route without a policy; another listener host keeps its headers.
func TestClientClaimHeaderRemovedBeforeMatching(t *testing.T) {
	gold, free := namedBackend(t, "gold"), namedBackend(t, "free")
	sec := &ir.SecurityPolicy{JWT: &ir.JWTAuth{Policy: "default/tiers", Optional: true, Providers: []*ir.JWTProvider{{
		Name: "idp", Algorithms: []string{"RS256"}, RemoteJWKS: "http://127.0.0.1:1/jwks",
		ClaimToHeaders: []ir.ClaimToHeader{{Claim: "tier", Header: "x-tier"}},
	}}}}
	goldHeader := []ir.StringMatch{{Type: ir.MatchExact, Name: "x-tier", Value: "gold"}}
	mk := func(path string, headers []ir.StringMatch, s *ir.SecurityPolicy, b *ir.Backend) *ir.Route {
		return &ir.Route{Name: "default/" + b.Name, Security: s,
			Match:    ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: path}, Headers: headers},
			Backends: []ir.WeightedBackend{{Weight: 1, Target: b}}}
	}
	addr := freeAddr(t)
	l := &ir.Listener{Name: addr, Address: addr, Protocol: ir.ProtocolHTTP, Hosts: []*ir.ListenerHost{
		{Name: "default/gw/app", Hostname: "app.test", Routes: []*ir.Route{
			mk("/open", goldHeader, nil, gold), mk("/", nil, sec, free), mk("/open", nil, nil, free)}},
		{Name: "default/gw/other", Hostname: "other.test", Routes: []*ir.Route{
			mk("/", goldHeader, nil, gold), mk("/", nil, nil, free)}},
	}}
	d := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DrainTimeout: time.Second})
	defer d.Shutdown(context.Background())
	if _, err := d.Apply(&ir.Config{Listeners: []*ir.Listener{l}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ host, path, want string }{
		{"app.test", "/open", "free"},
		{"APP.test:80", "/open", "free"},
		{"other.test", "/", "gold"},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+tc.path, nil)
		req.Host = tc.host
		req.Header.Set("X-Tier", "gold")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(string(body)); got != tc.want {
			t.Errorf("%s%s with x-tier: gold went to %q, want %q", tc.host, tc.path, got, tc.want)
		}
	}
}
