package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshgate/meshgate/acme"
)

// acmeFlags configure ACME certificates for Gateways annotated
// gateway.meshgate.dev/acme: "true" (docs/acme.md).
type acmeFlags struct {
	ca, caRoot, storage, challenges string
	httpPort, tlsPort               int
	renewRatio                      float64
	renewCheck                      time.Duration
}

func (a *acmeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.ca, "acme-ca", "https://acme-v02.api.letsencrypt.org/directory", "ACME directory URL for HTTPS listeners of Gateways annotated gateway.meshgate.dev/acme")
	fs.StringVar(&a.caRoot, "acme-ca-root", "", "PEM file of the roots trusted for the ACME CA's own HTTPS (empty: the system's)")
	fs.StringVar(&a.storage, "acme-storage", "", "folder for ACME certificates, keys and locks; replicas sharing it share certificates and only one orders each (empty: <user cache dir>/meshgate/acme)")
	fs.StringVar(&a.challenges, "acme-challenges", "http-01,tls-alpn-01", "comma-separated ACME challenge types to use: http-01 (answered by HTTP listeners), tls-alpn-01 (answered by the HTTPS listener)")
	fs.IntVar(&a.httpPort, "acme-http-port", 80, "local port of the HTTP listener the CA's HTTP-01 validations reach")
	fs.IntVar(&a.tlsPort, "acme-tls-port", 443, "local port of the HTTPS listener the CA's TLS-ALPN-01 validations reach")
	fs.Float64Var(&a.renewRatio, "acme-renewal-window", 0, "renew when this fraction of a certificate's lifetime is left (0: the CA's renewal info, else 1/3)")
	fs.DurationVar(&a.renewCheck, "acme-renew-check", 10*time.Minute, "how often ACME certificates are checked for renewal and their OCSP staples refreshed")
}

func (a *acmeFlags) manager(log *slog.Logger) (*acme.Manager, error) {
	opts := acme.Options{CA: a.ca, StoragePath: a.storage, HTTPPort: a.httpPort, TLSALPNPort: a.tlsPort,
		RenewalWindowRatio: a.renewRatio, RenewCheckInterval: a.renewCheck, Log: log}
	for _, c := range strings.Split(a.challenges, ",") {
		if c = strings.TrimSpace(c); c != "" {
			opts.Challenges = append(opts.Challenges, c)
		}
	}
	if a.caRoot != "" {
		pem, err := os.ReadFile(a.caRoot)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca-root: %w", err)
		}
		opts.RootsPEM = pem
	}
	if opts.StoragePath == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("--acme-storage: %w", err)
		}
		opts.StoragePath = filepath.Join(dir, "meshgate", "acme")
	}
	return acme.New(opts)
}
