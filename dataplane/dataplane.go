// Package dataplane applies compiled configs to running listeners. Apply
// builds everything a config needs (route tables, certificate stores, new
// sockets) before it changes anything, then swaps it in: a config that fails
// to build leaves the running one untouched, and sockets whose address stays
// are never closed.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/proxy"
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
	// Log receives request failures and listener events.
	Log *slog.Logger
}

// Dataplane runs the listeners of the current config.
type Dataplane struct {
	opts      Options
	forwarder *proxy.Forwarder
	balancer  upstream.Balancer

	mu        sync.Mutex // serializes Apply and Shutdown
	listeners map[string]*liveListener
	tunnels   tunnelSet
	applied   atomic.Bool
	draining  sync.WaitGroup
}

type liveListener struct {
	srv     *server.Listener
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
	if opts.Tunnels.RemovedRouteGrace <= 0 {
		opts.Tunnels.RemovedRouteGrace = 30 * time.Second
	}
	return &Dataplane{opts: opts, forwarder: proxy.NewForwarder(), listeners: map[string]*liveListener{}}
}

// prepared is one listener of a new config, fully built but not yet live.
type prepared struct {
	l     *ir.Listener
	table *router.Table
	certs *mgtls.Store
}

// Apply makes cfg the served config. On error nothing changed, except that
// an error binding a new address leaves the old config serving too.
func (d *Dataplane) Apply(cfg *ir.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()

	preps := make([]prepared, 0, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		table, err := router.Compile(l)
		if err != nil {
			return fmt.Errorf("listener %s: %w", l.Name, err)
		}
		p := prepared{l: l, table: table}
		if l.Protocol == ir.ProtocolHTTPS {
			if len(l.Certificates) == 0 {
				return fmt.Errorf("listener %s: HTTPS without certificates", l.Name)
			}
			if p.certs, err = mgtls.NewStore(l.Certificates); err != nil {
				return fmt.Errorf("listener %s: %w", l.Name, err)
			}
		}
		preps = append(preps, p)
	}

	// Bind new addresses first; if one fails, undo and keep the old config.
	bound := map[string]*liveListener{}
	for _, p := range preps {
		if _, ok := d.listeners[p.l.Address]; ok {
			continue
		}
		ll := &liveListener{handler: &listenerHandler{
			addr: p.l.Address, forwarder: d.forwarder, balancer: &d.balancer, forwarded: &d.opts.Forwarded,
			tunnels: &d.tunnels, tunnelLimits: d.opts.Tunnels, log: d.opts.Log,
		}}
		srv, err := server.Listen(p.l.Address, ll.handler, d.opts.Limits, d.opts.Log)
		if err != nil {
			for _, b := range bound {
				b.srv.Shutdown(context.Background())
			}
			return fmt.Errorf("listener %s: bind %s: %w", p.l.Name, p.l.Address, err)
		}
		ll.srv = srv
		bound[p.l.Address] = ll
	}

	// Swap: from here on nothing fails.
	keep := map[string]bool{}
	for _, p := range preps {
		keep[p.l.Address] = true
		ll := d.listeners[p.l.Address]
		isNew := ll == nil
		if isNew {
			ll = bound[p.l.Address]
			d.listeners[p.l.Address] = ll
		}
		ll.handler.table.Store(p.table)
		if p.certs != nil {
			ll.certs.Store(p.certs)
			ll.srv.SetTLS(mgtls.ServerConfig(ll.certs.Load))
		} else {
			ll.srv.SetTLS(nil)
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
			d.opts.Log.Info("listener stopped", "address", addr)
		}()
	}
	routes := map[string]map[string]bool{}
	for _, p := range preps {
		names := map[string]bool{}
		for _, h := range p.l.Hosts {
			for _, r := range h.Routes {
				names[r.Name] = true
			}
		}
		routes[p.l.Address] = names
	}
	d.tunnels.reconcile(routes, d.opts.Tunnels.RemovedRouteGrace, d.opts.Log)
	d.applied.Store(true)
	return nil
}

// Ready reports whether a config has been applied; every listener of an
// applied config is bound by construction.
func (d *Dataplane) Ready() bool { return d.applied.Load() }

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
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for addr, ll := range d.listeners {
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
	wg.Wait()
	d.draining.Wait()
	d.listeners = map[string]*liveListener{}
	d.forwarder.Close()
	return errors.Join(errs...)
}
