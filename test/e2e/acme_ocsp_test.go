package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	ctls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// ocspCA is a CA whose OCSP responder (on loopback) says Good for every
// serial.
type ocspCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	url  string
}

func newOCSPCA(t *testing.T) *ocspCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e OCSP CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := &ocspCA{key: key}
	ca.cert, _ = x509.ParseCertificate(der)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now()
		der, err := ocsp.CreateResponse(ca.cert, ca.cert, ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber,
			ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, ca.key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(der)
	}))
	t.Cleanup(srv.Close)
	ca.url = srv.URL
	return ca
}

// issue is a certificate for hostname naming responder, chained to ca.
func (ca *ocspCA) issue(t *testing.T, hostname, responder string) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: hostname}, DNSNames: []string{hostname},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), OCSPServer: []string{responder},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{cert: cert,
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})),
		keyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))}
}

// TestOCSPStapling: a Secret certificate naming an OCSP responder is served
// with a good OCSP response stapled (fetched in the background); one whose
// responder is down is served without a staple and a WARN says why.
func TestOCSPStapling(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	ca := newOCSPCA(t)
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + down.Addr().String()
	down.Close()
	good, bad := ca.issue(t, "stapled.test", ca.url), ca.issue(t, "down.test", downURL)
	be := newBackend(t, "a")
	cfg := gatewayYAML(ip,
		listener{name: "good", port: port, protocol: "HTTPS", hostname: "stapled.test", certs: []string{"good-tls"}},
		listener{name: "down", port: port, protocol: "HTTPS", hostname: "down.test", certs: []string{"down-tls"}},
	) + good.secretYAML("good-tls") + bad.secretYAML("down-tls") + be.yaml() + simpleRoute("main", nil, "a")
	g := startGateway(t, ip, cfg, "--http3=false")
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	state := func(name string) (ctls.ConnectionState, error) {
		c, err := ctls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", g.addr(port), &ctls.Config{ServerName: name, RootCAs: roots})
		if err != nil {
			return ctls.ConnectionState{}, err
		}
		defer c.Close()
		return c.ConnectionState(), nil
	}
	var cs ctls.ConnectionState
	if !pollUntil(15*time.Second, func() bool {
		cs, err = state("stapled.test")
		return err == nil && cs.OCSPResponse != nil
	}) {
		t.Fatalf("no OCSP staple for stapled.test after 15 s (handshake error %v)", err)
	}
	resp, err := ocsp.ParseResponseForCert(cs.OCSPResponse, cs.PeerCertificates[0], ca.cert)
	if err != nil || resp.Status != ocsp.Good {
		t.Errorf("stapled response: %v, %+v; want a good one", err, resp)
	}

	if !pollUntil(15*time.Second, func() bool {
		return g.findLog("OCSP staple fetch failed: serving the certificate with its last valid staple or none",
			func(e map[string]any) bool { return e["certificate"] == "down.test" && e["level"] == "WARN" }) != nil
	}) {
		t.Fatal("no WARN about down.test's OCSP responder")
	}
	cs, err = state("down.test")
	if err != nil {
		t.Fatalf("handshake for down.test with its responder down: %v", err)
	}
	if cs.OCSPResponse != nil {
		t.Error("down.test served with an OCSP staple, want none")
	}
}
