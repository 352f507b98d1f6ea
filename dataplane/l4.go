package dataplane

import (
	"context"
	"fmt"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/l4"
)

// isL4 reports whether a listener is served by package l4 (TCP, TLS, UDP)
// rather than the HTTP server.
func isL4(p ir.Protocol) bool {
	return p == ir.ProtocolTCP || p == ir.ProtocolTLS || p == ir.ProtocolUDP
}

// l4Prepared is one TCP, TLS or UDP listener of a new config, compiled but
// not yet live.
type l4Prepared struct {
	l     *ir.Listener
	table *l4.Table
}

// prepareL4 compiles the layer-4 listeners; nothing is bound yet.
func prepareL4(ls []*ir.Listener) ([]l4Prepared, error) {
	var out []l4Prepared
	for _, l := range ls {
		t, err := l4.Compile(l)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		out = append(out, l4Prepared{l: l, table: t})
	}
	return out, nil
}

// bindL4 binds the addresses not already served; those that cannot be
// bound are returned in unbound.
func (d *Dataplane) bindL4(preps []l4Prepared) (bound map[string]l4.Server, unbound []ir.Unbound) {
	bound = map[string]l4.Server{}
	for _, p := range preps {
		if live, ok := d.l4[p.l.Address]; ok && sameSocketKind(live.protocol, p.l.Protocol) {
			continue
		}
		opts := l4.Options{Log: d.opts.Log, Picker: &d.balancer, IdleTimeout: d.opts.L4IdleTimeout}
		var srv l4.Server
		var err error
		if p.l.Protocol == ir.ProtocolUDP {
			srv, err = l4.ListenUDP(context.Background(), p.l.Address, opts)
		} else {
			srv, err = l4.Listen(context.Background(), p.l.Address, opts)
		}
		if err != nil {
			unbound = append(unbound, ir.Unbound{Listener: p.l, Err: fmt.Errorf("bind %s/%s: %w", p.l.Protocol, p.l.Address, err)})
			continue
		}
		bound[p.l.Address] = srv
	}
	return bound, unbound
}

// sameSocketKind reports whether one socket can serve both protocols: TCP
// and TLS listeners are the same TCP socket with a different table.
func sameSocketKind(a, b ir.Protocol) bool {
	return (a == ir.ProtocolUDP) == (b == ir.ProtocolUDP)
}

// liveL4 is a bound layer-4 socket and the protocol it serves.
type liveL4 struct {
	srv      l4.Server
	protocol ir.Protocol
}

// swapL4 installs the new tables, starts the new sockets and drains the
// ones the config no longer has; failed addresses could not be bound and
// are skipped. It cannot fail.
func (d *Dataplane) swapL4(preps []l4Prepared, bound map[string]l4.Server, failed map[string]bool) {
	keep := map[string]bool{}
	for _, p := range preps {
		if failed[p.l.Address] {
			continue
		}
		keep[p.l.Address] = true
		if srv := bound[p.l.Address]; srv != nil {
			if old, ok := d.l4[p.l.Address]; ok {
				d.drain(p.l.Address, old.srv.Shutdown)
			}
			d.l4[p.l.Address] = liveL4{srv: srv, protocol: p.l.Protocol}
			srv.SetTable(p.table)
			srv.Serve()
			d.opts.Log.Info("listener started", "address", p.l.Address, "protocol", p.l.Protocol)
			continue
		}
		live := d.l4[p.l.Address]
		live.srv.SetTable(p.table)
		live.protocol = p.l.Protocol
		d.l4[p.l.Address] = live
	}
	for addr, live := range d.l4 {
		if !keep[addr] {
			delete(d.l4, addr)
			d.drain(addr, live.srv.Shutdown)
		}
	}
}

// drain shuts a removed socket down in the background, bounded by the drain
// timeout.
func (d *Dataplane) drain(addr string, shutdown func(context.Context) error) {
	d.draining.Add(1)
	go func() {
		defer d.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), d.opts.DrainTimeout)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			d.opts.Log.Warn("listener drain cut short", "address", addr, "error", err)
		}
		d.opts.Log.Info("listener stopped", "address", addr)
	}()
}
