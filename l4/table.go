package l4

import (
	ctls "crypto/tls"
	"errors"
	"fmt"
	"slices"

	"github.com/meshgate/meshgate/ir"
	mgtls "github.com/meshgate/meshgate/tls"
)

// Table is the compiled, immutable routing table of one layer-4 listener.
// It is safe for concurrent use; a reload compiles a new Table and swaps it
// in with SetTable.
type Table struct {
	name     string
	protocol ir.Protocol
	// single is the route of a TCP or UDP listener; nil when none is
	// attached.
	single *route
	// hosts are a TLS listener's hosts by hostname.
	hosts hostIndex[*vhost]
	// tlsConfig terminates TLS for Terminate hosts; nil when there are
	// none.
	tlsConfig *ctls.Config
}

// vhost is one TLS listener hostname with its routes by SNI.
type vhost struct {
	name   string
	mode   ir.TLSMode
	routes hostIndex[*route]
}

// Compile builds the table for l, a TCP, TLS or UDP listener.
//
// TCP and UDP: every L4Route of every host competes and one wins for all
// connections: the oldest CreationTimestamp, then Name, then RuleIndex.
//
// TLS: a connection goes to the host whose Hostname matches its SNI most
// specifically (exact, then the longest wildcard, then ""), and within that
// host to the route whose Hostnames match most specifically (exact, then
// wildcard, then a route without hostnames), ties broken as for TCP. There
// is no fallback to a less specific host, as in Gateway API. Hosts with the
// same hostname (Gateways sharing a port) are merged; the first one's
// TLSMode applies. An empty TLSMode is Terminate, the Gateway API default.
//
// Compile fails on a nil listener, another protocol, an unknown TLS mode, or
// Terminate hosts without usable certificates.
func Compile(l *ir.Listener) (*Table, error) {
	if l == nil {
		return nil, errors.New("l4: nil listener")
	}
	t := &Table{name: l.Name, protocol: l.Protocol}
	switch l.Protocol {
	case ir.ProtocolTCP, ir.ProtocolUDP:
		t.single = compileSingle(l)
	case ir.ProtocolTLS:
		if err := t.compileTLS(l); err != nil {
			return nil, fmt.Errorf("l4: listener %q: %w", l.Name, err)
		}
	default:
		return nil, fmt.Errorf("l4: listener %q: protocol %q is not TCP, TLS or UDP", l.Name, l.Protocol)
	}
	return t, nil
}

// Name is the listener's name, for logs.
func (t *Table) Name() string { return t.name }

// Protocol is the listener's protocol; a Listener serves TCP and TLS
// tables, a UDPListener UDP tables.
func (t *Table) Protocol() ir.Protocol { return t.protocol }

// compileSingle returns the winning route of a TCP or UDP listener.
func compileSingle(l *ir.Listener) *route {
	var best *ir.L4Route
	var host string
	for _, lh := range l.Hosts {
		if lh == nil {
			continue
		}
		for _, r := range lh.L4Routes {
			if r != nil && (best == nil || olderFirst(r, best) < 0) {
				best, host = r, lh.Name
			}
		}
	}
	if best == nil {
		return nil
	}
	return newRoute(best, host)
}

// compileTLS files a TLS listener's hosts and routes and builds the
// certificate store for Terminate hosts.
func (t *Table) compileTLS(l *ir.Listener) error {
	type pending struct {
		vh     *vhost
		routes []*ir.L4Route
	}
	var all []*pending
	byVhost := map[*vhost]*pending{}
	terminate := false
	for _, lh := range l.Hosts {
		if lh == nil {
			continue
		}
		mode := lh.TLSMode
		switch mode {
		case "":
			mode = ir.TLSTerminate
		case ir.TLSPassthrough, ir.TLSTerminate:
		default:
			return fmt.Errorf("host %q: unknown TLS mode %q", lh.Name, lh.TLSMode)
		}
		name := normalizeHostname(lh.Hostname)
		vh, ok := t.hosts.get(name)
		if ok {
			vh.name += "," + lh.Name
		} else {
			vh = &vhost{name: lh.Name, mode: mode}
			t.hosts.put(name, vh)
			p := &pending{vh: vh}
			all = append(all, p)
			byVhost[vh] = p
		}
		terminate = terminate || vh.mode == ir.TLSTerminate
		for _, r := range lh.L4Routes {
			if r != nil {
				byVhost[vh].routes = append(byVhost[vh].routes, r)
			}
		}
	}
	for _, p := range all {
		slices.SortStableFunc(p.routes, olderFirst)
		for _, r := range p.routes {
			rt := newRoute(r, p.vh.name)
			names := r.Hostnames
			if len(names) == 0 {
				names = []string{""}
			}
			for _, h := range names {
				h = normalizeHostname(h)
				// Sorted oldest first: the first route filed under a
				// hostname keeps it.
				if _, taken := p.vh.routes.get(h); !taken {
					p.vh.routes.put(h, rt)
				}
			}
		}
	}
	if terminate {
		if len(l.Certificates) == 0 {
			return errors.New("TLS Terminate without certificates")
		}
		store, err := mgtls.NewStore(l.Certificates)
		if err != nil {
			return fmt.Errorf("certificates: %w", err)
		}
		cfg := mgtls.ServerConfig(func() *mgtls.Store { return store })
		// The plaintext is relayed as bytes: no application protocol
		// is negotiated.
		cfg.NextProtos = nil
		t.tlsConfig = cfg
	}
	return nil
}

// match returns the host and route for a connection. sni is ignored for
// TCP and UDP. For TLS, host is nil when no host matches, route nil when
// the host has no route for sni.
func (t *Table) match(sni string) (*vhost, *route) {
	if t == nil {
		return nil, nil
	}
	if t.protocol != ir.ProtocolTLS {
		return nil, t.single
	}
	name := normalizeHostname(sni)
	vh, ok := t.hosts.lookup(name)
	if !ok {
		return nil, nil
	}
	rt, _ := vh.routes.lookup(name)
	return vh, rt
}
