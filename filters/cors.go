package filters

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/meshgate/meshgate/ir"
)

// CORS is a compiled Gateway API HTTPCORSFilter.
//
// Origin patterns are parsed once (scheme, host or "*."-suffix, port with
// the scheme's default filled in) and every fixed header value is
// pre-wrapped in a one-element slice, so a request without an Origin header
// costs one map lookup and nothing else. As with HeaderModifier, the shared
// value slices have capacity 1: callers must not overwrite their elements.
//
// Preflight requests (OPTIONS with Origin and Access-Control-Request-Method)
// are answered by the gateway itself (ServePreflight) and never forwarded;
// an origin that is not allowed gets the same 204 without any CORS header,
// which makes the browser fail the cross-origin request. Other requests are
// forwarded whatever their origin; Apply adds the CORS headers to the
// response when the origin is allowed.
type CORS struct {
	anyOrigin bool // allowOrigins is "*"
	origins   []originPattern
	// starOrigin: answer "Access-Control-Allow-Origin: *" (any origin
	// and no credentials), which does not vary with the request.
	starOrigin bool

	credentials []string // ["true"], or nil
	// methods and headers are the joined lists, nil when none are
	// configured; echoMethods/echoHeaders mean "*": the preflight's
	// Access-Control-Request-Method/-Headers are echoed (valid with
	// credentials too, where "*" is not).
	methods, headers         []string
	echoMethods, echoHeaders bool
	expose                   []string
	maxAge                   []string
}

// originPattern is one compiled allowOrigins entry other than "*".
type originPattern struct {
	scheme string // "http" or "https"
	// host is the exact host, or with suffix set the ".example.com"
	// that a "*.example.com" pattern requires after at least one more
	// character. anyHost is a host of "*".
	host    string
	suffix  bool
	anyHost bool
	port    string // always set: the scheme's default when omitted
}

// Header names, canonical, so the maps are indexed directly.
const (
	hdrOrigin          = "Origin"
	hdrVary            = "Vary"
	hdrReqMethod       = "Access-Control-Request-Method"
	hdrReqHeaders      = "Access-Control-Request-Headers"
	hdrAllowOrigin     = "Access-Control-Allow-Origin"
	hdrAllowCreds      = "Access-Control-Allow-Credentials"
	hdrAllowMethods    = "Access-Control-Allow-Methods"
	hdrAllowHeaders    = "Access-Control-Allow-Headers"
	hdrExposeHeaders   = "Access-Control-Expose-Headers"
	hdrMaxAge          = "Access-Control-Max-Age"
	defaultCORSMaxAge  = 5
	corsWildcard       = "*"
	corsVaryOriginOnly = "Origin"
)

var (
	corsStar       = []string{corsWildcard}
	corsTrue       = []string{"true"}
	corsVaryOrigin = []string{corsVaryOriginOnly}
)

// NewCORS compiles c. It fails on what the translator rejects: an origin
// that is not "*" or scheme://host[:port], "*" mixed with other origins.
func NewCORS(c *ir.CORS) (*CORS, error) {
	if c == nil {
		return nil, errors.New("cors: nil config")
	}
	cs := &CORS{}
	for i, o := range c.AllowOrigins {
		if o == corsWildcard {
			if len(c.AllowOrigins) > 1 {
				return nil, errors.New("cors: allowOrigins: \"*\" cannot be combined with other origins")
			}
			cs.anyOrigin = true
			continue
		}
		p, err := parseOriginPattern(o)
		if err != nil {
			return nil, fmt.Errorf("cors: allowOrigins[%d]: %w", i, err)
		}
		cs.origins = append(cs.origins, p)
	}
	cs.starOrigin = cs.anyOrigin && !c.AllowCredentials
	if c.AllowCredentials {
		cs.credentials = corsTrue
	}
	var err error
	if cs.methods, cs.echoMethods, err = corsList("allowMethods", c.AllowMethods, false); err != nil {
		return nil, err
	}
	if cs.headers, cs.echoHeaders, err = corsList("allowHeaders", c.AllowHeaders, false); err != nil {
		return nil, err
	}
	expose := c.ExposeHeaders
	if c.AllowCredentials {
		// With credentials a "*" would be read as a header named "*":
		// the spec says not to send it.
		expose = make([]string, 0, len(c.ExposeHeaders))
		for _, h := range c.ExposeHeaders {
			if h != corsWildcard {
				expose = append(expose, h)
			}
		}
	}
	if cs.expose, _, err = corsList("exposeHeaders", expose, true); err != nil {
		return nil, err
	}
	age := c.MaxAge
	if age <= 0 {
		age = defaultCORSMaxAge
	}
	cs.maxAge = oneValue(strconv.Itoa(int(age)))
	return cs, nil
}

