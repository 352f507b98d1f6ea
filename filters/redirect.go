package filters

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/meshgate/meshgate/ir"
)

// Redirect is a compiled Gateway API HTTPRequestRedirectFilter.
//
// Everything that does not depend on the request is settled at compile time:
// the scheme (the filter's, else the listener's), the port suffix of the
// Location (see NewRedirect) and the status code. Per request only the host,
// path and query are read.
type Redirect struct {
	scheme     string // "http" or "https"
	hostname   string // "" keeps the request's host
	portSuffix string // ":8080", or "" for a well-known port
	path       pathModifier
	status     int
}

// pathModifier is a compiled ir.PathModifier shared by Redirect and
// URLRewrite. kind is "" when the path is left alone.
type pathModifier struct {
	kind ir.PathModifierType
	// raw is the value as configured, which is in URL-escaped form; for
	// ReplacePrefixMatch it has been through trimSlash.
	raw string
	// decoded is raw percent-decoded, for editing url.URL.Path.
	decoded string
}

// compilePath validates and precomputes a path modifier.
func compilePath(pm *ir.PathModifier) (pathModifier, error) {
	if pm == nil {
		return pathModifier{}, nil
	}
	v := pm.Value
	switch pm.Type {
	case ir.FullPathReplace:
		if v == "" {
			v = "/"
		}
	case ir.PrefixMatchReplace:
		v = trimSlash(v)
	default:
		return pathModifier{}, fmt.Errorf("path modifier: unsupported type %q", pm.Type)
	}
	if v != "" && v[0] != '/' {
		return pathModifier{}, fmt.Errorf("path modifier: %s value %q must start with /", pm.Type, pm.Value)
	}
	dec, err := url.PathUnescape(v)
	if err != nil {
		return pathModifier{}, fmt.Errorf("path modifier: %s value %q: %w", pm.Type, pm.Value, err)
	}
	return pathModifier{kind: pm.Type, raw: v, decoded: dec}, nil
}

// NewRedirect compiles c for a listener bound to listenerPort, speaking TLS
// when listenerTLS is true.
//
// The Location port follows the HTTPRequestRedirectFilter Port rules: an
// explicit port wins; else a configured scheme brings its well-known port
// (http 80, https 443); else the listener port is used. The port is left out
// of the Location when it is the well-known port of the Location's scheme.
func NewRedirect(c *ir.Redirect, listenerPort int, listenerTLS bool) (*Redirect, error) {
	if c == nil {
		return nil, errors.New("redirect: nil config")
	}
	rd := &Redirect{status: c.StatusCode}
	switch rd.status {
	case 0:
		rd.status = http.StatusFound
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return nil, fmt.Errorf("redirect: unsupported status code %d", c.StatusCode)
	}

	port := listenerPort
	switch {
	case c.Scheme != nil:
		rd.scheme = strings.ToLower(*c.Scheme)
		switch rd.scheme {
		case "http":
			port = 80
		case "https":
			port = 443
		default:
			return nil, fmt.Errorf("redirect: unsupported scheme %q", *c.Scheme)
		}
	case listenerTLS:
		rd.scheme = "https"
	default:
		rd.scheme = "http"
	}
	if c.Port != nil {
		port = int(*c.Port)
	}
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("redirect: port %d out of range", port)
	}
	if port != 0 && !(rd.scheme == "http" && port == 80) && !(rd.scheme == "https" && port == 443) {
		rd.portSuffix = ":" + strconv.Itoa(port)
	}

	if c.Hostname != nil {
		rd.hostname = *c.Hostname
	}
	var err error
	if rd.path, err = compilePath(c.Path); err != nil {
		return nil, fmt.Errorf("redirect: %w", err)
	}
	return rd, nil
}

// StatusCode is the compiled redirect status (302 when unset).
func (rd *Redirect) StatusCode() int { return rd.status }

// Location builds the Location header for r. matchedPrefix is the PathPrefix
// value the route matched; it is only read for ReplacePrefixMatch, and when it
// is empty or not a segment prefix of the path the path is kept as is.
// The query string is preserved; a fragment never reaches a server.
func (rd *Redirect) Location(r *http.Request, matchedPrefix string) string {
	host := rd.hostname
	if host == "" {
		host = hostWithoutPort(r.Host)
	}
	p1, p2 := rd.locationPath(r, matchedPrefix)

	var b strings.Builder
	b.Grow(len(rd.scheme) + 3 + len(host) + len(rd.portSuffix) + len(p1) + len(p2) + 1 + len(r.URL.RawQuery))
	b.WriteString(rd.scheme)
	b.WriteString("://")
	b.WriteString(host)
	b.WriteString(rd.portSuffix)
	b.WriteString(p1)
	b.WriteString(p2)
	if r.URL.RawQuery != "" {
		b.WriteByte('?')
		b.WriteString(r.URL.RawQuery)
	}
	return b.String()
}

// locationPath is the escaped path of the Location, in two pieces to
// concatenate, so the common prefix replacement costs no extra string.
func (rd *Redirect) locationPath(r *http.Request, matchedPrefix string) (string, string) {
	escaped := r.URL.EscapedPath()
	switch rd.path.kind {
	case ir.FullPathReplace:
		return rd.path.raw, ""
	case ir.PrefixMatchReplace:
		if matchedPrefix == "" {
			break
		}
		p := trimSlash(matchedPrefix)
		if hasSegmentPrefix(escaped, p) {
			if rest := escaped[len(p):]; rd.path.raw != "" || rest != "" {
				return rd.path.raw, rest
			}
			return "/", ""
		}
		// The router matched the decoded path; the escaped form can differ
		// inside the prefix (e.g. "%40" for "@"), so retry on the decoded
		// path and escape the result.
		if out, ok := replacePrefix(r.URL.Path, p, rd.path.decoded); ok {
			return (&url.URL{Path: out}).EscapedPath(), ""
		}
	}
	if escaped == "" {
		return "/", ""
	}
	return escaped, ""
}

// Serve answers r with the redirect: the status code and Location, no body.
func (rd *Redirect) Serve(w http.ResponseWriter, r *http.Request, matchedPrefix string) {
	w.Header().Set("Location", rd.Location(r, matchedPrefix))
	w.WriteHeader(rd.status)
}

// hostWithoutPort strips a ":port" from a Host header value, keeping the
// brackets of an IPv6 literal so a port can be appended again.
func hostWithoutPort(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[:i+1]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}

var _ Responder = (*Redirect)(nil)
