package filters

import "strings"

// trimSlash drops one trailing "/" so that "/foo/" and "/foo" compare as the
// same prefix and "/" becomes "", the prefix of every path. Gateway API says a
// trailing slash on a PathPrefix or ReplacePrefixMatch value is ignored.
func trimSlash(s string) string {
	return strings.TrimSuffix(s, "/")
}

// replacePrefix replaces the segment-aware prefix p of path with repl. Both
// p and repl have already been through trimSlash. It reports false, and
// returns path unchanged, when p is not a whole-segment prefix of path.
//
// This reproduces the table in the HTTPPathModifier doc comment: with prefix
// /foo, "/foo/bar" -> repl+"/bar", "/foo/" -> repl+"/", "/foo" -> repl, and
// an empty result becomes "/".
func replacePrefix(path, p, repl string) (string, bool) {
	if !hasSegmentPrefix(path, p) {
		return path, false
	}
	out := repl + path[len(p):]
	if out == "" {
		out = "/"
	}
	return out, true
}

// hasSegmentPrefix reports whether p (trimmed) is a prefix of path that ends
// on a segment boundary: /foo matches /foo, /foo/ and /foo/bar, not /foobar.
func hasSegmentPrefix(path, p string) bool {
	if !strings.HasPrefix(path, p) {
		return false
	}
	return len(path) == len(p) || path[len(p)] == '/'
}
