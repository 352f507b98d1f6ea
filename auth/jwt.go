package auth

// JWTs are verified with github.com/go-jose/go-jose/v4: it is maintained,
// already in this module's graph (through the OpenTelemetry and OAuth2
// dependencies), small, and its parser takes the list of accepted
// signature algorithms up front, so "none" and HMAC tokens (the "HS256
// signed with the RSA public key" confusion) are refused before any key is
// looked at. lestrrat-go/jwx would do too but brings a much larger API and
// dependency set for the same checks.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/meshgate/meshgate/ir"
)

// DefaultAlgorithms are the signature algorithms accepted when a provider
// names none. HMAC and "none" are never accepted.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"}

var allowedAlgorithms = map[string]jose.SignatureAlgorithm{
	"RS256": jose.RS256, "RS384": jose.RS384, "RS512": jose.RS512,
	"ES256": jose.ES256, "ES384": jose.ES384, "ES512": jose.ES512,
	"PS256": jose.PS256, "PS384": jose.PS384, "PS512": jose.PS512,
	"EdDSA": jose.EdDSA,
}

// jwtLeeway is the clock skew allowed on exp, nbf and iat.
const jwtLeeway = 30 * time.Second

// ValidAlgorithm reports whether alg may be used by a provider.
func ValidAlgorithm(alg string) bool { _, ok := allowedAlgorithms[alg]; return ok }

// ParseJWKS reads a JSON Web Key Set, refusing symmetric keys (a JWKS
// holds public keys; an "oct" key would allow HMAC forgeries).
func ParseJWKS(data []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %v", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("the key set is empty")
	}
	for i, k := range set.Keys {
		if _, ok := k.Key.([]byte); ok {
			return nil, fmt.Errorf("keys[%d]: symmetric keys are not accepted", i)
		}
		if !k.IsPublic() {
			set.Keys[i] = k.Public()
		}
		if k.Use != "" && k.Use != "sig" {
			return nil, fmt.Errorf("keys[%d]: use %q is not sig", i, k.Use)
		}
	}
	return &set, nil
}

// JWTError is why a token was refused: Status 401 (no or invalid token)
// or 403 (a valid token failing the rules); Reason is short and never
// holds the token.
type JWTError struct {
	Status int
	Reason string
	// Provider names the provider whose check failed, when known.
	Provider string
}

func (e *JWTError) Error() string { return e.Reason }

// JWT is a compiled jwt section.
type JWT struct {
	providers []*jwtProvider
	optional  bool
	rules     []ir.ClaimRule
	// headers are every claimToHeaders header, removed from requests
	// before claims are copied.
	headers []string
}

type jwtProvider struct {
	ir     *ir.JWTProvider
	algs   []jose.SignatureAlgorithm
	static *jose.JSONWebKeySet
	remote *remoteJWKS
}

// NewJWT compiles a jwt section.
func NewJWT(j *ir.JWTAuth) (*JWT, error) {
	out := &JWT{optional: j.Optional, rules: j.Rules}
	seen := map[string]bool{}
	for _, p := range j.Providers {
		jp := &jwtProvider{ir: p}
		algs := p.Algorithms
		if len(algs) == 0 {
			algs = DefaultAlgorithms
		}
		for _, a := range algs {
			sa, ok := allowedAlgorithms[a]
			if !ok {
				return nil, fmt.Errorf("provider %s: algorithm %q is not accepted", p.Name, a)
			}
			jp.algs = append(jp.algs, sa)
		}
		switch {
		case len(p.JWKS) > 0:
			set, err := ParseJWKS(p.JWKS)
			if err != nil {
				return nil, fmt.Errorf("provider %s: %v", p.Name, err)
			}
			jp.static = set
		case p.RemoteJWKS != "":
			jp.remote = remoteFor(p.RemoteJWKS, p.CacheDuration)
		default:
			return nil, fmt.Errorf("provider %s: no keys", p.Name)
		}
		for _, c := range p.ClaimToHeaders {
			h := http.CanonicalHeaderKey(c.Header)
			if !seen[h] {
				seen[h] = true
				out.headers = append(out.headers, h)
			}
		}
		out.providers = append(out.providers, jp)
	}
	return out, nil
}

