package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/meshgate/meshgate/acme"
)

// acmeFlags configure ACME certificates for Gateways annotated
// gateway.meshgate.dev/acme: "true" (docs/acme.md).
type acmeFlags struct {
	ca, caRoot, storage, challenges string
	namespace                       string
	httpPort, tlsPort               int
	renewRatio                      float64
	renewCheck                      time.Duration
}

func (a *acmeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.ca, "acme-ca", "https://acme-v02.api.letsencrypt.org/directory", "ACME directory URL for HTTPS listeners of Gateways annotated gateway.meshgate.dev/acme")
	fs.StringVar(&a.caRoot, "acme-ca-root", "", "PEM file of the roots trusted for the ACME CA's own HTTPS (empty: the system's)")
	fs.StringVar(&a.storage, "acme-storage", "", "where ACME certificates, keys and locks live, shared by the replicas using it (only one orders each certificate): \"secrets\" for Kubernetes Secrets in --acme-namespace (needs --kubernetes), else a folder (empty: secrets with --kubernetes, else <user cache dir>/meshgate/acme)")
	fs.StringVar(&a.namespace, "acme-namespace", "", "namespace of the ACME Secrets and lock Leases with --acme-storage=secrets (default: $POD_NAMESPACE, else default)")
	fs.StringVar(&a.challenges, "acme-challenges", "http-01,tls-alpn-01", "comma-separated ACME challenge types to use: http-01 (answered by HTTP listeners), tls-alpn-01 (answered by the HTTPS listener)")
	fs.IntVar(&a.httpPort, "acme-http-port", 80, "local port of the HTTP listener the CA's HTTP-01 validations reach")
	fs.IntVar(&a.tlsPort, "acme-tls-port", 443, "local port of the HTTPS listener the CA's TLS-ALPN-01 validations reach")
	fs.Float64Var(&a.renewRatio, "acme-renewal-window", 0, "renew when this fraction of a certificate's lifetime is left (0: the CA's renewal info, else 1/3)")
	fs.DurationVar(&a.renewCheck, "acme-renew-check", 10*time.Minute, "how often ACME certificates are checked for renewal and their OCSP staples refreshed")
}

// secretsStorage is the --acme-storage value selecting Kubernetes Secrets.
const secretsStorage = "secrets"

// manager builds the ACME manager; kf says whether (and how) the gateway
// reaches a cluster, for Secret storage.
func (a *acmeFlags) manager(log *slog.Logger, kf *kubeFlags) (*acme.Manager, error) {
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
	if opts.StoragePath == "" && kf.enabled || opts.StoragePath == secretsStorage {
		st, err := a.secretStorage(kf)
		if err != nil {
			return nil, err
		}
		opts.Storage, opts.StoragePath = st, ""
		log.Info("ACME storage: Kubernetes Secrets", "namespace", st.Namespace, "identity", st.Identity)
	} else if opts.StoragePath == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("--acme-storage: %w", err)
		}
		opts.StoragePath = filepath.Join(dir, "meshgate", "acme")
	}
	return acme.New(opts)
}

// secretStorage keeps ACME data in Secrets of the gateway's namespace,
// shared by its replicas (acme.SecretStorage).
func (a *acmeFlags) secretStorage(kf *kubeFlags) (*acme.SecretStorage, error) {
	if !kf.enabled {
		return nil, fmt.Errorf("--acme-storage=%s needs --kubernetes", secretsStorage)
	}
	cfg, err := kf.restConfig()
	if err != nil {
		return nil, fmt.Errorf("--acme-storage=%s: kubernetes config: %w", secretsStorage, err)
	}
	cfg.UserAgent = "meshgate/" + version
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("--acme-storage=%s: kubernetes client: %w", secretsStorage, err)
	}
	ns := a.namespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		ns = "default"
	}
	return &acme.SecretStorage{Client: cs, Namespace: ns, Identity: replicaIdentity()}, nil
}
