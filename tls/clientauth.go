package tls

import (
	"crypto/sha256"
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
// accepted under a strict one. Ticket keys are therefore per policy
// (TicketKeys, keyed by Fingerprint): a ticket issued on a listener without
// validation, or validating against other CAs, does not decrypt where this
// policy applies, whichever host or socket it is presented to. The
// translator also gives every HTTPS host on a socket the same policy
// (Gateway API sets it per port, and Gateways sharing a socket must agree).
// Within one policy resumption is safe and survives reloads that keep the
// policy: crypto/tls refuses to resume a session without a certificate when
// the config requires one, and re-checks the certificate's expiry and
// chain when resuming.
type ClientAuth struct {
	mode ctls.ClientAuthType
	pool *x509.CertPool
	fp   [32]byte
	// header carries the verified identity upstream; "" for none.
	header string
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
	c := &ClientAuth{pool: pool, header: ca.IdentityHeader}
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
	h := sha256.New()
	h.Write([]byte{byte(c.mode)})
	h.Write(ca.CAPEM)
	copy(c.fp[:], h.Sum(nil))
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

// Fingerprint identifies the policy for session ticket keys (TicketKeys):
// equal for equal mode and CAs, so reloads keep it. No policy (nil) is the
// zero fingerprint.
func (c *ClientAuth) Fingerprint() [32]byte {
	if c == nil {
		return [32]byte{}
	}
	return c.fp
}

// IdentityHeader is the request header that carries the client's verified
// identity upstream ("" for none; always "" for a nil policy).
func (c *ClientAuth) IdentityHeader() string {
	if c == nil {
		return ""
	}
	return c.header
}
