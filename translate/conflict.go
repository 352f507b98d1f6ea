package translate

import (
	"fmt"
	"net"
	"net/netip"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshgate/meshgate/ir"
	mgtls "github.com/meshgate/meshgate/tls"
)

// findListenerConflicts applies the spec's distinctness rule within one
// Gateway or one ListenerSet (owner names the kind): listeners sharing a
// port must share the protocol, and those sharing port and protocol must
// differ in hostname. Every listener of a conflicting set is rejected; the
// spec forbids picking a winner within one object.
func findListenerConflicts(listeners []*listenerState, owner string) {
	byPort := map[int32][]*listenerState{}
	var ports []int32
	for _, ls := range listeners {
		if !ls.accepted() {
			continue
		}
		if _, ok := byPort[ls.l.Port]; !ok {
			ports = append(ports, ls.l.Port)
		}
		byPort[ls.l.Port] = append(byPort[ls.l.Port], ls)
	}
	for _, port := range ports {
		group := byPort[port]
		protocols := map[gwapiv1.ProtocolType]bool{}
		for _, ls := range group {
			protocols[ls.l.Protocol] = true
		}
		if len(protocols) > 1 {
			for _, ls := range group {
				ls.conflictReason = gwapiv1.ListenerReasonProtocolConflict
				ls.reject(gwapiv1.ListenerReasonProtocolConflict, "port: %d is used by other listeners of this %s with a different protocol", port, owner)
			}
			continue
		}
		hosts := map[string][]*listenerState{}
		for _, ls := range group {
			hosts[ls.hostname] = append(hosts[ls.hostname], ls)
		}
		for h, same := range hosts {
			if len(same) < 2 {
				continue
			}
			shown := h
			if shown == "" {
				shown = "(any)"
			}
			for _, ls := range same {
				ls.conflictReason = gwapiv1.ListenerReasonHostnameConflict
				ls.reject(gwapiv1.ListenerReasonHostnameConflict, "hostname: %s on port %d is also used by another listener of this %s", shown, port, owner)
			}
		}
	}
}

// bindListeners claims a socket for each address of each listener that can
// be programmed. Different Gateways may share a socket when their listeners
// agree on the protocol and differ in hostname; otherwise the older Gateway
// keeps the socket and the newer one's listener is conflicted.
func (t *translator) bindListeners(gs *gatewayState) {
	if !gs.accepted() {
		return
	}
	for _, ls := range gs.allListeners() {
		if !ls.programmed() {
			continue
		}
		if !t.claimable(ls) {
			continue
		}
		for _, ip := range gs.addrs {
			addr := net.JoinHostPort(ip, fmt.Sprint(ls.l.Port))
			sock := t.sockets[addr]
			if sock == nil {
				sock = &socket{address: addr, port: ls.l.Port, ip: ip, protocol: ls.protocol, owner: gs, byHostname: map[string]*listenerState{}, clientAuth: ls.clientAuth}
				t.sockets[addr] = sock
			}
			sock.byHostname[ls.hostname] = ls
			sock.listeners = append(sock.listeners, ls)
			h := &ir.ListenerHost{Name: ls.name(), Hostname: ls.hostname, TLSMode: ls.tlsMode, ACME: ls.acme, TLS: ls.tlsOpts.TLS}
			sock.hosts = append(sock.hosts, h)
			sock.certs = append(sock.certs, ls.certs...)
			ls.hosts = append(ls.hosts, h)
		}
	}
}

// claimable checks the listener against sockets other Gateways already hold,
// rejecting it on the first clash.
func (t *translator) claimable(ls *listenerState) bool {
	for _, ip := range ls.gs.addrs {
		addr := net.JoinHostPort(ip, fmt.Sprint(ls.l.Port))
		if sock := t.sockets[addr]; sock != nil {
			if sock.protocol != ls.protocol {
				ls.conflictReason = gwapiv1.ListenerReasonProtocolConflict
				ls.reject(gwapiv1.ListenerReasonProtocolConflict, "port: %s is already served with protocol %s by Gateway %s", addr, sock.protocol, sock.owner.key)
				return false
			}
			if other := sock.byHostname[ls.hostname]; other != nil && other.gs != ls.gs {
				shown := ls.hostname
				if shown == "" {
					shown = "(any)"
				}
				ls.conflictReason = gwapiv1.ListenerReasonHostnameConflict
				ls.reject(gwapiv1.ListenerReasonHostnameConflict, "hostname: %s on %s is already served by listener %s", shown, addr, other.name())
				return false
			}
			if !sameClientAuth(sock.clientAuth, ls.clientAuth) {
				// One socket has one TLS config (see tls.ClientAuth).
				ls.reject(gwapiv1.ListenerReasonPortUnavailable, "port: %s is already served by Gateway %s with a different client certificate validation (spec.tls.frontend, or tls.options[%s]); listeners sharing a port must agree on it", addr, sock.owner.key, mgtls.OptClientIdentityHeader)
				return false
			}
			continue
		}
		for _, other := range sortedKeys(t.sockets) {
			sock := t.sockets[other]
			if sock.port != ls.l.Port || sock.owner == ls.gs || !addrsOverlap(sock.ip, ip) {
				continue
			}
			ls.reject(gwapiv1.ListenerReasonPortUnavailable, "port: %s overlaps %s, already bound for Gateway %s", addr, sock.address, sock.owner.key)
			return false
		}
	}
	return true
}

// addrsOverlap reports whether binding both IPs on one port would clash:
// one is a wildcard covering the other.
func addrsOverlap(a, b string) bool {
	if a == b {
		return false
	}
	pa, errA := netip.ParseAddr(a)
	pb, errB := netip.ParseAddr(b)
	if errA != nil || errB != nil {
		return false
	}
	covers := func(w, o netip.Addr) bool {
		if !w.IsUnspecified() {
			return false
		}
		// "::" also accepts IPv4 on dual-stack hosts.
		return w.Is6() || o.Is4()
	}
	return covers(pa, pb) || covers(pb, pa)
}

// findTLSOverlaps sets OverlappingTLSConfig on HTTPS listeners sharing a
// socket whose hostnames overlap (one wildcard covering the other), as the
// spec requires controllers to detect: with HTTP/2 connection coalescing a
// request can reach a listener it did not pick by SNI. Listeners without a
// hostname are not flagged; they overlap everything by design.
func findTLSOverlaps(sock *socket) {
	if sock.protocol != ir.ProtocolHTTPS {
		return
	}
	for i, a := range sock.listeners {
		for _, b := range sock.listeners[i+1:] {
			if a.hostname == "" || b.hostname == "" || a.hostname == b.hostname {
				continue
			}
			if _, ok := intersectHostname(a.hostname, b.hostname); !ok {
				continue
			}
			if a.overlap == "" {
				a.overlap = fmt.Sprintf("hostname %s overlaps %s of listener %s on %s", a.hostname, b.hostname, b.name(), sock.address)
			}
			if b.overlap == "" {
				b.overlap = fmt.Sprintf("hostname %s overlaps %s of listener %s on %s", b.hostname, a.hostname, a.name(), sock.address)
			}
		}
	}
}
