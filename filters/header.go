package filters

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"

	"github.com/meshgate/meshgate/ir"
)

// HeaderModifier is a compiled Gateway API HTTPHeaderFilter, used for both
// RequestHeaderModifier and ResponseHeaderModifier.
//
// Names are canonicalized once here, so Apply indexes the header map
// directly, and each value is pre-wrapped in a one-element slice so that Set,
// and Add on an absent header, allocate nothing per request. Those slices are
// shared by every request: Apply gives them capacity 1 so any append by a
// later writer copies, but callers must not overwrite their elements in place
// (h[k][0] = ...). http.Header's own Set and Add never do.
type HeaderModifier struct {
	remove []string
	set    []headerValue
	add    []headerValue
}

// headerValue is one canonical header name with its precomputed value slice.
type headerValue struct {
	name string
	vals []string // len 1, cap 1
}

// NewHeaderModifier compiles m. It fails on a nil modifier or an empty header
// name, which the translator should never produce.
//
// The order of operations is Remove, then Set, then Add, as in Envoy (which
// Gateway API conformance is usually measured against): a name that is both
// removed and set ends up set, and a name that is both set and added ends up
// with both values.
func NewHeaderModifier(m *ir.HeaderModifier) (*HeaderModifier, error) {
	if m == nil {
		return nil, errors.New("header modifier: nil config")
	}
	hm := &HeaderModifier{
		remove: make([]string, 0, len(m.Remove)),
		set:    make([]headerValue, 0, len(m.Set)),
		add:    make([]headerValue, 0, len(m.Add)),
	}
	for i, name := range m.Remove {
		if name == "" {
			return nil, fmt.Errorf("header modifier: remove[%d]: empty header name", i)
		}
		hm.remove = append(hm.remove, textproto.CanonicalMIMEHeaderKey(name))
	}
	var err error
	if hm.set, err = compileHeaders("set", m.Set, hm.set); err != nil {
		return nil, err
	}
	if hm.add, err = compileHeaders("add", m.Add, hm.add); err != nil {
		return nil, err
	}
	return hm, nil
}

// Edits reports whether m removes, sets or adds any of names, which must
// be in canonical form: code that reads those fields before the filter
// runs (the forwarding fields, see dataplane) knows then whether it may.
func (m *HeaderModifier) Edits(names ...string) bool {
	for _, n := range names {
		for _, r := range m.remove {
			if r == n {
				return true
			}
		}
		for _, h := range m.set {
			if h.name == n {
				return true
			}
		}
		for _, h := range m.add {
			if h.name == n {
				return true
			}
		}
	}
	return false
}

// compileHeaders canonicalizes names and wraps values for NewHeaderModifier.
func compileHeaders(op string, hs []ir.Header, out []headerValue) ([]headerValue, error) {
	for i, h := range hs {
		if h.Name == "" {
			return nil, fmt.Errorf("header modifier: %s[%d]: empty header name", op, i)
		}
		vals := []string{h.Value}
		out = append(out, headerValue{
			name: textproto.CanonicalMIMEHeaderKey(h.Name),
			vals: vals[:1:1],
		})
	}
	return out, nil
}

// Apply edits h in place: Remove deletes the header, Set replaces all its
// values with one, Add appends a value after any existing ones (sent as a
// repeated header, which RFC 9110 makes equivalent to a comma-joined value).
// A nil modifier does nothing.
func (m *HeaderModifier) Apply(h http.Header) {
	if m == nil || h == nil {
		return
	}
	for _, name := range m.remove {
		delete(h, name)
	}
	for _, s := range m.set {
		h[s.name] = s.vals
	}
	for _, a := range m.add {
		if old := h[a.name]; len(old) > 0 {
			h[a.name] = append(old, a.vals[0])
		} else {
			h[a.name] = a.vals
		}
	}
}

var _ HeaderEditor = (*HeaderModifier)(nil)
