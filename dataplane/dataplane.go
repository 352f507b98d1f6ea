// Package dataplane applies compiled configs to running listeners. Apply
// builds everything a config needs (route tables, certificate stores, new
// sockets) before it changes anything, then swaps it in: a config that fails
// to build leaves the running one untouched, and sockets whose address stays
// are never closed. A listener whose socket cannot be bound (address not on
// this host, port taken) does not hold the rest back: it is left unbound and
// reported, and a later Apply tries it again.
package dataplane

import (
	"context"
	ctls "crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/acme"
	"github.com/meshgate/meshgate/auth"
	"github.com/meshgate/meshgate/healthcheck"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/proxy"
	"github.com/meshgate/meshgate/ratelimit"
	"github.com/meshgate/meshgate/router"
	"github.com/meshgate/meshgate/server"
	mgtls "github.com/meshgate/meshgate/tls"
	"github.com/meshgate/meshgate/upstream"
)

// Options configure a Dataplane.
type Options struct {
	// Limits are the downstream safety limits of every listener.
	Limits server.Limits
	// Forwarded decides whether clients' X-Forwarded-* headers are trusted.
	Forwarded proxy.ForwardedPolicy
	// DrainTimeout bounds how long a removed listener lets in-flight
	// requests finish; 10 s when zero.
	DrainTimeout time.Duration
	// Tunnels bound WebSocket tunnels.
	Tunnels TunnelLimits
	// DisableHTTP3 leaves HTTPS listeners without their UDP HTTP/3 socket.
	DisableHTTP3 bool
	// HTTP3 are the HTTP/3 settings (0-RTT).
	HTTP3 server.H3Options
	// Underscores is what happens to request headers with "_" in their
	// name; drop when empty.
	Underscores UnderscorePolicy
	// MemoryLimit makes new requests get 503 while the process holds more
	// memory than this many bytes; 0 turns shedding off.
	MemoryLimit uint64
	// L4IdleTimeout closes TCP/TLS connections with no traffic for this
	// long (1 h when zero) and UDP sessions (60 s when zero).
	L4IdleTimeout time.Duration
	// Observers receive a record of every request (metrics, access log,
	// dashboard) and may trace it.
	Observers obs.Observers
	// Log receives request failures and listener events.
	Log *slog.Logger
	// DebugHeaderFrom are the client networks that may ask for the
	// x-meshgate-debug response header (empty: nobody).
	DebugHeaderFrom []netip.Prefix
	// Limiter counts rate limits; global limits need its Redis. Nil
	// gives a Dataplane its own local-only limiter.
	Limiter *ratelimit.Limiter
	// ACME obtains, renews and serves the certificates of HTTPS listener
	// hosts marked ACME and answers their validations; nil refuses
	// configs with such hosts.
	ACME *acme.Manager
}

// Dataplane runs the listeners of the current config.
type Dataplane struct {
	opts      Options
	forwarder *proxy.Forwarder
	balancer  upstream.Balancer
	// health probes the endpoints of backends with a health check and
	// tells the balancer.
	health healthcheck.Checker

	mu        sync.Mutex // serializes Apply and Shutdown
	listeners map[string]*liveListener
	l4        map[string]liveL4 // TCP, TLS and UDP sockets by address
	tunnels   tunnelSet
	mirror    *mirrorer
	certs     []CertExpiry // of the config in force
	shedder   loadShedder
	stopShed  context.CancelFunc
	// inflight counts requests being served by HTTP major version (1-3);
	// inflight[0] counts the requests started so far (activity).
	inflight [4]atomic.Int64
	current  atomic.Pointer[ir.Config]
	bound    atomic.Int64 // sockets of the config in force that are bound
	applied  atomic.Bool
	stopping atomic.Bool
	draining sync.WaitGroup
	// tickets are the session ticket keys of every HTTPS listener, kept
	// across reloads (tls.TicketKeys).
	tickets *mgtls.TicketKeys
	// ocsp staples the Secret and file certificates (tls/ocsp.go).
	ocsp mgtls.Stapler
	// authConns are the connections to external authorization services,
	// shared by the configurations that use them (auth.Conns).
	authConns auth.Conns
	// trim returns the garbage of building a config to the OS once
	// reloads settle (trim.go).
	trim applyTrim
}

