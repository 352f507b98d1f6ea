package dataplane

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// Path normalization. A route must match exactly the path the upstream
// will act on, or "/public/../admin" matches a /public route and reaches
// /admin. So before matching, the escaped request path is put in one
// canonical form (RFC 3986 §6.2.2: percent-encoded unreserved characters
// decoded, hex digits uppercased, dot segments removed; then "//" merged),
// and that same form is what the router sees (decoded) and what goes
// upstream. Encodings that mean different things to different servers, an
// encoded "/" or "\", and a NUL, a raw "\" or a "#", are refused with 400:
// there is no form of them every upstream reads the same way.

// errAmbiguousPath is returned for paths the gateway refuses to route.
var errAmbiguousPath = errors.New("ambiguous path")

// normalizePath returns the canonical form of an escaped origin-form path
// (no query). changed is false when p is already canonical, in which case
// nothing was allocated.
func normalizePath(p string) (out string, changed bool, err error) {
	if p == "" || p[0] != '/' {
		return p, false, nil // "*" or absent: nothing to route by path
	}
	if isCanonical(p) {
		return p, false, nil
	}
	// Pass 1: percent-encodings, and characters refused outright.
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '\\', '#', 0:
			return "", false, errAmbiguousPath
		case '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", false, errAmbiguousPath
			}
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			switch {
			case v == '/' || v == '\\' || v == 0:
				return "", false, errAmbiguousPath
			case isUnreserved(v):
				b.WriteByte(v)
			default:
				b.WriteByte('%')
				b.WriteByte(upperHex(p[i+1]))
				b.WriteByte(upperHex(p[i+2]))
			}
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	s := removeDotSegments(mergeSlashes(b.String()))
	if hasParamDotSegment(s) {
		return "", false, errAmbiguousPath
	}
	return s, s != p, nil
}

// hasParamDotSegment reports a segment like "..;x" or ".;x": servers that
// strip path parameters (Tomcat, Jetty) read it as a dot segment, so
// "/public/..;/admin" would reach /admin behind a /public route.
func hasParamDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if name, _, ok := strings.Cut(seg, ";"); ok && (name == "." || name == "..") {
			return true
		}
	}
	return false
}

// isCanonical is the allocation-free fast path: no "%", "\", "#", NUL,
// "//" or dot segment.
func isCanonical(p string) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '%', '\\', '#', 0, ';':
			return false
		case '/':
			if i+1 < len(p) && p[i+1] == '/' {
				return false
			}
			if dotSegmentAt(p, i+1) {
				return false
			}
		}
	}
	return true
}

// dotSegmentAt reports whether p has a "." or ".." segment starting at i.
func dotSegmentAt(p string, i int) bool {
	rest := p[i:]
	end := strings.IndexByte(rest, '/')
	if end < 0 {
		end = len(rest)
	}
	seg := rest[:end]
	return seg == "." || seg == ".."
}

func mergeSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// removeDotSegments is RFC 3986 §5.2.4 for an absolute path.
func removeDotSegments(p string) string {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

// normalizeRequest puts r's path in canonical form: r.URL.Path (what routes
// match), r.URL.RawPath and r.RequestURI (what goes upstream) all change
// together.
func normalizeRequest(r *http.Request) error {
	raw := r.RequestURI
	if !strings.HasPrefix(raw, "/") {
		raw = r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			raw += "?" + r.URL.RawQuery
		}
	}
	path, query, hasQuery := strings.Cut(raw, "?")
	out, changed, err := normalizePath(path)
	if err != nil {
		return err
	}
	if !changed {
		return nil
	}
	decoded, err := url.PathUnescape(out)
	if err != nil {
		return errAmbiguousPath
	}
	r.URL.Path, r.URL.RawPath = decoded, out
	if hasQuery {
		out += "?" + query
	}
	r.RequestURI = out
	return nil
}

// UnderscorePolicy says what to do with request header names containing
// "_", which some servers (and CGI-style frameworks) treat as "-": a client
// could send X_Forwarded_For next to the X-Forwarded-For the gateway sets.
type UnderscorePolicy string

// Underscore policies.
const (
	UnderscoresDrop   UnderscorePolicy = "drop" // the default
	UnderscoresReject UnderscorePolicy = "reject"
	UnderscoresAllow  UnderscorePolicy = "allow"
)

// dropUnderscoreHeaders removes header fields whose name contains "_"; with
// reject it removes nothing and reports whether there was one.
//
// Names with "." are aliases too for CGI-style servers (PHP turns "." into
// "_"); those that alias a header the gateway sets or strips for trust
// reasons (X-Forwarded-For and the like) are always dropped.
func dropUnderscoreHeaders(h http.Header, reject bool) (found bool) {
	for k := range h {
		if strings.IndexByte(k, '_') >= 0 {
			if reject {
				return true
			}
			delete(h, k)
			continue
		}
		if strings.IndexByte(k, '.') >= 0 && trustAliases[http.CanonicalHeaderKey(strings.ReplaceAll(k, ".", "-"))] {
			delete(h, k)
		}
	}
	return false
}

// trustAliases are the headers whose dotted spellings are dropped.
var trustAliases = map[string]bool{
	"X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true, "X-Forwarded-Port": true,
	"X-Forwarded-Prefix": true, "X-Real-Ip": true, "X-Forwarded-Client-Cert": true, "X-Client-Ip": true,
}
