package l4

import "sync/atomic"

// Stats is a snapshot of a listener's counters. Counters only grow; the
// Active gauges go up and down. Together they say why traffic ended, which
// the per-connection log line says for one connection.
type Stats struct {
	// Accepted counts accepted TCP connections, or created UDP sessions.
	Accepted uint64
	// Active is the number of open TCP/TLS connections.
	Active int64
	// NoRoute counts connections (or UDP datagrams opening a session)
	// that matched no route: unknown SNI, or no route attached.
	NoRoute uint64
	// NoBackend counts those whose route had no usable backend: no
	// positive weight, an invalid backendRef, or no endpoint.
	NoBackend uint64
	// ConnectFailed counts failed backend dials (and, for UDP, sessions
	// ended by a backend error such as ICMP port unreachable).
	ConnectFailed uint64
	// IdleTimeouts counts TCP streams ended by the idle timeout.
	IdleTimeouts uint64
	// SNIErrors counts TLS connections closed because the ClientHello was
	// malformed, too large, or not received within ClientHelloTimeout.
	SNIErrors uint64
	// HandshakeErrors counts failed TLS handshakes in Terminate mode.
	HandshakeErrors uint64
	// UDPSessionsActive is the number of live UDP sessions.
	UDPSessionsActive int64
	// UDPSessionsExpired counts UDP sessions ended by the idle timeout.
	UDPSessionsExpired uint64
	// UDPSessionsDropped counts datagrams dropped because MaxUDPSessions
	// sessions were already open.
	UDPSessionsDropped uint64
}

// counters are the live values behind Stats.
type counters struct {
	accepted, noRoute, noBackend, connectFailed atomic.Uint64
	idleTimeouts, sniErrors, handshakeErrors    atomic.Uint64
	udpExpired, udpDropped                      atomic.Uint64
	active, udpActive                           atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Accepted:           c.accepted.Load(),
		Active:             c.active.Load(),
		NoRoute:            c.noRoute.Load(),
		NoBackend:          c.noBackend.Load(),
		ConnectFailed:      c.connectFailed.Load(),
		IdleTimeouts:       c.idleTimeouts.Load(),
		SNIErrors:          c.sniErrors.Load(),
		HandshakeErrors:    c.handshakeErrors.Load(),
		UDPSessionsActive:  c.udpActive.Load(),
		UDPSessionsExpired: c.udpExpired.Load(),
		UDPSessionsDropped: c.udpDropped.Load(),
	}
}
