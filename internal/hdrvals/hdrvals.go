// Package hdrvals hands out the []string slices header maps hold, from
// one backing array per HTTP/1.1 connection that is reused request after
// request. A proxied request otherwise allocates a value slice for the
// parsed request header, another for the forwarding headers the gateway
// adds and a third for the response's Content-Length; with an Arena those
// come from memory the connection already has.
//
// A slice taken from an Arena is valid until the request it was taken for
// has been answered: the server resets the Arena before it reads the next
// request. That is the net/http contract already (a handler must not use
// the request or response after ServeHTTP returns); code that keeps a
// header beyond that, such as a mirrored request sent in the background,
// must copy it.
package hdrvals

import "net/http"

// Arena is a reusable backing store for header value slices. The zero
// value is ready to use; an Arena is owned by one connection and is not
// safe for concurrent use.
type Arena struct {
	buf  []string
	used int
}

// minArena is the smallest backing array: a typical request head and
// the few values the gateway adds fit in it.
const minArena = 32

// Take returns n zeroed strings with capacity n, so an append to the
// returned slice copies instead of writing into a neighbour's values.
func (a *Arena) Take(n int) []string {
	if a.used+n > len(a.buf) {
		// Slices handed out earlier keep the old array alive until the
		// request ends; the new one serves the rest of this request and
		// the requests after it.
		a.buf = make([]string, max(2*len(a.buf), n, minArena))
		a.used = 0
	}
	s := a.buf[a.used : a.used+n : a.used+n]
	a.used += n
	return s
}

// Reset makes the whole array available again and drops the strings it
// held, so a finished request's header does not stay reachable.
func (a *Arena) Reset() {
	clear(a.buf[:a.used])
	a.used = 0
}

// Release drops the backing array, for a connection gone idle.
func (a *Arena) Release() { *a = Arena{} }

// Values is implemented by response writers that have an Arena for the
// request being served: Meshgate's HTTP/1.1 connections and HTTP/2
// streams.
type Values interface {
	// HeaderValues returns n strings valid until the request is answered.
	HeaderValues(n int) []string
}

// Source is implemented by response writers whose connection has an
// Arena and a memo for the request being served (Meshgate's HTTP/1.1
// server; an HTTP/2 connection's streams run concurrently, so they share
// no memo slot).
type Source interface {
	Values
	// ConnMemo returns the connection's memo slot: one value the request
	// handler keeps for the connection's next requests (what it derived
	// from the peer, such as the forwarding headers). The server empties
	// it when the connection parks idle.
	ConnMemo() *any
}

// Take returns n strings from the Arena of w, or of a writer w wraps
// (found through Unwrap, as http.ResponseController does), else a fresh
// slice (HTTP/3 streams, and writers that are not Meshgate's).
func Take(w http.ResponseWriter, n int) []string {
	for w != nil {
		switch v := w.(type) {
		case Values:
			return v.HeaderValues(n)
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			w = nil
		}
	}
	return make([]string, n)
}

// Find returns the Source w is or wraps, or nil: HTTP/2 and HTTP/3
// streams share no memo per connection. A caller that wants both values
// and the memo looks up once. (Find and Take spell out the same loop: a
// generic one asserted through the runtime's slow path, about 300
// instructions a request.)
func Find(w http.ResponseWriter) Source {
	for w != nil {
		switch v := w.(type) {
		case Source:
			return v
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return nil
		}
	}
	return nil
}
