// Package proxy forwards a routed request to an upstream endpoint and copies
// the answer back: hop-by-hop and forwarding headers, the lean HTTP/1.1
// upstream client, and the single error path that turns every failure into a
// defined status.
package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"

	"github.com/meshgate/meshgate/internal/bufpool"
)

// hopHeaders are the connection-specific fields of RFC 9110 7.6.1 plus the
// legacy ones proxies still see; they are never forwarded.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// RemoveHopByHop deletes the hop-by-hop fields of h, including every field the
// Connection header names. It must run before the gateway adds headers of
// its own: otherwise a client sending "Connection: X-Gw-Header" could delete a
// gateway-set header (the Traefik CVE-2021-32813 class).
func RemoveHopByHop(h http.Header) {
	eachToken(h["Connection"], func(tok string) bool {
		// "keep-alive" and "close", by far the usual tokens, name only
		// fields removed below anyway: no canonical key to build.
		if !strings.EqualFold(tok, "keep-alive") && !strings.EqualFold(tok, "close") {
			delete(h, textproto.CanonicalMIMEHeaderKey(tok))
		}
		return true
	})
	deleteAll(h, hopHeaders, isHopHeader)
}

// deleteAll removes the fields names from h; is reports whether a name is
// one of them. A delete costs a hash whether or not the field is there, so
// a header with few fields (most requests) is walked instead, each field
// checked by is, which compares strings without hashing.
func deleteAll(h http.Header, names []string, is func(string) bool) {
	if len(h) < 2*len(names) {
		for k := range h {
			if is(k) {
				delete(h, k)
			}
		}
		return
	}
	for _, k := range names {
		delete(h, k)
	}
}

// isHopHeader reports whether k is one of hopHeaders.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// isUntrustedClientHeader reports whether k is one of untrustedClientHeaders.
func isUntrustedClientHeader(k string) bool {
	switch k {
	case "X-Real-Ip", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server",
		"X-Forwarded-Client-Cert", "X-Forwarded-Tls-Client-Cert", "X-Forwarded-Tls-Client-Cert-Info",
		"X-Client-Ip", "X-Original-Forwarded-For", "True-Client-Ip", "Cf-Connecting-Ip":
		return true
	}
	return false
}

// eachToken calls f with each non-empty token of comma-separated field
// values, without allocating, until f returns false.
func eachToken(values []string, f func(tok string) bool) {
	for _, v := range values {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if tok = textproto.TrimString(tok); tok != "" && !f(tok) {
				return
			}
		}
	}
}

// hasToken reports whether the field values list tok (case-insensitive).
func hasToken(values []string, tok string) bool {
	found := false
	eachToken(values, func(t string) bool {
		found = strings.EqualFold(t, tok)
		return !found
	})
	return found
}

// ForwardedPolicy decides what to do with a client's X-Forwarded-* and
// Forwarded headers. From untrusted peers they are replaced, so a client
// cannot claim another address; from trusted peers (other proxies in front
// of the gateway) they are kept and extended.
//
// The zero value trusts nobody.
type ForwardedPolicy struct {
	// Trusted lists the peer networks whose forwarding headers are kept.
	Trusted []netip.Prefix
}

// ClientIP is the address of the client that sent the request: the peer,
// or, when the peer is a trusted proxy, the right-most address in
// X-Forwarded-For that is not itself a trusted proxy (addresses left of it
// could be made up by the client). It must be called before Apply, which
// appends the peer. Rate limits and consistent hashing key on it.
func (p *ForwardedPolicy) ClientIP(remoteAddr string, h http.Header) string {
	ipStr, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		ipStr = remoteAddr
	}
	if len(p.Trusted) == 0 {
		return ipStr
	}
	ip, err := netip.ParseAddr(ipStr)
	if err != nil || !p.trusts(ip.Unmap()) {
		return ipStr
	}
	xff := h["X-Forwarded-For"]
	for i := len(xff) - 1; i >= 0; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				// A hop we cannot read: everything left of it is
				// unverifiable, so the last trusted hop is the client.
				return ipStr
			}
			ipStr = a.Unmap().String()
			if !p.trusts(a.Unmap()) {
				return ipStr
			}
		}
	}
	return ipStr
}

func (p *ForwardedPolicy) trusts(ip netip.Addr) bool {
	for _, pre := range p.Trusted {
		if pre.Contains(ip) {
			return true
		}
	}
	return false
}

// ForwardedMemo keeps what ForwardedPolicy.Apply worked out for the last
// request of one client connection: the peer's address as the forwarding
// headers spell it, whether the policy trusts it, and the Forwarded
// element for the request's host and scheme. The requests of a keep-alive
// connection nearly always repeat them, and working them out again (split
// and parse the address, check the trusted ranges, build the string) was
// about a tenth of the gateway's own instructions per HTTP/1.1 request.
// The zero value is empty. Apply changes the memo it is given, which
// therefore belongs to one connection whose requests come one at a time;
// ApplyShared never changes one, so concurrent streams can share it.
type ForwardedMemo struct {
	policy       *ForwardedPolicy
	remote, host string
	tls          bool
	ipStr, fwd   string
	trusted      bool
}

