// Package filters holds the Gateway API HTTPRoute filters, compiled once from
// their ir form so that the per-request work is plain field reads and the
// header or URL edits themselves.
//
// Each filter is built by a New* constructor at router.Compile time. The
// compiled values are immutable and safe for concurrent use: a request may
// keep using a filter from an older table while a newer table is swapped in.
// The package depends only on ir and the standard library, so the proxy and
// the router can share it without import cycles.
package filters

import "net/http"

// HeaderEditor edits a header map in place. Both request and response header
// modifiers satisfy it, so the proxy can hold a chain of them without caring
// which direction they were configured for.
type HeaderEditor interface {
	Apply(h http.Header)
}

// RequestEditor edits the request forwarded upstream. matchedPrefix is the
// path value the route matched on (see URLRewrite.Apply).
type RequestEditor interface {
	Apply(out *http.Request, matchedPrefix string)
}

// Responder answers a request itself instead of forwarding it.
type Responder interface {
	Serve(w http.ResponseWriter, r *http.Request, matchedPrefix string)
}
