package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/meshgate/meshgate/ir"
)

// ClientTLSConfig is the client TLS configuration u describes, without
// ALPN: trusted roots, server name or SAN checks, client certificate. It
// is exported so that everything the gateway dials over TLS (backends,
// external authorization services) verifies peers the same way.
func ClientTLSConfig(u *ir.UpstreamTLS) (*tls.Config, error) {
	if u.Error != "" {
		return nil, fmt.Errorf("backend TLS: %s", u.Error)
	}
	base := &tls.Config{ServerName: u.ServerName, MinVersion: tls.VersionTLS12}
	if len(u.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(u.CAPEM) {
			return nil, fmt.Errorf("backend TLS %s: no usable CA certificate", u.CAName)
		}
		base.RootCAs = pool
	}
	if len(u.SANDNSNames) > 0 || len(u.SANURIs) > 0 {
		verifySANs(base, u)
	}
	if len(u.ClientCertPEM) > 0 {
		pair, err := tls.X509KeyPair(u.ClientCertPEM, u.ClientKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("backend TLS client certificate %s: %w", u.ClientCertName, err)
		}
		// Presented whenever the backend asks, even if its list of
		// acceptable CAs does not name the issuer: the backend decides.
		base.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	}
	return base, nil
}

// UpstreamTLSKey identifies u's content, so that connections and
// transports can be shared by every config (every reload makes new ir
// values) with the same TLS settings.
func UpstreamTLSKey(u *ir.UpstreamTLS) string {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(u.ServerName), []byte(sanKey(u)), u.CAPEM, u.ClientCertPEM, u.ClientKeyPEM, []byte(u.Error)} {
		h.Write(part)
		h.Write([]byte{0})
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:12])
}
