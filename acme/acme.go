// Package acme obtains and renews certificates from an ACME CA (Let's
// Encrypt, Pebble, ...) through caddyserver/certmagic for HTTPS listeners
// that ask for it (Gateway annotation gateway.meshgate.dev/acme, no
// certificateRefs). The challenges are answered by the gateway's own
// listeners: HTTP-01 by every HTTP listener (HandleHTTPChallenge, before
// routing) and TLS-ALPN-01 by the HTTPS listener (GetCertificate answers
// ClientHellos offering only "acme-tls/1"). Certificates, account keys and
// locks live in certmagic Storage: a folder (certmagic.FileStorage) or
// Kubernetes Secrets with Lease locks (SecretStorage), so replicas sharing
// it share certificates and only one orders each.
// Renewal and OCSP stapling are certmagic's own maintenance.
package acme

import (
	"context"
	ctls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Challenge types.
const (
	HTTP01    = "http-01"
	TLSALPN01 = "tls-alpn-01"
	// ALPNProtocol is the ALPN protocol of TLS-ALPN-01 validation
	// connections; HTTPS listeners with ACME hosts must accept it.
	ALPNProtocol = "acme-tls/1"
)

// Options configure a Manager.
type Options struct {
	// CA is the ACME directory URL; Let's Encrypt production when empty.
	CA string
	// RootsPEM, when set, are the only roots trusted for the CA's own
	// HTTPS (e.g. Pebble's test CA).
	RootsPEM []byte
	// Storage holds certificates, keys and locks. Nil: a FileStorage at
	// StoragePath.
	Storage certmagic.Storage
	// StoragePath is the FileStorage folder when Storage is nil.
	StoragePath string
	// HTTPPort and TLSALPNPort are the local ports on which the
	// gateway's listeners answer HTTP-01 and TLS-ALPN-01 (80 and 443 when
	// zero). When nothing listens there, certmagic answers on its own.
	HTTPPort, TLSALPNPort int
	// Challenges are the allowed challenge types; both when empty.
	Challenges []string
	// RenewalWindowRatio is the fraction of a certificate's lifetime
	// before its expiry at which it is renewed (certmagic's 1/3 when
	// zero). When set, the CA's renewal info (ARI) is not consulted.
	RenewalWindowRatio float64
	// RenewCheckInterval is how often certificates are checked for
	// renewal (certmagic's 10 min when zero).
	RenewCheckInterval time.Duration
	// Log receives ACME events.
	Log *slog.Logger
}

// Host is a hostname to manage and the account e-mail to order it with.
type Host struct {
	Name  string
	Email string
}

// State is what is known about one managed hostname.
type State struct {
	// Ready means a certificate is loaded and served.
	Ready bool
	// Err is the last failure to obtain or renew, nil after a success.
	Err error
	// Since is when Err happened.
	Since time.Time
}

// Manager obtains and serves certificates for a changing set of hostnames.
type Manager struct {
	opts    Options
	log     *slog.Logger
	cache   *certmagic.Cache
	storage certmagic.Storage
	roots   *x509.CertPool

	mu       sync.Mutex
	configs  map[string]*certmagic.Config // by e-mail
	hosts    map[string]string            // hostname → e-mail
	states   map[string]State
	onChange []func()
	ctx      context.Context
	cancel   context.CancelFunc
}

// New returns a Manager managing no hostname yet.
func New(opts Options) (*Manager, error) {
	m := &Manager{opts: opts, log: opts.Log, configs: map[string]*certmagic.Config{}, hosts: map[string]string{}, states: map[string]State{}}
	if m.log == nil {
		m.log = slog.Default()
	}
	if len(opts.RootsPEM) > 0 {
		m.roots = x509.NewCertPool()
		if !m.roots.AppendCertsFromPEM(opts.RootsPEM) {
			return nil, errors.New("acme: no certificate in the CA roots")
		}
	}
	for _, c := range opts.Challenges {
		if c != HTTP01 && c != TLSALPN01 {
			return nil, fmt.Errorf("acme: unknown challenge type %q (want %s or %s)", c, HTTP01, TLSALPN01)
		}
	}
	m.storage = opts.Storage
	if m.storage == nil {
		if opts.StoragePath == "" {
			return nil, errors.New("acme: no storage")
		}
		if err := os.MkdirAll(opts.StoragePath, 0o700); err != nil {
			return nil, fmt.Errorf("acme: storage: %w", err)
		}
		m.storage = &certmagic.FileStorage{Path: opts.StoragePath}
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(c certmagic.Certificate) (*certmagic.Config, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, n := range c.Names {
				if email, ok := m.hosts[n]; ok {
					return m.configs[email], nil
				}
			}
			return m.configFor(""), nil
		},
		RenewCheckInterval: opts.RenewCheckInterval,
		OCSPCheckInterval:  opts.RenewCheckInterval,
		Logger:             zapLogger(m.log),
	})
	return m, nil
}