// corsList joins a method or header list into one header value. A lone "*"
// means echo (echo true) unless literalStar, as for exposeHeaders, whose
// "*" is sent as is.
func corsList(field string, vs []string, literalStar bool) (val []string, echo bool, err error) {
	if len(vs) == 0 {
		return nil, false, nil
	}
	for i, v := range vs {
		if v == "" || strings.ContainsAny(v, ", \t\r\n") {
			return nil, false, fmt.Errorf("cors: %s[%d]: %q is not a method or header name", field, i, v)
		}
		if v == corsWildcard && !literalStar {
			if len(vs) > 1 {
				return nil, false, fmt.Errorf("cors: %s: \"*\" cannot be combined with other values", field)
			}
			return nil, true, nil
		}
	}
	return oneValue(strings.Join(vs, ", ")), false, nil
}

func oneValue(s string) []string {
	v := []string{s}
	return v[:1:1]
}

// parseOriginPattern parses "scheme://host[:port]" where host may be "*" or
// begin with "*.".
func parseOriginPattern(o string) (originPattern, error) {
	scheme, hostPort, ok := strings.Cut(o, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return originPattern{}, fmt.Errorf("%q: want \"*\" or http(s)://host[:port]", o)
	}
	host, port, err := splitOriginHostPort(scheme, hostPort)
	if err != nil || host == "" || strings.ContainsAny(host, "/?#@ ") {
		return originPattern{}, fmt.Errorf("%q: want \"*\" or http(s)://host[:port]", o)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return originPattern{}, fmt.Errorf("%q: port must be 1-65535", o)
	}
	p := originPattern{scheme: scheme, port: port}
	switch {
	case host == corsWildcard:
		p.anyHost = true
	case strings.HasPrefix(host, "*."):
		p.suffix, p.host = true, strings.ToLower(host[1:])
	case strings.Contains(host, corsWildcard):
		return originPattern{}, fmt.Errorf("%q: a wildcard must be the whole host or its first label (*.example.com)", o)
	default:
		p.host = strings.ToLower(host)
	}
	return p, nil
}

// splitOriginHostPort splits an origin's host[:port] (IPv6 in brackets),
// returning the scheme's default port when there is none.
func splitOriginHostPort(scheme, hp string) (host, port string, err error) {
	rest := hp
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", errors.New("unclosed [")
		}
		host, rest = hp[:end+1], hp[end+1:]
		if rest != "" && rest[0] != ':' {
			return "", "", errors.New("junk after ]")
		}
	} else if i := strings.LastIndexByte(hp, ':'); i >= 0 {
		host, rest = hp[:i], hp[i:]
	} else {
		host, rest = hp, ""
	}
	if rest == "" {
		if scheme == "https" {
			return host, "443", nil
		}
		return host, "80", nil
	}
	port = rest[1:]
	if port == "" {
		return "", "", errors.New("empty port")
	}
	return host, port, nil
}

// match reports whether the origin with this scheme, host and port matches.
func (p *originPattern) match(scheme, host, port string) bool {
	if !strings.EqualFold(scheme, p.scheme) || port != p.port {
		return false
	}
	switch {
	case p.anyHost:
		return host != ""
	case p.suffix:
		// "*" is a greedy match of at least one character, any labels.
		return len(host) > len(p.host) && strings.EqualFold(host[len(host)-len(p.host):], p.host)
	}
	return strings.EqualFold(host, p.host)
}

