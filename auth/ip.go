package auth

import (
	"fmt"
	"net/netip"
	"strings"
)

// IPList is a compiled ipAccess: deny wins; with an allow list, anything
// outside it is denied.
type IPList struct {
	allow, deny []netip.Prefix
}

// ParsePrefix reads a CIDR or a single address.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// NewIPList compiles allow and deny lists.
func NewIPList(allow, deny []string) (*IPList, error) {
	l := &IPList{}
	for i, s := range allow {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("allow[%d]: %v", i, err)
		}
		l.allow = append(l.allow, p)
	}
	for i, s := range deny {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("deny[%d]: %v", i, err)
		}
		l.deny = append(l.deny, p)
	}
	return l, nil
}

// Allowed reports whether the client address ip (as text, as
// proxy.ForwardedPolicy.ClientIP returns it) may pass. An address that
// does not parse is allowed only when there is neither an allow list nor
// a deny list it could be in... i.e. never when an allow list exists.
func (l *IPList) Allowed(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return len(l.allow) == 0 && len(l.deny) == 0
	}
	a = a.Unmap().WithZone("")
	for _, p := range l.deny {
		if p.Contains(a) {
			return false
		}
	}
	if len(l.allow) == 0 {
		return true
	}
	for _, p := range l.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