// Apply sets X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host and
// Forwarded on h for a request from remoteAddr that arrived for host over
// TLS or not. The four values are stored in vals when it has room for
// them (storage that lives as long as the request, see hdrvals), else in
// a new slice. memo, when not nil, is the connection's: what it holds for
// the same peer, host and scheme is reused, and it is updated otherwise.
func (p *ForwardedPolicy) Apply(h http.Header, remoteAddr, host string, tls bool, vals []string, memo *ForwardedMemo) {
	f := p.fields(h, host, p.own(memo, remoteAddr, host, tls))
	f.AddTo(h, vals)
}

// ApplyTo is Apply for a request whose forwarding fields the HTTP/1.1
// upstream client writes itself (Outbound.Forwarded): they are worked out
// into f, and the client's copies they replace are removed from h, which
// gets none of them. Four map insertions, and writing them out of the
// map, were about a twentieth of a proxied request's instructions.
func (p *ForwardedPolicy) ApplyTo(f *ForwardedFields, h http.Header, remoteAddr, host string, tls bool, memo *ForwardedMemo) {
	*f = p.fields(h, host, p.own(memo, remoteAddr, host, tls))
	f.removeFrom(h)
}

// own returns memo, updated to fit the request unless it does, or a new
// memo when memo is nil.
func (p *ForwardedPolicy) own(memo *ForwardedMemo, remoteAddr, host string, tls bool) *ForwardedMemo {
	if memo == nil || !memo.fits(p, remoteAddr, host, tls) {
		m := p.memo(remoteAddr, host, tls)
		if memo == nil {
			return &m
		}
		*memo = m
	}
	return memo
}

// ApplyShared is Apply for a connection whose requests run concurrently
// (HTTP/2 and HTTP/3 streams): memo, which may be nil, is only read, and
// the memo that fits this request is returned, memo itself or a new one
// for the caller to share from then on. An HTTP/2 connection's streams
// nearly always share peer, host and scheme, so they split the peer's
// address and build the Forwarded element once, not once per stream.
func (p *ForwardedPolicy) ApplyShared(h http.Header, remoteAddr, host string, tls bool, memo *ForwardedMemo) *ForwardedMemo {
	memo = p.shared(memo, remoteAddr, host, tls)
	f := p.fields(h, host, memo)
	f.AddTo(h, nil)
	return memo
}

// ApplySharedTo is ApplyShared with the fields worked out into f, as
// ApplyTo.
func (p *ForwardedPolicy) ApplySharedTo(f *ForwardedFields, h http.Header, remoteAddr, host string, tls bool, memo *ForwardedMemo) *ForwardedMemo {
	memo = p.shared(memo, remoteAddr, host, tls)
	*f = p.fields(h, host, memo)
	f.removeFrom(h)
	return memo
}

// shared returns memo when it fits the request, else a new memo.
func (p *ForwardedPolicy) shared(memo *ForwardedMemo, remoteAddr, host string, tls bool) *ForwardedMemo {
	if memo == nil || !memo.fits(p, remoteAddr, host, tls) {
		m := p.memo(remoteAddr, host, tls)
		return &m
	}
	return memo
}

// fits reports whether m was worked out for this policy, peer, host and
// scheme.
func (m *ForwardedMemo) fits(p *ForwardedPolicy, remoteAddr, host string, tls bool) bool {
	return m.policy == p && m.remote == remoteAddr && m.host == host && m.tls == tls
}

// memo works out what the forwarding headers of a request from remoteAddr
// for host need.
func (p *ForwardedPolicy) memo(remoteAddr, host string, tls bool) ForwardedMemo {
	ipStr, fwd, trusted := p.element(remoteAddr, host, scheme(tls))
	// host is cloned: it may share memory with the whole request head,
	// which a memo should not keep.
	return ForwardedMemo{policy: p, remote: remoteAddr, host: strings.Clone(host), tls: tls, ipStr: ipStr, fwd: fwd, trusted: trusted}
}

func scheme(tls bool) string {
	if tls {
		return "https"
	}
	return "http"
}

// ForwardedFields are the values of a request's X-Forwarded-For,
// Forwarded, X-Forwarded-Proto and X-Forwarded-Host fields as a
// ForwardedPolicy works them out; "" is a field not to set (a trusted
// proxy's own X-Forwarded-Proto or X-Forwarded-Host is kept instead).
type ForwardedFields struct {
	For, Forwarded, Proto, Host string
}

// AddTo sets the fields on h, their values stored in vals when it has
// room for four (storage that lives as long as the request, see hdrvals),
// else in a new slice.
func (f *ForwardedFields) AddTo(h http.Header, vals []string) {
	if *f == (ForwardedFields{}) {
		return
	}
	// One backing array for the four values: at most one allocation.
	if len(vals) < 4 {
		vals = make([]string, 4)
	}
	vals[0], vals[1] = f.For, f.Forwarded
	h["X-Forwarded-For"] = vals[0:1:1]
	h["Forwarded"] = vals[1:2:2]
	if f.Proto != "" {
		vals[2] = f.Proto
		h["X-Forwarded-Proto"] = vals[2:3:3]
	}
	if f.Host != "" {
		vals[3] = f.Host
		h["X-Forwarded-Host"] = vals[3:4:4]
	}
}

