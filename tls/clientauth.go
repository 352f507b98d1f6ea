package tls

import (
	ctls "crypto/tls"
	"crypto/x509"
	"fmt"

	"github.com/meshgate/meshgate/ir"
)

// ClientAuth is a listener's parsed client certificate policy (Gateway
// spec.tls.frontend), ready to be applied to its server TLS settings. A nil
// *ClientAuth asks no client for a certificate.
//
// Session resumption: a TLS session ticket lets a client skip the
// certificate exchange, so a ticket issued under a lax policy must never be
// accepted under a strict one. Two things ensure it. The translator gives
// every HTTPS host on a socket the same policy (Gateway API sets it per
// port, and Gateways sharing a socket must agree), so one tls.Config, with
// one set of ticket keys, only ever serves one policy. And each reload
// builds new tls.Configs (ServerConfig), whose automatic ticket keys are
// fresh, so tickets from before a policy change no longer decrypt. Within
// one policy resumption is safe: crypto/tls refuses to resume a session
// without a certificate when the config requires one, and re-checks the
// certificate's expiry when resuming.
type ClientAuth struct {
	mode ctls.ClientAuthType
	pool *x509.CertPool
}

// NewClientAuth parses ca; nil gives nil.
func NewClientAuth(ca *ir.ClientAuth) (*ClientAuth, error) {
	if ca == nil {
		return nil, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.CAPEM) {
		return nil, fmt.Errorf("client certificate validation %s: no usable CA certificate", ca.CAName)
	}
	c := &ClientAuth{pool: pool}
	switch ca.Mode {
	case ir.ClientAuthAllowValidOnly, "":
		c.mode = ctls.RequireAndVerifyClientCert
	case ir.ClientAuthAllowInsecureFallback:
		// Ask, but neither require nor verify: the spec lets a missing
		// or failing certificate in. The CAs still go out in the
		// CertificateRequest so clients pick the right certificate.
		c.mode = ctls.RequestClientCert
	default:
		return nil, fmt.Errorf("client certificate validation %s: unknown mode %q", ca.CAName, ca.Mode)
	}
	return c, nil
}

// Apply sets cfg's client certificate policy and returns cfg. A nil c
// leaves cfg unchanged.
func (c *ClientAuth) Apply(cfg *ctls.Config) *ctls.Config {
	if c == nil || cfg == nil {
		return cfg
	}
	cfg.ClientAuth = c.mode
	cfg.ClientCAs = c.pool
	return cfg
}