// Verify checks the request's token. On success it removes every
// claimToHeaders header the client sent and sets them from the claims;
// claims is nil when the section is optional and no token was sent.
func (j *JWT) Verify(ctx context.Context, h http.Header) (claims map[string]any, err *JWTError) {
	for _, name := range j.headers {
		delete(h, name)
	}
	sawToken := false
	var last *JWTError
	for _, p := range j.providers {
		tok := p.token(h)
		if tok == "" {
			continue
		}
		sawToken = true
		c, e := p.verify(ctx, tok)
		if e != nil {
			last = e
			continue
		}
		for _, rule := range j.rules {
			if !ruleHolds(c, rule) {
				return nil, &JWTError{Status: http.StatusForbidden, Reason: "claim " + rule.Claim + " does not satisfy the policy", Provider: p.ir.Name}
			}
		}
		for _, ch := range p.ir.ClaimToHeaders {
			if v, ok := claimString(c, ch.Claim); ok {
				h[http.CanonicalHeaderKey(ch.Header)] = []string{v}
			}
		}
		return c, nil
	}
	if !sawToken {
		if j.optional {
			return nil, nil
		}
		return nil, &JWTError{Status: http.StatusUnauthorized, Reason: "missing token"}
	}
	return nil, last
}

// Challenge is the WWW-Authenticate value for a 401 (RFC 6750).
func (e *JWTError) Challenge() string {
	if e.Reason == "missing token" {
		return `Bearer realm="meshgate"`
	}
	return `Bearer realm="meshgate", error="invalid_token", error_description="` + strings.ReplaceAll(e.Reason, `"`, "'") + `"`
}

func (p *jwtProvider) token(h http.Header) string {
	switch {
	case p.ir.Cookie != "":
		r := http.Request{Header: h}
		if c, err := r.Cookie(p.ir.Cookie); err == nil {
			return c.Value
		}
		return ""
	case p.ir.Header != "":
		v := h.Get(p.ir.Header)
		if p.ir.Prefix != "" {
			if len(v) < len(p.ir.Prefix) || !strings.EqualFold(v[:len(p.ir.Prefix)], p.ir.Prefix) {
				return ""
			}
			v = v[len(p.ir.Prefix):]
		}
		return strings.TrimSpace(v)
	}
	v := h.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

func (p *jwtProvider) verify(ctx context.Context, raw string) (map[string]any, *JWTError) {
	invalid := func(reason string) *JWTError {
		return &JWTError{Status: http.StatusUnauthorized, Reason: reason, Provider: p.ir.Name}
	}
	tok, err := jwt.ParseSigned(raw, p.algs)
	if err != nil {
		return nil, invalid("malformed token or algorithm not accepted")
	}
	if len(tok.Headers) != 1 {
		return nil, invalid("malformed token")
	}
	kid := tok.Headers[0].KeyID
	var keys []jose.JSONWebKey
	if p.static != nil {
		keys = pick(p.static, kid)
	} else {
		keys = p.remote.keys(ctx, kid)
	}
	if len(keys) == 0 {
		return nil, invalid("no key for the token's key id")
	}
	var std jwt.Claims
	var all map[string]any
	verified := false
	for _, k := range keys {
		if k.Algorithm != "" && k.Algorithm != tok.Headers[0].Algorithm {
			continue
		}
		if err := tok.Claims(k.Key, &std, &all); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, invalid("signature does not verify")
	}
	exp := jwt.Expected{Issuer: p.ir.Issuer, Time: time.Now()}
	if len(p.ir.Audiences) > 0 {
		exp.AnyAudience = p.ir.Audiences
	}
	if err := std.ValidateWithLeeway(exp, jwtLeeway); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return nil, invalid("token expired")
		case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
			return nil, invalid("token not valid yet")
		case errors.Is(err, jwt.ErrInvalidIssuer):
			return nil, invalid("wrong issuer")
		case errors.Is(err, jwt.ErrInvalidAudience):
			return nil, invalid("wrong audience")
		}
		return nil, invalid("invalid claims")
	}
	return all, nil
}

