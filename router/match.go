package router

import (
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"

	"github.com/meshgate/meshgate/ir"
)

// pathKind orders path match types for precedence: lower sorts first.
type pathKind uint8

// Path kinds in precedence order. RegularExpression precedence is left to
// implementations by Gateway API; we put it after every prefix (including
// "/"), so adding a regex route can never steal traffic from an existing
// Exact or PathPrefix route.
const (
	pathExact pathKind = iota
	pathPrefix
	pathRegex
)

// matcher is a compiled ir.Match.
type matcher struct {
	kind pathKind
	// path is the Exact value, or the PathPrefix value without its trailing
	// slash ("/" becomes "", which every path starts with).
	path string
	// pathLen is the configured value's length, for precedence.
	pathLen int
	re      *regexp.Regexp
	method  string
	headers []valueMatch // names canonical
	query   []valueMatch // names as configured (case-sensitive)
}

// valueMatch is one compiled header or query parameter condition.
type valueMatch struct {
	name  string
	value string
	re    *regexp.Regexp // non-nil for RegularExpression
}

// compileMatch builds a matcher, defaulting the path to PathPrefix "/".
func compileMatch(m *ir.Match) (matcher, error) {
	mt := matcher{method: m.Method}
	v := m.Path.Value
	switch m.Path.Type {
	case ir.PathExact:
		mt.kind, mt.path = pathExact, v
	case ir.PathPrefix, "":
		if v == "" {
			v = "/"
		}
		mt.kind, mt.path = pathPrefix, strings.TrimSuffix(v, "/")
	case ir.PathRegularExpression:
		re, err := compileRegexp(v)
		if err != nil {
			return matcher{}, fmt.Errorf("path: %w", err)
		}
		mt.kind, mt.re = pathRegex, re
	default:
		return matcher{}, fmt.Errorf("path: unsupported match type %q", m.Path.Type)
	}
	mt.pathLen = len(v)

	var err error
	if mt.headers, err = compileValues("header", m.Headers, textproto.CanonicalMIMEHeaderKey); err != nil {
		return matcher{}, err
	}
	if mt.query, err = compileValues("query param", m.QueryParams, func(s string) string { return s }); err != nil {
		return matcher{}, err
	}
	return mt, nil
}

// compileValues compiles header or query matches. Per Gateway API, when
// several entries have equivalent names only the first is considered.
func compileValues(what string, ms []ir.StringMatch, norm func(string) string) ([]valueMatch, error) {
	out := make([]valueMatch, 0, len(ms))
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		name := norm(m.Name)
		if name == "" {
			return nil, fmt.Errorf("%s match: empty name", what)
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		vm := valueMatch{name: name, value: m.Value}
		switch m.Type {
		case ir.MatchExact, "":
		case ir.MatchRegularExpression:
			re, err := compileRegexp(m.Value)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", what, m.Name, err)
			}
			vm.re = re
		default:
			return nil, fmt.Errorf("%s %q: unsupported match type %q", what, m.Name, m.Type)
		}
		out = append(out, vm)
	}
	return out, nil
}

// compileRegexp compiles a Go (RE2) regular expression anchored at both
// ends, so that it must match the whole value as Gateway API implementations
// conventionally do.
func compileRegexp(expr string) (*regexp.Regexp, error) {
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression %q: %w", expr, err)
	}
	return re, nil
}

// matches reports whether r satisfies every condition.
func (m *matcher) matches(r *http.Request) bool {
	if !m.matchPath(r.URL.Path) {
		return false
	}
	if m.method != "" && r.Method != m.method {
		return false
	}
	for i := range m.headers {
		if !m.headers[i].matchHeader(r) {
			return false
		}
	}
	if len(m.query) > 0 && ambiguousQuery(r.URL.RawQuery) {
		// Backends may read such a query differently from us (";" as a
		// separator, a bad escape skipped, parameters past a count
		// cap ignored): a query condition must not match what the
		// backend could see otherwise.
		return false
	}
	for i := range m.query {
		if !m.query[i].matchQuery(r.URL.RawQuery) {
			return false
		}
	}
	return true
}

