package dashboard

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/obs"
)

const (
	listenerAddr = "0.0.0.0:8080"
	storefront   = "shop/storefront"
	apiRoute     = "shop/api"
	v1           = "service/shop/storefront-v1:8080"
	v2           = "service/shop/storefront-v2:8080"
	apiBackend   = "service/shop/api:9000"
)

// testConfig is one HTTP listener with two routes: storefront split 90/10
// over two backends, and api with one backend of three endpoints.
func testConfig() *ir.Config {
	host := &ir.ListenerHost{
		Name:     "infra/edge/http",
		Hostname: "*.example.com",
		Routes: []*ir.Route{
			{
				Name:      storefront,
				Hostnames: []string{"shop.example.com"},
				Match:     ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/"}},
				Backends: []ir.WeightedBackend{
					{Weight: 90, Target: &ir.Backend{Name: v1, Protocol: ir.BackendHTTP1, Endpoints: []ir.Endpoint{{Address: "10.0.1.11:8080"}, {Address: "10.0.1.12:8080"}}}},
					{Weight: 10, Target: &ir.Backend{Name: v2, Protocol: ir.BackendHTTP1, Endpoints: []ir.Endpoint{{Address: "10.0.1.21:8080"}}}},
				},
			},
			{
				Name:      apiRoute,
				Hostnames: []string{"api.example.com"},
				Match:     ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/v1"}, Method: "GET", Headers: []ir.StringMatch{{Type: ir.MatchExact, Name: "x-api-version", Value: "1"}}},
				Filters:   []ir.Filter{{Type: ir.FilterResponseHeaderModifier, ResponseHeaderModifier: &ir.HeaderModifier{Set: []ir.Header{{Name: "cache-control", Value: "no-store"}}}}},
				Backends: []ir.WeightedBackend{
					{Weight: 1, Target: &ir.Backend{Name: apiBackend, Protocol: ir.BackendH2C, Endpoints: []ir.Endpoint{{Address: "10.0.2.11:9000"}, {Address: "10.0.2.12:9000"}, {Address: "10.0.2.13:9000"}}}},
				},
			},
			{
				Name:       apiRoute,
				MatchIndex: 1,
				Hostnames:  []string{"api.example.com"},
				Match:      ir.Match{Path: ir.PathMatch{Type: ir.PathExact, Value: "/healthz"}},
				Backends: []ir.WeightedBackend{
					{Weight: 1, Target: &ir.Backend{Name: apiBackend, Protocol: ir.BackendH2C, Endpoints: []ir.Endpoint{{Address: "10.0.2.11:9000"}, {Address: "10.0.2.12:9000"}, {Address: "10.0.2.13:9000"}}}},
				},
			},
		},
	}
	return &ir.Config{Listeners: []*ir.Listener{{Name: listenerAddr, Address: listenerAddr, Protocol: ir.ProtocolHTTP, Hosts: []*ir.ListenerHost{host}}}}
}

// selfSigned returns a certificate and key in PEM.
func selfSigned(t testing.TB, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "example.com"},
		DNSNames:     []string{"example.com", "*.example.com"},
		NotBefore:    notAfter.Add(-365 * 24 * time.Hour),
		NotAfter:     notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// req is a finished request record.
func req(route, backend, endpoint string, status int, latency time.Duration) *obs.Request {
	r := &obs.Request{}
	r.Reset()
	r.Listener = listenerAddr
	r.Method, r.Path = "GET", "/"
	r.Status, r.Duration = status, latency
	if route != "" {
		r.Route, r.Rule, r.Gateway = route, 0, "infra/edge/http"
	}
	r.Backend, r.Endpoint = backend, endpoint
	return r
}

// find helpers over a snapshot.
func findRoute(t testing.TB, s *Snapshot, name string) *Route {
	t.Helper()
	for _, l := range s.Listeners {
		for _, r := range l.Routes {
			if r.Name == name {
				return r
			}
		}
	}
	t.Fatalf("route %s not in snapshot", name)
	return nil
}

func findBackend(t testing.TB, r *Route, name string) *Backend {
	t.Helper()
	for _, b := range r.Backends {
		if b.Name == name {
			return b
		}
	}
	t.Fatalf("backend %s not in route %s", name, r.Name)
	return nil
}

func findEndpoint(t testing.TB, b *Backend, addr string) *Endpoint {
	t.Helper()
	for _, e := range b.Endpoints {
		if e.Address == addr {
			return e
		}
	}
	t.Fatalf("endpoint %s not in backend %s", addr, b.Name)
	return nil
}