type liveListener struct {
	srv     *server.Listener
	h3      *server.H3Listener // HTTPS only; nil when off or its UDP port was taken
	handler *listenerHandler
	certs   atomic.Pointer[mgtls.Store]
}

// New returns a Dataplane with no listeners.
func New(opts Options) *Dataplane {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	if opts.Underscores == "" {
		opts.Underscores = UnderscoresDrop
	}
	if opts.Tunnels.RemovedRouteGrace <= 0 {
		opts.Tunnels.RemovedRouteGrace = 30 * time.Second
	}
	if opts.Limiter == nil {
		opts.Limiter = &ratelimit.Limiter{}
	}
	d := &Dataplane{opts: opts, forwarder: proxy.NewForwarder(), listeners: map[string]*liveListener{}, l4: map[string]liveL4{}, tickets: mgtls.NewTicketKeys(nil)}
	d.health.Reporter = &d.balancer
	d.health.Log = opts.Log
	d.mirror = newMirrorer(d.forwarder, &d.balancer, opts.Log)
	d.shedder.limit = opts.MemoryLimit
	ctx, cancel := context.WithCancel(context.Background())
	d.stopShed = cancel
	go d.shedder.run(ctx, 250*time.Millisecond)
	d.ocsp.Log = opts.Log
	go d.ocsp.Run(ctx)
	d.trim.activity = d.activity
	d.trim.log = opts.Log
	return d
}

// activity reports how many requests the gateway has started and whether
// one is in flight; memory trims wait for it to go quiet (trim.go).
func (d *Dataplane) activity() (started int64, busy bool) {
	return d.inflight[0].Load(), d.inflight[1].Load()+d.inflight[2].Load()+d.inflight[3].Load() > 0
}

// prepared is one listener of a new config, fully built but not yet live.
type prepared struct {
	l     *ir.Listener
	table *router.Table
	certs *mgtls.Store
	// clientAuth is the HTTPS listener's client certificate policy.
	clientAuth *mgtls.ClientAuth
	// hostTLS are the HTTPS listener's per-host TLS options.
	hostTLS *mgtls.HostOptions
	// security is the listener's compiled SecurityPolicies, nil for none.
	security *security
	// acmeNames are the HTTPS listener's hostnames served from ACME.
	acmeNames map[string]bool
}

