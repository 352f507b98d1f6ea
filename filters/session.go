package filters

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// DefaultSessionName is the cookie or header name used when a
// sessionPersistence leaves sessionName unset (Gateway API lets the
// implementation choose).
const DefaultSessionName = "meshgate-session"

// Session is a compiled Gateway API sessionPersistence: where the session
// token travels and how it is handed out.
//
// The token names the backendRef and endpoint a client was first sent to
// (see Token); the gateway keeps no per-session state, so sessions survive
// reloads and work across replicas. Everything that does not depend on the
// request is settled here: the canonical header name, and the cookie
// attributes that follow the value in Set-Cookie.
type Session struct {
	cookie bool
	// name is the cookie name as configured, or the canonical header name.
	name string
	// cookieSuffix is everything after "name=token" in Set-Cookie, without
	// "; Secure".
	cookieSuffix string
}

// CompileSession compiles p; nil when p is nil (no persistence). The name is
// expected to be a valid cookie or header token, which the translator
// checks; an empty one becomes DefaultSessionName.
//
// A cookie gets Path=/ (the session is per route rule, but one cookie per
// name keeps the browser from sending stale copies for sibling paths),
// HttpOnly (scripts have no business with it) and SameSite=Lax (sent on
// top-level navigation, not on cross-site subrequests). Max-Age is set only
// for a Permanent lifetime with an AbsoluteTimeout, rounded up to whole
// seconds; otherwise the cookie ends with the browser session, as Gateway
// API's lifetimeType Session asks.
func CompileSession(p *ir.SessionPersistence) *Session {
	if p == nil {
		return nil
	}
	name := p.Name
	if name == "" {
		name = DefaultSessionName
	}
	if p.Type != ir.SessionCookie {
		// Header (and, defensively, anything else: a header is the one
		// that cannot be misread as a cookie).
		return &Session{name: textproto.CanonicalMIMEHeaderKey(name)}
	}
	suffix := "; Path=/"
	if p.Permanent && p.AbsoluteTimeout > 0 {
		secs := (p.AbsoluteTimeout + time.Second - 1) / time.Second
		suffix += "; Max-Age=" + strconv.FormatInt(int64(secs), 10)
	}
	suffix += "; HttpOnly; SameSite=Lax"
	return &Session{cookie: true, name: name, cookieSuffix: suffix}
}

// Lookup returns the session token the client sent: the first cookie named
// Name across all Cookie headers (RFC 6265 sends the most specific first),
// or the first value of the header Name. An empty value is no token. It
// allocates nothing: cookies are scanned in place rather than parsed with
// r.Cookie, which builds every cookie of the request.
func (s *Session) Lookup(r *http.Request) (token string, ok bool) {
	if s == nil || r == nil {
		return "", false
	}
	if !s.cookie {
		if v := r.Header[s.name]; len(v) > 0 && v[0] != "" {
			return v[0], true
		}
		return "", false
	}
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimLeft(part, " \t")
			if len(part) <= len(s.name) || part[len(s.name)] != '=' || part[:len(s.name)] != s.name {
				continue
			}
			v := strings.TrimRight(part[len(s.name)+1:], " \t")
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if v != "" {
				return v, true
			}
		}
	}
	return "", false
}

// Issue hands the client its session token with the response headers h: a
// Set-Cookie added next to any the backend sent, or the header Name set.
// secure adds the Secure attribute, which the caller sets when the client
// connection is TLS (a Secure cookie set over cleartext would never come
// back). The caller issues a token when Lookup found none or Resolve could
// not place it; re-issuing a valid one is unnecessary because a Permanent
// cookie's lifetime is absolute, not sliding.
func (s *Session) Issue(h http.Header, token string, secure bool) {
	if s == nil || h == nil || token == "" {
		return
	}
	if !s.cookie {
		h[s.name] = []string{token}
		return
	}
	v := s.name + "=" + token + s.cookieSuffix
	if secure {
		v += "; Secure"
	}
	h["Set-Cookie"] = append(h["Set-Cookie"], v)
}

