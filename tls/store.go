// Package tls selects server certificates by SNI and builds the TLS settings
// of HTTPS listeners: their client certificate policy (ClientAuth), per-host
// options from Gateway listener tls.options (HostOptions), session ticket
// keys per policy (TicketKeys) and the verified client identity forwarded
// upstream (ClientAuth.Identity).
package tls

import (
	ctls "crypto/tls"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/meshgate/meshgate/ir"
)

// Store picks a certificate for a TLS handshake. It is immutable once built;
// a reload builds a new Store and swaps it in, so handshakes in flight keep
// the certificate they started with.
type Store struct {
	names sniMap[*ctls.Certificate]
	// staples are the OCSP-stapled versions of names' certificates (ocsp.go).
	staples map[*ctls.Certificate]*stapleEntry
}

// NewStore parses certs. Earlier certificates win when two claim the same
// name, so order expresses preference. A listener with no hostname makes its
// certificate the default for names nothing else matches; without one,
// unknown names get no certificate.
func NewStore(certs []*ir.Certificate) (*Store, error) {
	s := &Store{names: newSNIMap[*ctls.Certificate]()}
	for _, c := range certs {
		pair, err := ctls.X509KeyPair(c.CertPEM, c.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", c.Name, err)
		}
		if len(c.Hostnames) == 0 {
			s.names.add("", &pair)
		}
		for _, h := range c.Hostnames {
			s.names.add(h, &pair)
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
	if c, ok := s.names.lookup(serverName); ok {
		return s.stapled(c), nil
	}
	return nil, ErrNoCertificate
}

// sniMap finds what a TLS server name selects among Gateway listener
// hostnames: an exact name, else the most specific wildcard ("*.example.com"),
// else the value of the listener without a hostname. The first value added
// for a name wins.
type sniMap[V any] struct {
	exact       map[string]V
	wildcard    map[string]V // key: the suffix after "*."
	fallback    V
	hasFallback bool
}

func newSNIMap[V any]() sniMap[V] {
	return sniMap[V]{exact: map[string]V{}, wildcard: map[string]V{}}
}

// add maps hostname ("" for the fallback) to v unless it has a value.
func (m *sniMap[V]) add(hostname string, v V) {
	h := strings.ToLower(hostname)
	if h == "" {
		if !m.hasFallback {
			m.fallback, m.hasFallback = v, true
		}
		return
	}
	if suffix, ok := strings.CutPrefix(h, "*."); ok {
		if _, dup := m.wildcard[suffix]; !dup {
			m.wildcard[suffix] = v
		}
	} else if _, dup := m.exact[h]; !dup {
		m.exact[h] = v
	}
}

// lookup returns the value serverName selects.
func (m *sniMap[V]) lookup(serverName string) (V, bool) {
	name := strings.TrimSuffix(strings.ToLower(serverName), ".")
	if v, ok := m.exact[name]; ok {
		return v, true
	}
	for rest := name; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		if v, ok := m.wildcard[rest]; ok {
			return v, true
		}
	}
	return m.fallback, m.hasFallback
}

// values are every value added, the fallback last.
func (m *sniMap[V]) values() []V {
	out := make([]V, 0, len(m.exact)+len(m.wildcard)+1)
	for _, k := range slices.Sorted(maps.Keys(m.exact)) {
		out = append(out, m.exact[k])
	}
	for _, k := range slices.Sorted(maps.Keys(m.wildcard)) {
		out = append(out, m.wildcard[k])
	}
	if m.hasFallback {
		out = append(out, m.fallback)
	}
	return out
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
