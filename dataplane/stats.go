package dataplane

import (
	"crypto/x509"
	"encoding/pem"
	"sort"
	"time"

	"github.com/meshgate/meshgate/healthcheck"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/l4"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/upstream"
)

// Stats is a snapshot of the data plane's gauges and counters that are
// cheaper to read on demand (a metrics scrape, the dashboard) than to
// update per request.
type Stats struct {
	// HTTP holds each HTTP listener's connection counters, by address.
	HTTP map[string]server.Stats
	// L4 holds each TCP, TLS and UDP listener's counters, by address.
	L4 map[string]L4Stats
	// Tunnels is the number of open WebSocket (Upgrade) tunnels.
	Tunnels int
	// Streams are the requests in flight by protocol ("h1", "h2", "h3"):
	// on HTTP/2 and HTTP/3 each is a stream.
	Streams map[string]int64
	// MirrorsDropped counts request copies not sent.
	MirrorsDropped uint64
	// Shedding is true while memory is over the limit; Shed counts the
	// requests turned away with 503 for it.
	Shedding bool
	Shed     uint64
	// Certificates are the served certificates and when they expire.
	Certificates []CertExpiry
	// Backends is the balancer's state of every backend (endpoints in
	// rotation, ejections, in-flight requests, circuit breaker and retry
	// budget counters), sorted by name.
	Backends []upstream.BackendStats
	// Health is the active health check status of every probed endpoint,
	// sorted by backend and address.
	Health []healthcheck.EndpointStatus
}

// L4Stats is one layer-4 listener's counters and its protocol.
type L4Stats struct {
	Protocol ir.Protocol
	l4.Stats
}

// CertExpiry is one served certificate's expiry.
type CertExpiry struct {
	// Name is where it came from ("secret/namespace/name"); Listener the
	// address it is served on.
	Name, Listener string
	NotAfter       time.Time
}

// Stats returns a snapshot of the counters.
func (d *Dataplane) Stats() Stats {
	// The balancer and the health checker guard their own state; they are
	// read before taking d.mu so a scrape never holds it while they lock.
	backends, health := d.balancer.Stats(), d.health.Status()
	d.mu.Lock()
	defer d.mu.Unlock()
	st := Stats{
		HTTP:           map[string]server.Stats{},
		L4:             map[string]L4Stats{},
		Tunnels:        d.tunnels.len(),
		MirrorsDropped: d.mirror.dropped.Load(),
		Shedding:       d.shedder.shedding.Load(),
		Shed:           d.shedder.shed.Load(),
		Certificates:   withACMECerts(d.certs, d.current.Load(), d.opts.ACME),
		Backends:       backends,
		Health:         health,
		Streams: map[string]int64{
			"h1": d.inflight[1].Load(), "h2": d.inflight[2].Load(), "h3": d.inflight[3].Load(),
		},
	}
	for addr, ll := range d.listeners {
		st.HTTP[addr] = ll.srv.Stats()
	}
	for addr, live := range d.l4 {
		st.L4[addr] = L4Stats{Protocol: live.protocol, Stats: live.srv.Stats()}
	}
	return st
}

// certExpiries reads the expiry of every certificate of cfg's listeners.
func certExpiries(cfg *ir.Config) []CertExpiry {
	var out []CertExpiry
	for _, l := range cfg.Listeners {
		for _, c := range l.Certificates {
			block, _ := pem.Decode(c.CertPEM)
			if block == nil {
				continue
			}
			leaf, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				continue
			}
			out = append(out, CertExpiry{Name: c.Name, Listener: l.Address, NotAfter: leaf.NotAfter})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Listener != out[j].Listener {
			return out[i].Listener < out[j].Listener
		}
		return out[i].Name < out[j].Name
	})
	return out
}
