// Package l4 is the layer-4 data plane: it serves the TCP, TLS and UDP
// listeners of an ir.Config, relaying TCPRoute, TLSRoute and UDPRoute
// traffic to backends without looking at what the bytes mean.
//
// The shape follows the HTTP data plane: Compile turns an ir.Listener into
// an immutable *Table; a Listener or UDPListener owns one socket and reads
// the current Table through an atomic pointer, so a reload (SetTable) only
// changes where new connections go. Connections and UDP sessions already
// relaying keep the backend they were given: a reload never closes them.
//
// Per connection the work is: pick a route (the only TCP route, or by SNI for
// TLS), pick a backend by weight, pick an endpoint through the caller's
// Picker, dial, relay. Every connection ends for one logged reason, and the
// reasons are counted in Stats so that logs and metrics can say why traffic
// stopped.
//
// Files: table.go, route.go and hostindex.go compile routing; listener.go
// accepts streams and stream.go decides what to do with each; relay.go moves
// bytes; clienthello.go reads SNI without terminating TLS; udp.go and
// udpsession.go are the datagram side.
package l4

import (
	"context"
	"net"
)

// Server is what Listener and UDPListener have in common, so the data plane
// can keep one map of layer-4 sockets whatever their protocol.
type Server interface {
	// SetTable routes new connections (or UDP sessions) with t.
	SetTable(t *Table)
	// Serve starts serving in the background and returns at once.
	Serve()
	// Addr is the bound address.
	Addr() net.Addr
	// Shutdown stops accepting, lets open connections finish until ctx
	// ends, then closes what is left.
	Shutdown(ctx context.Context) error
	// Stats returns a snapshot of the counters.
	Stats() Stats
}

var (
	_ Server = (*Listener)(nil)
	_ Server = (*UDPListener)(nil)
)
