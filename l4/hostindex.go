package l4

import "strings"

// hostIndex maps hostnames to values with "most specific wins" lookup: an
// exact name, then the longest matching wildcard, then the catch-all. It
// serves both levels of TLS routing: listener hosts, then route hostnames.
type hostIndex[T any] struct {
	exact map[string]T
	// wild is keyed by the wildcard without its "*", e.g. ".example.com",
	// so a lookup key is a substring of the server name.
	wild   map[string]T
	any    T
	hasAny bool
}

// normalizeHostname lowercases a hostname and drops a trailing dot, so
// configured names and SNI values compare alike.
func normalizeHostname(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// get returns the value filed under the normalized configured hostname h
// ("" or "*" is the catch-all).
func (x *hostIndex[T]) get(h string) (T, bool) {
	switch {
	case h == "" || h == "*":
		return x.any, x.hasAny
	case strings.HasPrefix(h, "*."):
		v, ok := x.wild[h[1:]]
		return v, ok
	default:
		v, ok := x.exact[h]
		return v, ok
	}
}

// put files v under the normalized configured hostname h.
func (x *hostIndex[T]) put(h string, v T) {
	switch {
	case h == "" || h == "*":
		x.any, x.hasAny = v, true
	case strings.HasPrefix(h, "*."):
		if x.wild == nil {
			x.wild = make(map[string]T)
		}
		x.wild[h[1:]] = v
	default:
		if x.exact == nil {
			x.exact = make(map[string]T)
		}
		x.exact[h] = v
	}
}

// lookup returns the most specific value for a normalized server name; ""
// (no SNI) matches only the catch-all. A wildcard needs at least one label
// in front of it, so "*.example.com" matches "a.b.example.com" but not
// "example.com", as in Gateway API.
func (x *hostIndex[T]) lookup(name string) (T, bool) {
	if name != "" {
		if v, ok := x.exact[name]; ok {
			return v, true
		}
		if len(x.wild) > 0 {
			// Leftmost dot first: the longest suffix is the most
			// specific wildcard.
			for i := 1; i < len(name); i++ {
				if name[i] != '.' {
					continue
				}
				if v, ok := x.wild[name[i:]]; ok {
					return v, true
				}
			}
		}
	}
	return x.any, x.hasAny
}