// tokenLen is the length of every Token: 12 bytes in unpadded base64url.
const tokenLen = 16

// Token is the session token naming endpointAddress of backend backendName:
// the first 12 bytes of SHA-256("meshgate-session-v1\x00" + backendName +
// "\x00" + endpointAddress), unpadded base64url (16 characters, valid in
// both cookies and headers). It is stable across reloads, replicas and
// restarts as long as the backend name and address stay the same, and it
// does not show the address in clear.
//
// It is not a security boundary: there is no key, so anyone who knows or
// guesses an address (the IPv4 space times a few ports is small) can forge
// the token for it and pick that endpoint among the ones the route already
// offers, exactly as with Envoy's and Istio's stateful sessions. It only
// ever selects among current endpoints of the route's own backends.
func Token(backendName, endpointAddress string) string {
	var b [tokenLen]byte
	tokenInto(&b, backendName, endpointAddress)
	return string(b[:])
}

// tokenInto writes Token(backendName, endpointAddress) into b without
// allocating for names and addresses of ordinary length.
func tokenInto(b *[tokenLen]byte, backendName, endpointAddress string) {
	const prefix = "meshgate-session-v1\x00"
	var stack [128]byte
	in := append(stack[:0], prefix...)
	in = append(in, backendName...)
	in = append(in, 0)
	in = append(in, endpointAddress...)
	sum := sha256.Sum256(in)
	base64.RawURLEncoding.Encode(b[:], sum[:12])
}

// Resolve finds the backend (its index in backends) and endpoint address
// that token names, or ok=false when it names nothing current: an unknown
// or forged token, an endpoint that left the backend, a backendRef that is
// gone or no longer resolves. The caller then picks as usual and issues a
// new token.
//
// A backend whose weight is 0 still resolves its sessions as long as its
// Target exists: setting a canary's weight to 0 is how traffic is drained
// gently, so new clients stop going there while existing sessions finish.
// Draining endpoints (terminating but serving) resolve too, for the same
// reason. Health and outlier state are runtime state this package does not
// see: the caller must still check the endpoint is usable and re-pick if
// not.
//
// Resolve hashes every endpoint (about 0.2 µs each); routes with many
// endpoints should compile a SessionIndex once instead.
func Resolve(token string, backends []ir.WeightedBackend) (backendIndex int, endpointAddress string, ok bool) {
	if len(token) != tokenLen {
		return 0, "", false
	}
	var b [tokenLen]byte
	for i := range backends {
		t := backends[i].Target
		if t == nil {
			continue
		}
		for _, ep := range t.Endpoints {
			tokenInto(&b, t.Name, ep.Address)
			if string(b[:]) == token {
				return i, ep.Address, true
			}
		}
	}
	return 0, "", false
}

// SessionIndex is Resolve compiled for one route's backends: a map from
// token to backend and endpoint, built once per config so that resolving a
// session is one map read whatever the number of endpoints.
type SessionIndex struct {
	m map[string]sessionTarget
}

// sessionTarget is where a token leads.
type sessionTarget struct {
	backend int
	address string
}

// NewSessionIndex indexes every endpoint of every backend with a Target, in
// the same order and with the same rules as Resolve (the first backend
// wins should two name the same backend and address).
func NewSessionIndex(backends []ir.WeightedBackend) *SessionIndex {
	x := &SessionIndex{m: make(map[string]sessionTarget)}
	for i := range backends {
		t := backends[i].Target
		if t == nil {
			continue
		}
		for _, ep := range t.Endpoints {
			tok := Token(t.Name, ep.Address)
			if _, dup := x.m[tok]; !dup {
				x.m[tok] = sessionTarget{backend: i, address: ep.Address}
			}
		}
	}
	return x
}

// Resolve is the package-level Resolve over the indexed backends.
func (x *SessionIndex) Resolve(token string) (backendIndex int, endpointAddress string, ok bool) {
	if x == nil {
		return 0, "", false
	}
	st, ok := x.m[token]
	return st.backend, st.address, ok
}
