package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/crypto/bcrypt"

	"github.com/meshgate/meshgate/ir"
)

type testKey struct {
	kid string
	key *rsa.PrivateKey
}

func newKey(t testing.TB, kid string) testKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid, k}
}

func (k testKey) jwks(t testing.TB) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.key.PublicKey, KeyID: k.kid, Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (k testKey) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.key}, (&jose.SignerOptions{}).WithHeader("kid", k.kid).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func claims(over map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{"iss": "https://issuer.test", "aud": "web", "sub": "alice", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(), "tenant": "acme", "groups": []string{"dev", "ops"}}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestJWT(t *testing.T) {
	good, other := newKey(t, "k1"), newKey(t, "k1")
	p := &ir.JWTProvider{Name: "corp", Issuer: "https://issuer.test", Audiences: []string{"web"}, JWKS: good.jwks(t),
		ClaimToHeaders: []ir.ClaimToHeader{{Claim: "tenant", Header: "x-tenant"}, {Claim: "groups", Header: "x-groups"}}}
	j, err := NewJWT(&ir.JWTAuth{Policy: "default/p", Providers: []*ir.JWTProvider{p}, Rules: []ir.ClaimRule{{Claim: "groups", Values: []string{"ops"}}}})
	if err != nil {
		t.Fatal(err)
	}
	valid := good.sign(t, claims(nil))
	parts := strings.Split(valid, ".")
	// alg none: the header says none, no signature.
	none := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	// Tampered: the payload changed, signature kept.
	tampered := parts[0] + "." + b64([]byte(`{"iss":"https://issuer.test","aud":"web","sub":"admin","exp":9999999999,"groups":["ops"]}`)) + "." + parts[2]
	// HS256 signed with the RSA public key as the HMAC secret (key confusion).
	pub, _ := x509.MarshalPKIXPublicKey(&good.key.PublicKey)
	hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pub}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	hsTok, _ := jwt.Signed(hs).Claims(claims(nil)).Serialize()

	for _, tc := range []struct {
		name   string
		header string
		status int
		reason string
	}{
		{"good", "Bearer " + valid, 0, ""},
		{"missing", "", 401, "missing token"},
		{"not bearer", "Basic abc", 401, "missing token"},
		{"expired", "Bearer " + good.sign(t, claims(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})), 401, "token expired"},
		{"not yet valid", "Bearer " + good.sign(t, claims(map[string]any{"nbf": time.Now().Add(time.Hour).Unix()})), 401, "token not valid yet"},
		{"wrong audience", "Bearer " + good.sign(t, claims(map[string]any{"aud": "other"})), 401, "wrong audience"},
		{"wrong issuer", "Bearer " + good.sign(t, claims(map[string]any{"iss": "https://evil.test"})), 401, "wrong issuer"},
		{"wrong key", "Bearer " + other.sign(t, claims(nil)), 401, "signature does not verify"},
		{"alg none", "Bearer " + none, 401, "malformed token or algorithm not accepted"},
		{"tampered", "Bearer " + tampered, 401, "signature does not verify"},
		{"HS256 with the public key", "Bearer " + hsTok, 401, "malformed token or algorithm not accepted"},
		{"garbage", "Bearer a.b.c", 401, "malformed token or algorithm not accepted"},
		{"rule fails", "Bearer " + good.sign(t, claims(map[string]any{"groups": []string{"dev"}})), 403, "claim groups does not satisfy the policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"X-Tenant": {"spoofed"}}
			if tc.header != "" {
				h.Set("Authorization", tc.header)
			}
			c, e := j.Verify(context.Background(), h)
			if tc.status == 0 {
				if e != nil {
					t.Fatalf("refused: %v", e)
				}
				if c["sub"] != "alice" || h.Get("X-Tenant") != "acme" || h.Get("X-Groups") != "dev,ops" {
					t.Fatalf("claims %v, headers %v", c, h)
				}
				return
			}
			if e == nil || e.Status != tc.status || e.Reason != tc.reason {
				t.Fatalf("got %+v, want %d %q", e, tc.status, tc.reason)
			}
			if h.Get("X-Tenant") != "" {
				t.Fatalf("client's X-Tenant kept on a refused request")
			}
			if strings.Contains(e.Challenge(), tc.header) && tc.header != "" {
				t.Fatalf("challenge leaks the token")
			}
		})
	}
}