func pick(set *jose.JSONWebKeySet, kid string) []jose.JSONWebKey {
	if kid != "" {
		return set.Key(kid)
	}
	return set.Keys
}

// claim walks a dotted claim name.
func claim(c map[string]any, name string) (any, bool) {
	if v, ok := c[name]; ok {
		return v, true
	}
	var cur any = c
	for _, part := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func claimString(c map[string]any, name string) (string, bool) {
	v, ok := claim(c, name)
	if !ok {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				parts = append(parts, s)
			} else {
				b, _ := json.Marshal(e)
				parts = append(parts, string(b))
			}
		}
		return strings.Join(parts, ","), true
	case nil:
		return "", false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", false
	}
	return string(b), true
}

func ruleHolds(c map[string]any, r ir.ClaimRule) bool {
	v, ok := claim(c, r.Claim)
	if !ok {
		return false
	}
	var have []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				have = append(have, s)
			}
		}
	case string:
		have = strings.Fields(x) // "scope" claims are space-separated
		if len(have) == 0 {
			have = []string{x}
		}
	default:
		s, _ := claimString(c, r.Claim)
		have = []string{s}
	}
	for _, want := range r.Values {
		for _, h := range have {
			if h == want {
				return true
			}
		}
	}
	return false
}

// Remote JWKS caching. A set is fetched when first needed, again when
// older than its cache duration, and sooner when a token names a key id
// the set lacks (key rotation), at most once per minRefresh.
type remoteJWKS struct {
	url        string
	ttl        time.Duration
	minRefresh time.Duration

	mu          sync.Mutex
	set         *jose.JSONWebKeySet
	fetched     time.Time
	lastAttempt time.Time
}

var (
	remotesMu sync.Mutex
	remotes   = map[string]*remoteJWKS{}
	// jwksClient fetches remote key sets.
	jwksClient = &http.Client{Timeout: 5 * time.Second}
)

// DefaultJWKSCache is how long a remote key set is kept by default.
const DefaultJWKSCache = 5 * time.Minute

// MaxUnknownKidRefresh bounds fetches caused by unknown key ids.
const MaxUnknownKidRefresh = 10 * time.Second

func remoteFor(url string, ttl time.Duration) *remoteJWKS {
	if ttl <= 0 {
		ttl = DefaultJWKSCache
	}
	key := url + "|" + ttl.String()
	remotesMu.Lock()
	defer remotesMu.Unlock()
	if r := remotes[key]; r != nil {
		return r
	}
	r := &remoteJWKS{url: url, ttl: ttl, minRefresh: min(MaxUnknownKidRefresh, ttl)}
	remotes[key] = r
	return r
}

func (r *remoteJWKS) keys(ctx context.Context, kid string) []jose.JSONWebKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	stale := r.set == nil || now.Sub(r.fetched) >= r.ttl
	if stale && now.Sub(r.lastAttempt) >= time.Second {
		r.fetch(ctx, now)
	}
	if r.set == nil {
		return nil
	}
	ks := pick(r.set, kid)
	if len(ks) == 0 && kid != "" && now.Sub(r.lastAttempt) >= r.minRefresh {
		r.fetch(ctx, now)
		ks = pick(r.set, kid)
	}
	return ks
}

// fetch replaces the set; on failure the old one is kept.
func (r *remoteJWKS) fetch(ctx context.Context, now time.Time) {
	r.lastAttempt = now
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return
	}
	req.Header.Set("Accept", "application/json")
	resp, err := jwksClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return
	}
	set, err := ParseJWKS(body)
	if err != nil {
		return
	}
	r.set, r.fetched = set, now
}

// sortedKeys is for tests and debugging: the key ids of a set.
func sortedKeys(set *jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	sort.Strings(out)
	return out
}
