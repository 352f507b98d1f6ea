package dataplane

import (
	ctls "crypto/tls"
	"net/http"
	"sort"
	"strings"

	"github.com/meshgate/meshgate/acme"
	"github.com/meshgate/meshgate/ir"
)

// acmeChallengePrefix is where HTTP-01 validation requests ask.
const acmeChallengePrefix = "/.well-known/acme-challenge/"

// acmeNames are the hostnames of l whose certificate comes from ACME.
func acmeNames(l *ir.Listener) map[string]bool {
	var names map[string]bool
	for _, h := range l.Hosts {
		if h.ACME != nil && h.Hostname != "" {
			if names == nil {
				names = map[string]bool{}
			}
			names[strings.ToLower(h.Hostname)] = true
		}
	}
	return names
}

// acmeHosts lists every ACME-managed hostname of cfg with its e-mail.
func acmeHosts(cfg *ir.Config) []acme.Host {
	var out []acme.Host
	seen := map[string]bool{}
	for _, l := range cfg.Listeners {
		for _, h := range l.Hosts {
			if h.ACME == nil || h.Hostname == "" || seen[strings.ToLower(h.Hostname)] {
				continue
			}
			seen[strings.ToLower(h.Hostname)] = true
			out = append(out, acme.Host{Name: h.Hostname, Email: h.ACME.Email})
		}
	}
	return out
}

// withACME makes cfg serve the ACME manager's certificates for names (and
// answer their TLS-ALPN-01 validations, ALPN acme-tls/1); other names keep
// cfg's own certificates.
func withACME(cfg *ctls.Config, m *acme.Manager, names map[string]bool) *ctls.Config {
	if m == nil || len(names) == 0 || cfg == nil {
		return cfg
	}
	base := cfg.GetCertificate
	cfg.NextProtos = append(cfg.NextProtos, acme.ALPNProtocol)
	cfg.GetCertificate = func(hello *ctls.ClientHelloInfo) (*ctls.Certificate, error) {
		if names[strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")] {
			return m.GetCertificate(hello)
		}
		if acme.IsChallengeHello(hello) {
			return nil, errNotManaged
		}
		return base(hello)
	}
	return cfg
}

var errNotManaged = &notManagedError{}

type notManagedError struct{}

func (*notManagedError) Error() string {
	return "acme-tls/1 validation for a name this listener does not manage"
}

// serveACMEChallenge answers an HTTP-01 validation request, before
// routing, and reports whether it did.
func (h *listenerHandler) serveACMEChallenge(w http.ResponseWriter, r *http.Request) bool {
	if h.acme == nil || !strings.HasPrefix(r.URL.Path, acmeChallengePrefix) {
		return false
	}
	if h.acme.HandleHTTPChallenge(w, r) {
		h.log.Info("ACME HTTP-01 validation answered", "host", r.Host, "remote", r.RemoteAddr)
		return true
	}
	return false
}

// withACMECerts adds to certs (the Secret and file certificates of the
// config in force) the ACME certificates m serves on cfg's listeners, as
// "acme/<hostname>", so the expiry metric covers both; sorted by listener,
// then name.
func withACMECerts(certs []CertExpiry, cfg *ir.Config, m *acme.Manager) []CertExpiry {
	out := append([]CertExpiry(nil), certs...)
	if m == nil || cfg == nil {
		return out
	}
	served := m.Certificates()
	if len(served) == 0 {
		return out
	}
	for _, l := range cfg.Listeners {
		names := acmeNames(l)
		for _, c := range served {
			if names[c.Name] {
				out = append(out, CertExpiry{Name: "acme/" + c.Name, Listener: l.Address, NotAfter: c.NotAfter})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Listener != out[j].Listener {
			return out[i].Listener < out[j].Listener
		}
		return out[i].Name < out[j].Name
	})
	return out
}
