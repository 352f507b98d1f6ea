package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/meshgate/meshgate/ir"
)

// sanKey is the part of the cache key the subject alt names make.
func sanKey(u *ir.UpstreamTLS) string {
	if len(u.SANDNSNames) == 0 && len(u.SANURIs) == 0 {
		return ""
	}
	return "dns=" + strings.Join(u.SANDNSNames, ",") + "\x00uri=" + strings.Join(u.SANURIs, ",")
}

// verifySANs makes cfg verify the chain against cfg.RootCAs (the system
// roots when nil) but check the leaf against u's subject alt names instead
// of ServerName, which is then only the SNI (a BackendTLSPolicy with
// subjectAltNames).
func verifySANs(cfg *tls.Config, u *ir.UpstreamTLS) {
	roots := cfg.RootCAs
	dnsNames := append([]string(nil), u.SANDNSNames...)
	uris := append([]string(nil), u.SANURIs...)
	// The default verification would check ServerName; VerifyConnection
	// does the chain and the names instead.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("backend sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		leaf := cs.PeerCertificates[0]
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
			return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
		}
		if matchSAN(leaf, dnsNames, uris) {
			return nil
		}
		var have []string
		have = append(have, leaf.DNSNames...)
		for _, u := range leaf.URIs {
			have = append(have, u.String())
		}
		want := append(append([]string(nil), dnsNames...), uris...)
		return fmt.Errorf("backend certificate's subject alt names [%s] match none of [%s]", strings.Join(have, ", "), strings.Join(want, ", "))
	}
}

// matchSAN reports whether leaf carries one of dnsNames (as a TLS client
// would check a host name, so a wildcard certificate matches; a wildcard
// wanted matches the same wildcard in the certificate) or one of uris.
func matchSAN(leaf *x509.Certificate, dnsNames, uris []string) bool {
	for _, n := range dnsNames {
		if !strings.HasPrefix(n, "*.") && leaf.VerifyHostname(n) == nil {
			return true
		}
		for _, d := range leaf.DNSNames {
			if strings.EqualFold(d, n) {
				return true
			}
		}
	}
	for _, want := range uris {
		for _, u := range leaf.URIs {
			if u.String() == want {
				return true
			}
		}
	}
	return false
}
