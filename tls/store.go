// Package tls selects server certificates by SNI and builds the TLS settings
// every HTTPS listener shares, including its client certificate policy
// (ClientAuth). (Certificates from ACME and backend TLS will live here too.)
package tls

import (
	ctls "crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/meshgate/meshgate/ir"
)

// Store picks a certificate for a TLS handshake. It is immutable once built;
// a reload builds a new Store and swaps it in, so handshakes in flight keep
// the certificate they started with.
type Store struct {
	exact    map[string]*ctls.Certificate
	wildcard map[string]*ctls.Certificate // key: the suffix after "*."
	fallback *ctls.Certificate
}

// NewStore parses certs. Earlier certificates win when two claim the same
// name, so order expresses preference. A listener with no hostname makes its
// certificate the default for names nothing else matches; without one,
// unknown names get no certificate.
func NewStore(certs []*ir.Certificate) (*Store, error) {
	s := &Store{exact: map[string]*ctls.Certificate{}, wildcard: map[string]*ctls.Certificate{}}
	for _, c := range certs {
		pair, err := ctls.X509KeyPair(c.CertPEM, c.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", c.Name, err)
		}
		if len(c.Hostnames) == 0 && s.fallback == nil {
			s.fallback = &pair
		}
		for _, h := range c.Hostnames {
			h = strings.ToLower(h)
			if suffix, ok := strings.CutPrefix(h, "*."); ok {
				if s.wildcard[suffix] == nil {
					s.wildcard[suffix] = &pair
				}
			} else if s.exact[h] == nil {
				s.exact[h] = &pair
			}
		}
	}
	// Without a listener that has no hostname there is no fallback: a
	// client asking for a name no listener has (or for none) gets no
	// handshake, rather than another tenant's certificate, which would
	// tell it the names this gateway serves.
	return s, nil
}

// ErrNoCertificate is returned when no certificate matches the name asked
// for and no listener without a hostname provides a default.
var ErrNoCertificate = errors.New("no certificate configured")

// Certificate returns the certificate for an SNI server name: an exact
// match, else the most specific wildcard, else the fallback.
func (s *Store) Certificate(serverName string) (*ctls.Certificate, error) {
	name := strings.TrimSuffix(strings.ToLower(serverName), ".")
	if c := s.exact[name]; c != nil {
		return c, nil
	}
	for rest := name; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		if c := s.wildcard[rest]; c != nil {
			return c, nil
		}
	}
	if s.fallback != nil {
		return s.fallback, nil
	}
	return nil, ErrNoCertificate
}

// ServerConfig returns the TLS settings for an HTTPS listener: TLS 1.2 or
// newer, ALPN h2 and http/1.1, certificates from the Store current returns at
// each handshake (so reloads take effect for new connections only).
func ServerConfig(current func() *Store) *ctls.Config {
	return &ctls.Config{
		MinVersion: ctls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *ctls.ClientHelloInfo) (*ctls.Certificate, error) {
			s := current()
			if s == nil {
				return nil, ErrNoCertificate
			}
			return s.Certificate(hello.ServerName)
		},
	}
}