// OnChange registers f, called (in its own goroutine) whenever a
// hostname's State changes.
func (m *Manager) OnChange(f func()) {
	m.mu.Lock()
	m.onChange = append(m.onChange, f)
	m.mu.Unlock()
}

// configFor returns the certmagic config ordering with e-mail; m.mu held.
func (m *Manager) configFor(email string) *certmagic.Config {
	if c := m.configs[email]; c != nil {
		return c
	}
	tmpl := certmagic.Config{
		RenewalWindowRatio: m.opts.RenewalWindowRatio,
		DisableARI:         m.opts.RenewalWindowRatio > 0,
		Storage:            m.storage,
		Logger:             zapLogger(m.log),
		OnEvent:            m.event,
	}
	cfg := certmagic.New(m.cache, tmpl)
	iss := certmagic.ACMEIssuer{
		CA:                      m.opts.CA,
		Email:                   email,
		Agreed:                  true,
		TrustedRoots:            m.roots,
		AltHTTPPort:             m.opts.HTTPPort,
		AltTLSALPNPort:          m.opts.TLSALPNPort,
		DisableHTTPChallenge:    len(m.opts.Challenges) > 0 && !slices.Contains(m.opts.Challenges, HTTP01),
		DisableTLSALPNChallenge: len(m.opts.Challenges) > 0 && !slices.Contains(m.opts.Challenges, TLSALPN01),
		Logger:                  zapLogger(m.log),
	}
	if iss.CA == "" {
		iss.CA = certmagic.LetsEncryptProductionCA
	}
	cfg.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(cfg, iss)}
	m.configs[email] = cfg
	return cfg
}

// event records certmagic's obtain and renewal outcomes.
func (m *Manager) event(_ context.Context, event string, data map[string]any) error {
	if event == "cached_managed_cert" {
		// Loaded from storage: ordered by another replica sharing it
		// (which held the lock), or by an earlier run.
		sans, _ := data["sans"].([]string)
		for _, n := range sans {
			m.mu.Lock()
			ready := m.states[n].Ready
			m.mu.Unlock()
			if !ready {
				m.log.Info("ACME certificate loaded from storage", "hostname", n)
				m.setState(n, State{Ready: true})
			}
		}
		return nil
	}
	name, _ := data["identifier"].(string)
	if name == "" {
		return nil
	}
	var st State
	switch event {
	case "cert_obtained":
		renewal, _ := data["renewal"].(bool)
		m.log.Info("ACME certificate obtained", "hostname", name, "renewal", renewal)
		st = State{Ready: true}
	case "cert_failed":
		err, _ := data["error"].(error)
		if err == nil {
			err = errors.New("unknown error")
		}
		renewal, _ := data["renewal"].(bool)
		m.log.Error("ACME certificate order failed", "hostname", name, "renewal", renewal, "error", err.Error())
		m.mu.Lock()
		st = m.states[name]
		m.mu.Unlock()
		st.Err, st.Since = err, time.Now()
	default:
		return nil
	}
	m.setState(name, st)
	return nil
}

func (m *Manager) setState(name string, st State) {
	m.mu.Lock()
	if _, managed := m.hosts[name]; !managed {
		m.mu.Unlock()
		return
	}
	m.states[name] = st
	fs := slices.Clone(m.onChange)
	m.mu.Unlock()
	for _, f := range fs {
		go f()
	}
}