// Apply makes cfg the served config. On error (a listener that does not
// compile, a certificate that does not load, an address switching between
// HTTP and a layer-4 protocol) nothing changed. A new address that cannot
// be bound is not an error: the rest of cfg is applied, that listener
// serves nothing, and it is returned in unbound with its bind error.
// Applying the same cfg again binds what has become bindable since.
func (d *Dataplane) Apply(cfg *ir.Config) (unbound []ir.Unbound, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()

	var httpLs, l4Ls []*ir.Listener
	for _, l := range cfg.Listeners {
		if isL4(l.Protocol) {
			l4Ls = append(l4Ls, l)
		} else {
			httpLs = append(httpLs, l)
		}
	}
	l4Preps, err := prepareL4(l4Ls)
	if err != nil {
		return nil, err
	}
	// An address that changes between HTTP and a layer-4 protocol would
	// need its socket closed before the new one can bind, which would
	// break the "old config keeps serving on failure" rule.
	for _, l := range httpLs {
		if _, ok := d.l4[l.Address]; ok {
			return nil, fmt.Errorf("listener %s: %s is serving %s; remove that listener in one reload, then add this one", l.Name, l.Address, d.l4[l.Address].protocol)
		}
	}
	for _, l := range l4Ls {
		if _, ok := d.listeners[l.Address]; ok {
			return nil, fmt.Errorf("listener %s: %s is serving HTTP; remove that listener in one reload, then add this one", l.Name, l.Address)
		}
		if live, ok := d.l4[l.Address]; ok && !sameSocketKind(live.protocol, l.Protocol) {
			return nil, fmt.Errorf("listener %s: %s is serving %s; remove that listener in one reload, then add this one", l.Name, l.Address, live.protocol)
		}
	}

	preps := make([]prepared, 0, len(httpLs))
	for _, l := range httpLs {
		table, err := router.Compile(l)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		p := prepared{l: l, table: table}
		if p.security, err = compileSecurity(l, &d.authConns); err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		if l.Protocol == ir.ProtocolHTTPS {
			p.acmeNames = acmeNames(l)
			if len(p.acmeNames) > 0 && d.opts.ACME == nil {
				return nil, fmt.Errorf("listener %s: ACME certificates asked for, but the gateway runs without ACME", l.Name)
			}
			if len(l.Certificates) == 0 && len(p.acmeNames) == 0 {
				return nil, fmt.Errorf("listener %s: HTTPS without certificates", l.Name)
			}
			if p.certs, err = mgtls.NewStore(l.Certificates); err != nil {
				return nil, fmt.Errorf("listener %s: %w", l.Name, err)
			}
			p.certs.Staple(&d.ocsp)
			if p.clientAuth, err = mgtls.NewClientAuth(l.ClientAuth); err != nil {
				return nil, fmt.Errorf("listener %s: %w", l.Name, err)
			}
			if p.hostTLS, err = mgtls.NewHostOptions(l.Hosts); err != nil {
				return nil, fmt.Errorf("listener %s: %w", l.Name, err)
			}
		}
		preps = append(preps, p)
	}

	// Bind new addresses first. One that fails is left out of this
	// config (failed) and reported; the others go ahead.
	bound := map[string]*liveListener{}
	failed := map[string]bool{}
	for _, p := range preps {
		if _, ok := d.listeners[p.l.Address]; ok {
			continue
		}
		ll := &liveListener{handler: &listenerHandler{
			addr: p.l.Address, acme: d.opts.ACME, forwarder: d.forwarder, balancer: &d.balancer, forwarded: &d.opts.Forwarded,
			tunnels: &d.tunnels, tunnelLimits: d.opts.Tunnels, mirror: d.mirror, obs: &d.opts.Observers, inflight: &d.inflight, underscores: d.opts.Underscores, shedder: &d.shedder, bodyIdle: d.opts.Limits.WithDefaults().BodyIdleTimeout, log: d.opts.Log,
			limiter: d.opts.Limiter, debugFrom: d.opts.DebugHeaderFrom,
		}}
		srv, err := server.Listen(p.l.Address, ll.handler, d.opts.Limits, d.opts.Log)
		if err != nil {
			failed[p.l.Address] = true
			unbound = append(unbound, ir.Unbound{Listener: p.l, Err: fmt.Errorf("bind %s/%s: %w", p.l.Protocol, p.l.Address, err)})
			continue
		}
		srv.SetActivity(d.activity)
		ll.srv = srv
		bound[p.l.Address] = ll
	}

	l4Bound, l4Unbound := d.bindL4(l4Preps)
	for _, u := range l4Unbound {
		failed[u.Listener.Address] = true
	}
	unbound = append(unbound, l4Unbound...)

	// HTTP/3 rides along with HTTPS. Its UDP socket is an extra: when it
	// cannot be bound the listener still serves HTTP/1.1 and HTTP/2, and no
	// Alt-Svc sends clients looking for it.
	h3s := map[string]*server.H3Listener{}
	for _, p := range preps {
		if d.opts.DisableHTTP3 || p.certs == nil || failed[p.l.Address] {
			continue
		}
		ll := d.listeners[p.l.Address]
		if ll == nil {
			ll = bound[p.l.Address]
		}
		if ll.h3 != nil {
			continue
		}
		h3, err := server.ListenH3(ll.srv.Addr().String(), ll.handler, d.opts.Limits, d.opts.HTTP3, d.opts.Log)
		if err != nil {
			d.opts.Log.Warn("HTTP/3 not served: UDP bind failed", "address", p.l.Address, "error", err.Error())
			continue
		}
		h3s[p.l.Address] = h3
	}

	// Swap: from here on nothing fails.
	keep := map[string]bool{}
	for _, p := range preps {
		if failed[p.l.Address] {
			continue
		}
		keep[p.l.Address] = true
		ll := d.listeners[p.l.Address]
		isNew := ll == nil
		if isNew {
			ll = bound[p.l.Address]
			d.listeners[p.l.Address] = ll
		}
		ll.handler.setSecurity(p.security)
		ll.srv.SetProxyProtocol(p.l.ProxyProtocol)
		ll.handler.setIdentity(p.clientAuth)
		ll.handler.table.Store(p.table)
		ll.handler.hostTLS.Store(p.hostTLS)
		if p.certs != nil {
			ll.certs.Store(p.certs)
			ll.srv.SetTLS(d.serverTLS(p, ll))
		} else {
			ll.certs.Store(nil)
			ll.srv.SetTLS(nil)
		}
		if h3 := h3s[p.l.Address]; h3 != nil {
			ll.h3 = h3
			h3.SetTLS(d.serverTLS(p, ll))
			h3.Serve()
			alt := server.AltSvc(h3.Addr().(*net.UDPAddr).Port)
			ll.handler.altSvc.Store(&alt)
			d.opts.Log.Info("HTTP/3 listener started", "address", h3.Addr().String())
		} else if ll.h3 != nil && p.certs != nil {
			ll.h3.SetTLS(d.serverTLS(p, ll))
		} else if ll.h3 != nil {
			// The address now serves cleartext HTTP: no more HTTP/3.
			ll.handler.altSvc.Store(nil)
			d.stopH3(ll.h3)
			ll.h3 = nil
		}
		if isNew {
			ll.srv.Serve()
			d.opts.Log.Info("listener started", "address", p.l.Address, "protocol", p.l.Protocol)
		}
	}
	for addr, ll := range d.listeners {
		if keep[addr] {
			continue
		}
		delete(d.listeners, addr)
		d.draining.Add(1)
		go func() {
			defer d.draining.Done()
			ctx, cancel := context.WithTimeout(context.Background(), d.opts.DrainTimeout)
			defer cancel()
			if err := ll.srv.Shutdown(ctx); err != nil {
				d.opts.Log.Warn("listener drain cut short", "address", addr, "error", err)
			}
			if ll.h3 != nil {
				ll.h3.Shutdown(ctx)
			}
			ll.handler.setSecurity(nil)
			d.opts.Log.Info("listener stopped", "address", addr)
		}()
	}
	d.swapL4(l4Preps, l4Bound, failed)
	routes := map[string]map[string]bool{}
	for _, p := range preps {
		if failed[p.l.Address] {
			continue
		}
		names := map[string]bool{}
		for _, h := range p.l.Hosts {
			for _, r := range h.Routes {
				names[r.Name] = true
			}
		}
		routes[p.l.Address] = names
	}
	d.tunnels.reconcile(routes, d.opts.Tunnels.RemovedRouteGrace, d.opts.Log)
	backends, limits := configBackends(cfg)
	d.balancer.Update(backends)
	d.health.Update(context.Background(), backends)
	d.opts.Limiter.Update(limits)
	d.certs = certExpiries(cfg)
	if d.opts.ACME != nil {
		// After the swap, so the listeners answering the CA's
		// validations are up.
		d.opts.ACME.Sync(acmeHosts(cfg))
	}
	d.current.Store(cfg)
	d.bound.Store(int64(len(d.listeners) + len(d.l4)))
	d.applied.Store(true)
	d.trim.applied()
	return unbound, nil
}

