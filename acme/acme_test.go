package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	ctls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// testCA is a directory URL on loopback where nothing listens: managers in
// these tests must never need the CA.
const testCA = "https://127.0.0.1:1/dir"

// storeCert puts a certificate for name in st where certmagic looks for
// one ordered from testCA (as another replica would have), and returns its
// expiry.
func storeCert(t *testing.T, st certmagic.Storage, name string) time.Time {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	notAfter := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	meta, _ := json.Marshal(map[string]any{"sans": []string{name}})
	iss := (&certmagic.ACMEIssuer{CA: testCA}).IssuerKey()
	ctx := context.Background()
	for k, v := range map[string][]byte{
		certmagic.StorageKeys.SiteCert(iss, name):       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		certmagic.StorageKeys.SitePrivateKey(iss, name): pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		certmagic.StorageKeys.SiteMeta(iss, name):       meta,
	} {
		if err := st.Store(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	return notAfter
}

// checkServesStored: a Manager on st serves the certificate another
// replica stored through writer without ordering, reports the hostname
// ready and its expiry.
func checkServesStored(t *testing.T, writer, st certmagic.Storage) {
	t.Helper()
	const name = "www.example.test"
	notAfter := storeCert(t, writer, name)
	m, err := New(Options{CA: testCA, Storage: st, RenewalWindowRatio: 0.1, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if got := m.Certificates(); len(got) != 0 {
		t.Errorf("Certificates() before Sync = %v, want none", got)
	}
	m.Sync([]Host{{Name: name, Email: "ops@example.com"}})
	if st := m.States()[name]; !st.Ready || st.Err != nil {
		t.Errorf("state of %s = %+v, want ready", name, st)
	}
	got := m.Certificates()
	if len(got) != 1 || got[0].Name != name || !got[0].NotAfter.Equal(notAfter) {
		t.Errorf("Certificates() = %+v, want %s expiring %v", got, name, notAfter)
	}
	c, err := m.GetCertificate(&ctls.ClientHelloInfo{ServerName: name})
	if err != nil || c.Leaf == nil || !c.Leaf.NotAfter.Equal(notAfter) {
		t.Errorf("GetCertificate(%s) = %v, %v; want the stored certificate", name, c, err)
	}
	// No longer managed: no longer reported.
	m.Sync(nil)
	if got := m.Certificates(); len(got) != 0 {
		t.Errorf("Certificates() after dropping %s = %v, want none", name, got)
	}
}

func TestManagerServesStoredCertificate(t *testing.T) {
	// Not t.TempDir: certmagic's background maintenance may still write
	// there after Stop returns.
	dir, err := os.MkdirTemp("", "meshgate-acme-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	checkServesStored(t, &certmagic.FileStorage{Path: dir}, &certmagic.FileStorage{Path: dir})
}
