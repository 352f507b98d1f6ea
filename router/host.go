package router

import "strings"

// maxHost bounds the request host kept on the stack for lookups. DNS names
// are at most 253 characters, so a longer host cannot equal any configured
// hostname or wildcard and only catch-alls can match it.
const maxHost = 256

// requestHost copies the host of a Host header value into buf, lowercased,
// without its port or a trailing dot, and returns the used part of buf. ok is
// false when the host does not fit, in which case only catch-alls apply.
//
// Working in a caller-provided array lets Match look hosts up in maps with
// m[string(b)], which Go compiles without allocating.
func requestHost(h string, buf *[maxHost]byte) (b []byte, ok bool) {
	h = stripPort(h)
	h = strings.TrimSuffix(h, ".")
	if len(h) > len(buf) {
		return nil, false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(h)], true
}

// stripPort drops a ":port" suffix, and the brackets of an IPv6 literal.
func stripPort(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}

// normalizeHostname lowercases a configured hostname and drops a trailing
// dot, to compare like requestHost's output.
func normalizeHostname(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// hostIndex maps hostnames to values with "most specific wins" lookup: an
// exact name, then the longest matching wildcard, then the catch-all. Both
// the listener-host level and the per-listener route level use it.
type hostIndex[T any] struct {
	exact map[string]T
	// wild is keyed by the wildcard without its "*", e.g. ".example.com",
	// so a lookup key is a substring of the request host: no allocation.
	wild   map[string]T
	any    T
	hasAny bool
}

// get returns the value filed under the configured hostname h ("" or "*" is
// the catch-all). It is for Compile, not for request hosts.
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

// put files v under the configured hostname h.
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

// lookup returns the most specific value for a request host from
// requestHost. fits is requestHost's ok: when false only the catch-all can
// match.
func (x *hostIndex[T]) lookup(host []byte, fits bool) (T, bool) {
	if fits {
		if v, ok := x.exact[string(host)]; ok {
			return v, true
		}
		for i := x.nextWild(host, 0); i >= 0; i = x.nextWild(host, i+1) {
			if v, ok := x.wild[string(host[i:])]; ok {
				return v, true
			}
		}
	}
	return x.any, x.hasAny
}

// nextWild returns the index of the next "." in host at or after from that
// can start a wildcard suffix, longest suffix first, or -1. A wildcard needs
// at least one label before it, so index 0 never qualifies. It returns -1 at
// once when there are no wildcards, keeping exact-only tables cheap.
func (x *hostIndex[T]) nextWild(host []byte, from int) int {
	if len(x.wild) == 0 {
		return -1
	}
	if from < 1 {
		from = 1
	}
	for i := from; i < len(host); i++ {
		if host[i] == '.' {
			return i
		}
	}
	return -1
}