// stopH3 drains an HTTP/3 listener that is no longer wanted.
func (d *Dataplane) stopH3(h3 *server.H3Listener) {
	d.draining.Add(1)
	go func() {
		defer d.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), d.opts.DrainTimeout)
		defer cancel()
		h3.Shutdown(ctx)
	}()
}

// ListenerTable is one HTTP listener's route table, for the admin API.
type ListenerTable struct {
	Address  string
	Protocol ir.Protocol
	Table    *router.Table
}

// Tables returns the route table of every HTTP listener, by address.
func (d *Dataplane) Tables() []ListenerTable {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]ListenerTable, 0, len(d.listeners))
	for addr, ll := range d.listeners {
		proto := ir.ProtocolHTTP
		if ll.certs.Load() != nil {
			proto = ir.ProtocolHTTPS
		}
		out = append(out, ListenerTable{Address: addr, Protocol: proto, Table: ll.handler.table.Load()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// Config returns the config in force, nil before the first Apply. It must
// not be modified.
func (d *Dataplane) Config() *ir.Config { return d.current.Load() }

// Ready reports whether a config has been applied and serves something:
// at least one of its listeners is bound, or it has none. A listener that
// could not be bound while others are is reported in the statuses and logs
// (and retried), not by taking the whole replica out of its load balancer;
// a replica that binds none of its listeners serves nothing and is not
// ready.
func (d *Dataplane) Ready() bool {
	if !d.applied.Load() || d.stopping.Load() {
		return false
	}
	cfg := d.current.Load()
	return len(cfg.Listeners) == 0 || d.bound.Load() > 0
}

// Stopping makes Ready false for good, before the listeners close, so a
// load balancer stops sending new connections while they are still served.
func (d *Dataplane) Stopping() { d.stopping.Store(true) }

// Addresses lists the bound addresses, for logs and tests.
func (d *Dataplane) Addresses() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.listeners))
	for _, ll := range d.listeners {
		out = append(out, ll.srv.Addr().String())
	}
	return out
}