// Sync makes hosts the managed hostnames: new ones are loaded from storage
// or ordered in the background (certmagic retries failures with backoff);
// ones no longer listed stop being renewed.
func (m *Manager) Sync(hosts []Host) {
	m.mu.Lock()
	want := map[string]string{}
	for _, h := range hosts {
		want[strings.ToLower(h.Name)] = h.Email
	}
	var gone []certmagic.SubjectIssuer
	for name, email := range m.hosts {
		if e, ok := want[name]; ok && e == email {
			continue
		}
		for _, iss := range m.configs[email].Issuers {
			gone = append(gone, certmagic.SubjectIssuer{Subject: name, IssuerKey: iss.IssuerKey()})
		}
		delete(m.hosts, name)
		delete(m.states, name)
	}
	byEmail := map[string][]string{}
	for name, email := range want {
		if _, ok := m.hosts[name]; ok {
			continue
		}
		m.hosts[name] = email
		m.states[name] = State{}
		byEmail[email] = append(byEmail[email], name)
	}
	cfgs := map[string]*certmagic.Config{}
	for email := range byEmail {
		cfgs[email] = m.configFor(email)
	}
	m.mu.Unlock()
	if len(gone) > 0 {
		m.cache.RemoveManaged(gone)
	}
	for email, names := range byEmail {
		sort.Strings(names)
		m.log.Info("ACME managing hostnames", "hostnames", names, "email", email, "ca", m.opts.CA)
		if err := cfgs[email].ManageAsync(m.ctx, names); err != nil {
			for _, n := range names {
				m.setState(n, State{Err: err, Since: time.Now()})
			}
			continue
		}
		// A certificate already in storage is loaded synchronously by
		// ManageAsync without an "obtained" event.
		for _, n := range names {
			if c, err := cfgs[email].CacheManagedCertificate(m.ctx, n); err == nil && c.Leaf != nil {
				m.setState(n, State{Ready: true})
			}
		}
	}
}

// States returns the state of every managed hostname.
func (m *Manager) States() map[string]State {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]State, len(m.states))
	for k, v := range m.states {
		out[k] = v
	}
	return out
}

// Certificate is a managed certificate being served.
type Certificate struct {
	// Name is the managed hostname.
	Name string
	// NotAfter is when it expires.
	NotAfter time.Time
}

// Certificates returns the newest cached certificate of every managed
// hostname that has one, sorted by name, so the certificate expiry metric
// covers ACME certificates too (renewals included).
func (m *Manager) Certificates() []Certificate {
	m.mu.Lock()
	names := make([]string, 0, len(m.hosts))
	for n := range m.hosts {
		names = append(names, n)
	}
	m.mu.Unlock()
	// The cache is asked without m.mu: it calls GetConfigForCert, which
	// takes m.mu, while holding its own lock.
	sort.Strings(names)
	var out []Certificate
	for _, n := range names {
		var newest time.Time
		for _, c := range m.cache.AllMatchingCertificates(n) {
			if c.Leaf != nil && slices.Contains(c.Names, n) && c.Leaf.NotAfter.After(newest) {
				newest = c.Leaf.NotAfter
			}
		}
		if !newest.IsZero() {
			out = append(out, Certificate{Name: n, NotAfter: newest})
		}
	}
	return out
}

// Manages reports whether name is a managed hostname.
func (m *Manager) Manages(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.hosts[strings.TrimSuffix(strings.ToLower(name), ".")]
	return ok
}

// GetCertificate answers TLS-ALPN-01 validation handshakes and serves the
// managed certificate of the name asked for (with its OCSP staple).
func (m *Manager) GetCertificate(hello *ctls.ClientHelloInfo) (*ctls.Certificate, error) {
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	m.mu.Lock()
	email, ok := m.hosts[name]
	cfg := m.configs[email]
	m.mu.Unlock()
	if !ok || cfg == nil {
		return nil, fmt.Errorf("acme: %q is not a managed hostname", hello.ServerName)
	}
	return cfg.GetCertificate(hello)
}

// IsChallengeHello reports whether hello is a TLS-ALPN-01 validation.
func IsChallengeHello(hello *ctls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ALPNProtocol
}

// HandleHTTPChallenge answers an HTTP-01 validation request for a managed
// hostname and reports whether it did.
func (m *Manager) HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	if !certmagic.LooksLikeHTTPChallenge(r) {
		return false
	}
	m.mu.Lock()
	var iss *certmagic.ACMEIssuer
	for _, cfg := range m.configs {
		for _, i := range cfg.Issuers {
			if a, ok := i.(*certmagic.ACMEIssuer); ok {
				iss = a
			}
		}
		break
	}
	m.mu.Unlock()
	return iss != nil && iss.HandleHTTPChallenge(w, r)
}

// RenewNow renews name's certificate at once (tests, an operator's wish).
func (m *Manager) RenewNow(ctx context.Context, name string) error {
	m.mu.Lock()
	cfg := m.configs[m.hosts[name]]
	m.mu.Unlock()
	if cfg == nil {
		return fmt.Errorf("acme: %q is not managed", name)
	}
	return cfg.RenewCertSync(ctx, name, true)
}

// Stop ends renewals and background orders.
func (m *Manager) Stop() {
	m.cancel()
	m.cache.Stop()
}

// zapLogger sends certmagic's zap logs to log.
func zapLogger(log *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{log: log})
}