func TestJWTOptionalAndSources(t *testing.T) {
	k := newKey(t, "k1")
	j, err := NewJWT(&ir.JWTAuth{Optional: true, Providers: []*ir.JWTProvider{
		{Name: "cookie", JWKS: k.jwks(t), Cookie: "session"},
		{Name: "hdr", JWKS: k.jwks(t), Header: "X-Token", Prefix: "Token "},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, e := j.Verify(context.Background(), http.Header{}); e != nil {
		t.Fatalf("optional without token: %v", e)
	}
	tok := k.sign(t, claims(nil))
	if _, e := j.Verify(context.Background(), http.Header{"Cookie": {"session=" + tok}}); e != nil {
		t.Fatalf("cookie: %v", e)
	}
	if _, e := j.Verify(context.Background(), http.Header{"X-Token": {"Token " + tok}}); e != nil {
		t.Fatalf("header: %v", e)
	}
	if _, e := j.Verify(context.Background(), http.Header{"X-Token": {"Token x.y.z"}}); e == nil || e.Status != 401 {
		t.Fatalf("an invalid token must be refused even when optional: %v", e)
	}
}

func TestParseJWKSRefusesSymmetric(t *testing.T) {
	if _, err := ParseJWKS([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)); err == nil {
		t.Fatal("symmetric key accepted")
	}
	if _, err := NewJWT(&ir.JWTAuth{Providers: []*ir.JWTProvider{{Name: "p", Algorithms: []string{"HS256"}, RemoteJWKS: "http://x"}}}); err == nil {
		t.Fatal("HS256 accepted")
	}
	if _, err := NewJWT(&ir.JWTAuth{Providers: []*ir.JWTProvider{{Name: "p", Algorithms: []string{"none"}, RemoteJWKS: "http://x"}}}); err == nil {
		t.Fatal("none accepted")
	}
}

// TestRemoteJWKSRotation: a token signed by a new key is accepted once the
// set is fetched again, on an unknown kid, at most once per minRefresh.
func TestRemoteJWKSRotation(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	unknown := newKey(t, "k9").sign(t, claims(nil))
	var mu sync.Mutex
	serve := k1.jwks(t)
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		mu.Lock()
		defer mu.Unlock()
		w.Write(serve)
	}))
	defer srv.Close()
	j, err := NewJWT(&ir.JWTAuth{Providers: []*ir.JWTProvider{{Name: "remote", RemoteJWKS: srv.URL + "/jwks", CacheDuration: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	j.providers[0].remote.minRefresh = 200 * time.Millisecond
	verify := func(tok string) *JWTError {
		_, e := j.Verify(context.Background(), http.Header{"Authorization": {"Bearer " + tok}})
		return e
	}
	if e := verify(k1.sign(t, claims(nil))); e != nil {
		t.Fatalf("k1: %v", e)
	}
	if e := verify(k1.sign(t, claims(nil))); e != nil || fetches.Load() != 1 {
		t.Fatalf("k1 again: %v, %d fetches (want the cached set)", e, fetches.Load())
	}
	mu.Lock()
	serve = []byte(`{"keys":[` + strings.TrimSuffix(strings.TrimPrefix(string(k1.jwks(t)), `{"keys":[`), "]}") + "," + strings.TrimSuffix(strings.TrimPrefix(string(k2.jwks(t)), `{"keys":[`), "]}") + `]}`)
	mu.Unlock()
	// The unknown kid refetches only after minRefresh since the last fetch.
	time.Sleep(250 * time.Millisecond)
	if e := verify(k2.sign(t, claims(nil))); e != nil {
		t.Fatalf("k2 after rotation: %v", e)
	}
	n := fetches.Load()
	for range 5 {
		verify(unknown)
	}
	if fetches.Load() != n {
		t.Fatalf("unknown kids fetched the set %d more times within minRefresh", fetches.Load()-n)
	}
	if got := sortedKeys(j.providers[0].remote.set); len(got) != 2 {
		t.Fatalf("keys %v", got)
	}
}

func TestBasic(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), 4)
	users, err := ParseHtpasswd([]byte("# users\nalice:" + string(hash) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := NewBasic("web", users)
	req := func(u, p string) http.Header {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header
	}
	for _, tc := range []struct {
		name string
		h    http.Header
		ok   bool
	}{
		{"good", req("alice", "s3cret"), true},
		{"good cached", req("alice", "s3cret"), true},
		{"bad password", req("alice", "nope"), false},
		{"unknown user", req("mallory", "s3cret"), false},
		{"no header", http.Header{}, false},
		{"bearer", http.Header{"Authorization": {"Bearer x"}}, false},
	} {
		if _, ok := b.Check(tc.h); ok != tc.ok {
			t.Errorf("%s: ok=%v", tc.name, ok)
		}
	}
	if !strings.Contains(b.Challenge, `realm="web"`) {
		t.Errorf("challenge %q", b.Challenge)
	}
	for _, bad := range []string{"bob:plain", "bob:$apr1$x$y", "bob:{SHA}abc=", "bob:$1$xy$z", "nocolon"} {
		if _, err := ParseHtpasswd([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "plain") && strings.Contains(bad, "apr1$x$y") && strings.Contains(err.Error(), "$x$y") {
			t.Errorf("error leaks the hash: %v", err)
		}
	}
}

func TestIPList(t *testing.T) {
	l, err := NewIPList([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}, []string{"10.9.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"10.1.2.3": true, "10.9.1.1": false, "192.0.2.7": true, "192.0.2.8": false,
		"::ffff:10.1.2.3": true, "2001:db8::1": true, "2001:db9::1": false, "garbage": false,
	} {
		if got := l.Allowed(ip); got != want {
			t.Errorf("%s: %v, want %v", ip, got, want)
		}
	}
	deny, _ := NewIPList(nil, []string{"203.0.113.0/24"})
	if deny.Allowed("203.0.113.9") || !deny.Allowed("198.51.100.1") {
		t.Error("deny-only list")
	}
	if _, err := NewIPList([]string{"10.0.0.0/33"}, nil); err == nil {
		t.Error("bad CIDR accepted")
	}
}