// Shutdown stops accepting on every listener and waits for in-flight
// requests until ctx ends.
func (d *Dataplane) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trim.stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for addr, ll := range d.listeners {
		if ll.h3 != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := ll.h3.Shutdown(ctx); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("listener %s HTTP/3: %w", addr, err))
					mu.Unlock()
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ll.srv.Shutdown(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("listener %s: %w", addr, err))
				mu.Unlock()
			}
		}()
	}
	for addr, live := range d.l4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := live.srv.Shutdown(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("listener %s: %w", addr, err))
				mu.Unlock()
			}
		}()
	}
	// WebSockets are long-lived: they get the drain time but for a last
	// half second, then a close 1001 ("going away") so clients reconnect
	// elsewhere at once, before the listeners cut what is left.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tctx := ctx
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			tctx, cancel = context.WithDeadline(ctx, dl.Add(-500*time.Millisecond))
			defer cancel()
		}
		d.tunnels.drain(tctx)
	}()
	wg.Wait()
	d.draining.Wait()
	d.listeners = map[string]*liveListener{}
	d.l4 = map[string]liveL4{}
	d.stopShed()
	d.health.Close()
	d.forwarder.Close()
	return errors.Join(errs...)
}

// configBackends lists every distinct backend of cfg (route targets, mirror
// targets, layer-4 targets) and every rate limit, for the state that
// outlives reloads: balancing, health checks, limiter buckets.
func configBackends(cfg *ir.Config) ([]*ir.Backend, []*ir.RateLimit) {
	seen := map[*ir.Backend]bool{}
	var out []*ir.Backend
	add := func(b *ir.Backend) {
		if b != nil && !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	seenRL := map[*ir.RateLimit]bool{}
	var limits []*ir.RateLimit
	for _, l := range cfg.Listeners {
		for _, h := range l.Hosts {
			for _, r := range h.Routes {
				for _, b := range r.Backends {
					add(b.Target)
				}
				for _, f := range r.Filters {
					if f.RequestMirror != nil {
						add(f.RequestMirror.Target)
					}
				}
				for _, rl := range r.RateLimits {
					if !seenRL[rl] {
						seenRL[rl] = true
						limits = append(limits, rl)
					}
				}
			}
			for _, r := range h.L4Routes {
				for _, b := range r.Backends {
					add(b.Target)
				}
			}
		}
	}
	return out, limits
}

// serverTLS is an HTTPS listener's TLS config: its certificates, client
// certificate policy, the session ticket keys of that policy, ACME, then
// the per-host options (last, as their variants copy the rest).
func (d *Dataplane) serverTLS(p prepared, ll *liveListener) *ctls.Config {
	cfg := p.clientAuth.Apply(mgtls.ServerConfig(ll.certs.Load))
	cfg = d.tickets.Apply(cfg, p.clientAuth.Fingerprint())
	return p.hostTLS.Apply(withACME(cfg, d.opts.ACME, p.acmeNames))
}