// Allowed reports whether a request from origin (the Origin header value)
// may share the response.
func (c *CORS) Allowed(origin string) bool {
	if c == nil || origin == "" {
		return false
	}
	if c.anyOrigin {
		return true
	}
	scheme, hostPort, ok := strings.Cut(origin, "://")
	if !ok {
		return false // "null", or not an origin
	}
	host, port, err := splitOriginHostPort(strings.ToLower(scheme), hostPort)
	if err != nil {
		return false
	}
	for i := range c.origins {
		if c.origins[i].match(scheme, host, port) {
			return true
		}
	}
	return false
}

// Origin returns the request's Origin header when there is exactly one.
// It does not allocate.
func Origin(h http.Header) (string, bool) {
	v := h[hdrOrigin]
	if len(v) != 1 || v[0] == "" {
		return "", false
	}
	return v[0], true
}

// IsPreflight reports whether r is a CORS preflight request: OPTIONS with
// an Origin and an Access-Control-Request-Method.
func IsPreflight(r *http.Request) bool {
	if r.Method != http.MethodOptions {
		return false
	}
	if _, ok := Origin(r.Header); !ok {
		return false
	}
	m := r.Header[hdrReqMethod]
	return len(m) > 0 && m[0] != ""
}

// ServePreflight answers the preflight request r: 204, with the CORS
// headers when its origin is allowed and none otherwise.
func (c *CORS) ServePreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	origin, _ := Origin(r.Header)
	if c.Allowed(origin) {
		c.setOrigin(h, origin)
		if c.echoMethods {
			if m := r.Header[hdrReqMethod]; len(m) > 0 {
				h[hdrAllowMethods] = m[:1:1]
			}
		} else if c.methods != nil {
			h[hdrAllowMethods] = c.methods
		}
		if c.echoHeaders {
			if v := r.Header.Values(hdrReqHeaders); len(v) > 0 {
				h[hdrAllowHeaders] = []string{strings.Join(v, ", ")}
			}
		} else if c.headers != nil {
			h[hdrAllowHeaders] = c.headers
		}
		if c.expose != nil {
			h[hdrExposeHeaders] = c.expose
		}
		h[hdrMaxAge] = c.maxAge
	} else if !c.starOrigin {
		addVaryOrigin(h)
	}
	w.WriteHeader(http.StatusNoContent)
}

// Apply adds the CORS response headers for a request from origin (see
// Origin) to h, the response's header map, when the origin is allowed. Set
// headers replace the upstream's own; Origin is added to Vary. Calling it
// twice on the same map is harmless.
func (c *CORS) Apply(h http.Header, origin string) {
	if !c.Allowed(origin) {
		if !c.starOrigin {
			// A cache must not hand this CORS-less answer to an
			// allowed origin.
			addVaryOrigin(h)
		}
		return
	}
	c.setOrigin(h, origin)
	if c.expose != nil {
		h[hdrExposeHeaders] = c.expose
	}
}

// setOrigin sets Access-Control-Allow-Origin (and -Credentials) for an
// allowed origin.
func (c *CORS) setOrigin(h http.Header, origin string) {
	if c.starOrigin {
		h[hdrAllowOrigin] = corsStar
	} else {
		h[hdrAllowOrigin] = []string{origin}
		addVaryOrigin(h)
	}
	if c.credentials != nil {
		h[hdrAllowCreds] = c.credentials
	} else {
		delete(h, hdrAllowCreds)
	}
}

// addVaryOrigin adds Origin to Vary unless it is already there (or "*").
func addVaryOrigin(h http.Header) {
	vs := h[hdrVary]
	if len(vs) == 0 {
		h[hdrVary] = corsVaryOrigin
		return
	}
	for _, v := range vs {
		for _, tok := range strings.Split(v, ",") {
			tok = textproto.TrimString(tok)
			if tok == corsWildcard || strings.EqualFold(tok, corsVaryOriginOnly) {
				return
			}
		}
	}
	h[hdrVary] = append(vs[:len(vs):len(vs)], corsVaryOriginOnly)
}