// maxQueryParams is the most parameters a query may have for query
// conditions to match it; PHP's default input cap is 1000.
const maxQueryParams = 1000

// ambiguousQuery reports a raw query that servers do not all parse alike:
// one with ";", a malformed %-escape, or more than maxQueryParams
// parameters.
func ambiguousQuery(raw string) bool {
	params := 1
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case ';':
			return true
		case '&':
			params++
			if params > maxQueryParams {
				return true
			}
		case '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return true
			}
		}
	}
	return false
}

// matchPath compares the decoded request path. PathPrefix is segment-aware
// and ignores a trailing slash on the configured value: "/foo" and "/foo/"
// both match "/foo", "/foo/" and "/foo/bar", neither matches "/foobar".
func (m *matcher) matchPath(p string) bool {
	switch m.kind {
	case pathExact:
		return p == m.path
	case pathPrefix:
		return strings.HasPrefix(p, m.path) && (len(p) == len(m.path) || p[len(m.path)] == '/')
	default:
		return m.re.MatchString(p)
	}
}

// matchHeader compares a request header. A repeated header is compared as
// its values joined with ",", the combined form RFC 9110 §5.3 defines and
// the one Envoy matches on. Go moves Host out of r.Header; a "Host" match
// reads r.Host.
func (vm *valueMatch) matchHeader(r *http.Request) bool {
	if vm.name == "Host" {
		return r.Host != "" && vm.matchString(r.Host)
	}
	vals := r.Header[vm.name]
	switch len(vals) {
	case 0:
		return false
	case 1:
		return vm.matchString(vals[0])
	}
	if vm.re != nil {
		return vm.re.MatchString(strings.Join(vals, ",")) // rare: allocates
	}
	return equalJoined(vals, vm.value)
}

// matchString applies the exact or regex comparison to one value.
func (vm *valueMatch) matchString(s string) bool {
	if vm.re != nil {
		return vm.re.MatchString(s)
	}
	return s == vm.value
}

// equalJoined reports whether strings.Join(vals, ",") == want without
// building the joined string.
func equalJoined(vals []string, want string) bool {
	for i, v := range vals {
		if i > 0 {
			if want == "" || want[0] != ',' {
				return false
			}
			want = want[1:]
		}
		if !strings.HasPrefix(want, v) {
			return false
		}
		want = want[len(v):]
	}
	return want == ""
}

// matchQuery compares the first occurrence of the parameter in the raw
// query, as Gateway API recommends for repeated parameters. It scans the
// raw query instead of calling URL.Query, which would allocate a map.
func (vm *valueMatch) matchQuery(rawQuery string) bool {
	v, ok := queryValue(rawQuery, vm.name)
	if !ok {
		return false
	}
	if vm.re == nil {
		return unescapedEqual(v, vm.value)
	}
	if strings.ContainsAny(v, "%+") {
		dec, err := url.QueryUnescape(v) // rare: allocates
		if err != nil {
			return false
		}
		v = dec
	}
	return vm.re.MatchString(v)
}

// queryValue returns the still-escaped value of the first parameter whose
// unescaped name is name.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if unescapedEqual(k, name) {
			return v, true
		}
	}
	return "", false
}

// unescapedEqual reports whether the query-escaped enc decodes to want
// ("+" is a space, "%XX" a byte; a malformed escape is taken literally).
func unescapedEqual(enc, want string) bool {
	j := 0
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(enc) && isHex(enc[i+1]) && isHex(enc[i+2]):
			c = unhex(enc[i+1])<<4 | unhex(enc[i+2])
			i += 2
		}
		if j >= len(want) || want[j] != c {
			return false
		}
		j++
	}
	return j == len(want)
}

// isHex reports whether c is a hexadecimal digit.
func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unhex is the value of the hexadecimal digit c.
func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