// removeFrom removes from h the fields f replaces.
func (f *ForwardedFields) removeFrom(h http.Header) {
	if len(h) == 0 {
		return
	}
	delete(h, "X-Forwarded-For")
	delete(h, "Forwarded")
	if f.Proto != "" {
		delete(h, "X-Forwarded-Proto")
	}
	if f.Host != "" {
		delete(h, "X-Forwarded-Host")
	}
}

// appendLines appends f's fields to a request head being built in b.
func (f *ForwardedFields) appendLines(b []byte) []byte {
	if f.For != "" {
		b = bufpool.AppendField(b, "X-Forwarded-For", f.For)
	}
	if f.Forwarded != "" {
		b = bufpool.AppendField(b, "Forwarded", f.Forwarded)
	}
	if f.Proto != "" {
		b = bufpool.AppendField(b, "X-Forwarded-Proto", f.Proto)
	}
	if f.Host != "" {
		b = bufpool.AppendField(b, "X-Forwarded-Host", f.Host)
	}
	return b
}

// fields works out the forwarding fields of a request for host, with m
// worked out for it. From a trusted proxy, the X-Forwarded-For and
// Forwarded it sent are extended and its X-Forwarded-Proto and
// X-Forwarded-Host kept; from anyone else, other proxies' client-identity
// headers are removed from h.
func (p *ForwardedPolicy) fields(h http.Header, host string, m *ForwardedMemo) ForwardedFields {
	f := ForwardedFields{For: m.ipStr, Forwarded: m.fwd, Proto: scheme(m.tls), Host: host}
	if !m.trusted {
		// From an untrusted client they are claims, and a backend may
		// believe them.
		deleteAll(h, untrustedClientHeaders, isUntrustedClientHeader)
		return f
	}
	if prior := h["X-Forwarded-For"]; len(prior) > 0 {
		f.For = strings.Join(prior, ", ") + ", " + f.For
	}
	if prior := h["Forwarded"]; len(prior) > 0 {
		f.Forwarded = strings.Join(prior, ", ") + ", " + f.Forwarded
	}
	if len(h["X-Forwarded-Proto"]) > 0 {
		f.Proto = ""
	}
	if len(h["X-Forwarded-Host"]) > 0 {
		f.Host = ""
	}
	return f
}

// element returns the peer's address as X-Forwarded-For spells it, this
// hop's Forwarded element, and whether the peer is a trusted proxy.
func (p *ForwardedPolicy) element(remoteAddr, host, proto string) (ipStr, fwd string, trusted bool) {
	ipStr, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		ipStr = remoteAddr
	}
	ip, err := netip.ParseAddr(ipStr)
	if err != nil || ip.Zone() != "" || ip.Is4In6() {
		// Normalise unusual spellings; the common case reuses ipStr.
		ip = ip.Unmap().WithZone("")
		ipStr = ip.String()
	}
	q, hostValue := forwardedValue(host)
	if ip.Is6() {
		fwd = "for=\"[" + ipStr + "]\";host=" + q + hostValue + q + ";proto=" + proto
	} else {
		fwd = "for=" + ipStr + ";host=" + q + hostValue + q + ";proto=" + proto
	}
	return ipStr, fwd, ip.IsValid() && p.trusts(ip)
}

// untrustedClientHeaders are removed from requests of untrusted clients:
// they describe the client or its certificate, as set by some proxy, and
// only a trusted proxy may set them.
var untrustedClientHeaders = []string{
	"X-Real-Ip", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server",
	"X-Forwarded-Client-Cert", "X-Forwarded-Tls-Client-Cert", "X-Forwarded-Tls-Client-Cert-Info",
	"X-Client-Ip", "X-Original-Forwarded-For", "True-Client-Ip", "Cf-Connecting-Ip",
}

// SetClientIdentity sets header name to identity, the client certificate
// identity the gateway verified, after removing every copy the client sent
// (whoever the peer is: only the gateway that verified the certificate can
// vouch for it). An empty identity leaves the header absent. name must be
// in canonical form.
func SetClientIdentity(h http.Header, name, identity string) {
	delete(h, name)
	if identity != "" {
		h[name] = []string{identity}
	}
}

// forwardedValue returns v as the value of a Forwarded parameter: v
// itself when it is a token, else v with '\\' and '"' escaped, to go between
// the quotes q (RFC 7239 section 4). A host with a port, the common case,
// is quoted but needs no escaping, so no string is built for it.
func forwardedValue(v string) (q, value string) {
	for i := 0; i < len(v); i++ {
		if !tokenChars[v[i]] {
			if strings.IndexByte(v, '"') >= 0 || strings.IndexByte(v, '\\') >= 0 {
				v = strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `"`, `\"`)
			}
			return `"`, v
		}
	}
	return "", v
}

// headerValue is h.Get(key) for a key already in canonical form: the hot
// path's lookups skip Get's canonicalization of a constant.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
