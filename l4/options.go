package l4

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/upstream"
)

// Picker chooses the endpoint of a backend for one connection or UDP
// session. *upstream.Balancer satisfies it; the caller owns it so that its
// state (balancing, health, ejections) is shared with the HTTP data plane
// and outlives reloads. Pick fails when no endpoint may take traffic; the
// returned Pick is Done once the dial's result is known.
type Picker interface {
	Pick(b *ir.Backend, in upstream.PickInput) (upstream.Pick, error)
}

// Options configure a Listener or UDPListener. The zero value of a field
// means the default named in its comment.
type Options struct {
	// Log receives one line per ended connection or UDP session
	// (Debug for ordinary ends, Warn for failures). slog.Default() if nil.
	Log *slog.Logger
	// Picker chooses endpoints; a private *upstream.Balancer if nil.
	Picker Picker
	// ConnectTimeout bounds dialing a backend; 5 s.
	ConnectTimeout time.Duration
	// IdleTimeout ends a TCP stream after no bytes moved in either
	// direction for this long (1 h), or a UDP session after no datagram
	// in either direction (60 s).
	IdleTimeout time.Duration
	// ClientHelloTimeout bounds reading the ClientHello on TLS listeners,
	// and completing the handshake in Terminate mode; 10 s.
	ClientHelloTimeout time.Duration
	// MaxUDPSessions bounds concurrent UDP sessions; datagrams from new
	// clients beyond it are dropped and counted; 10000.
	MaxUDPSessions int
	// DialContext dials backends ("tcp" or "udp"); a net.Dialer if nil.
	// Tests use it to observe or fail dials.
	DialContext func(ctx context.Context, network, address string) (net.Conn, error)
}

// Defaults.
const (
	defaultConnectTimeout     = 5 * time.Second
	defaultTCPIdleTimeout     = time.Hour
	defaultUDPIdleTimeout     = 60 * time.Second
	defaultClientHelloTimeout = 10 * time.Second
	defaultMaxUDPSessions     = 10000
)

// withDefaults fills unset fields; udp selects the UDP idle timeout.
func (o Options) withDefaults(udp bool) Options {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Picker == nil {
		o.Picker = new(upstream.Balancer)
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = defaultConnectTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = defaultTCPIdleTimeout
		if udp {
			o.IdleTimeout = defaultUDPIdleTimeout
		}
	}
	if o.ClientHelloTimeout <= 0 {
		o.ClientHelloTimeout = defaultClientHelloTimeout
	}
	if o.MaxUDPSessions <= 0 {
		o.MaxUDPSessions = defaultMaxUDPSessions
	}
	if o.DialContext == nil {
		var d net.Dialer
		o.DialContext = d.DialContext
	}
	return o
}
