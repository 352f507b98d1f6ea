package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// newSANCert is newTestCert for several DNS names and URIs.
func newSANCert(t *testing.T, dnsNames []string, uris ...string) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: dnsNames[0]},
		DNSNames:              dnsNames,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{
		cert:    cert,
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		keyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})),
	}
}

// tlsServiceYAML is a Service whose port 443 (named https, with
// appProtocol when set) has one endpoint, 127.0.0.1:port.
func tlsServiceYAML(name string, port int, appProtocol string) string {
	ap := ""
	if appProtocol != "" {
		ap = ", appProtocol: " + appProtocol
	}
	return fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata: {name: %s, namespace: default}
spec:
  ports:
  - {name: https, port: 443, protocol: TCP%s}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s-1
  namespace: default
  labels: {kubernetes.io/service-name: %s}
addressType: IPv4
ports:
- {name: https, port: %d, protocol: TCP}
endpoints:
- addresses: ["127.0.0.1"]
`, name, ap, name, name, port)
}

// backendTLSPolicyYAML is a BackendTLSPolicy for Service svc; validation is
// the YAML of spec.validation's fields, indented by four spaces.
func backendTLSPolicyYAML(svc, validation string) string {
	return fmt.Sprintf(`---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: %s, namespace: default}
spec:
  targetRefs:
  - {group: "", kind: Service, name: %s}
  validation:
%s`, svc, svc, validation)
}

// caConfigMapYAML is a ConfigMap holding ca's certificate under ca.crt.
func caConfigMapYAML(name string, ca testCert) string {
	return fmt.Sprintf(`---
apiVersion: v1
kind: ConfigMap
metadata: {name: %s, namespace: default}
data:
  ca.crt: |
%s
`, name, indent(ca.certPEM, 4))
}

// svcRoute is an HTTPRoute for hostname sending everything to Service svc
// port 443.
func svcRoute(name, hostname, svc string) string {
	return fmt.Sprintf(`---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %s, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [%q]
  rules:
  - backendRefs: [{name: %s, port: 443}]
`, name, hostname, svc)
}

// TestBackendTLSPolicy sends traffic to Service backends over TLS as
// BackendTLSPolicies say: verified against a CA from a ConfigMap with the
// policy's hostname as SNI (HTTP/1.1, and HTTP/2 with ALPN h2 for an h2c
// port), or against subjectAltNames instead of the hostname. A backend
// certificate from another CA, one carrying none of the subjectAltNames,
// and a policy whose CA ConfigMap is missing all fail with 503, logged with
// the reason.
func TestBackendTLSPolicy(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)

	beCert := newSANCert(t, []string{"backend.test"}, "spiffe://meshgate.test/ns/default/sa/backend")
	kp, err := tls.X509KeyPair([]byte(beCert.certPEM), []byte(beCert.keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto=%s alpn=%q sni=%q", r.Proto, r.TLS.NegotiatedProtocol, r.TLS.ServerName)
	})
	h1 := httptest.NewUnstartedServer(handler)
	h1.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, NextProtos: []string{"http/1.1"}}
	h1.StartTLS()
	t.Cleanup(h1.Close)
	h1Port := h1.Listener.Addr().(*net.TCPAddr).Port
	h2 := httptest.NewUnstartedServer(handler)
	h2.EnableHTTP2 = true
	h2.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
	h2.StartTLS()
	t.Cleanup(h2.Close)
	h2Port := h2.Listener.Addr().(*net.TCPAddr).Port

	stranger := newTestCert(t, "backend.test") // same name, another CA
	caRef := "    caCertificateRefs: [{group: \"\", kind: ConfigMap, name: backend-ca}]\n"
	cfg := gatewayYAML(ip, listener{name: "http", port: p}) +
		caConfigMapYAML("backend-ca", beCert) +
		caConfigMapYAML("stranger-ca", stranger) +
		tlsServiceYAML("good", h1Port, "") +
		backendTLSPolicyYAML("good", "    hostname: backend.test\n"+caRef) +
		tlsServiceYAML("h2", h2Port, "kubernetes.io/h2c") +
		backendTLSPolicyYAML("h2", "    hostname: backend.test\n"+caRef) +
		tlsServiceYAML("wrongca", h1Port, "") +
		backendTLSPolicyYAML("wrongca", "    hostname: backend.test\n    caCertificateRefs: [{group: \"\", kind: ConfigMap, name: stranger-ca}]\n") +
		tlsServiceYAML("sanok", h1Port, "") +
		backendTLSPolicyYAML("sanok", "    hostname: sni.test\n"+caRef+
			"    subjectAltNames:\n    - {type: Hostname, hostname: other.test}\n    - {type: URI, uri: \"spiffe://meshgate.test/ns/default/sa/backend\"}\n") +
		tlsServiceYAML("sanbad", h1Port, "") +
		backendTLSPolicyYAML("sanbad", "    hostname: backend.test\n"+caRef+
			"    subjectAltNames: [{type: Hostname, hostname: other.test}]\n") +
		tlsServiceYAML("nocm", h1Port, "") +
		backendTLSPolicyYAML("nocm", "    hostname: backend.test\n    caCertificateRefs: [{group: \"\", kind: ConfigMap, name: missing}]\n") +
		tlsServiceYAML("plain", h1Port, "") +
		svcRoute("good", "good.test", "good") +
		svcRoute("h2", "h2.test", "h2") +
		svcRoute("wrongca", "wrongca.test", "wrongca") +
		svcRoute("sanok", "sanok.test", "sanok") +
		svcRoute("sanbad", "sanbad.test", "sanbad") +
		svcRoute("nocm", "nocm.test", "nocm") +
		svcRoute("plain", "plain.test", "plain")
	g := startGateway(t, ip, cfg)

	for _, c := range []struct{ host, body string }{
		{"good.test", `proto=HTTP/1.1 alpn="http/1.1" sni="backend.test"`},
		{"h2.test", `proto=HTTP/2.0 alpn="h2" sni="backend.test"`},
		{"sanok.test", `proto=HTTP/1.1 alpn="http/1.1" sni="sni.test"`},
	} {
		t.Run(c.host, func(t *testing.T) {
			r := get(t, g.url(p, "/"), c.host)
			if r.status != http.StatusOK || r.body != c.body {
				t.Fatalf("got %v, want 200 %s", r, c.body)
			}
		})
	}
	for _, c := range []struct{ host, why string }{
		{"wrongca.test", "certificate signed by unknown authority"},
		{"sanbad.test", "match none of [other.test]"},
		{"nocm.test", "BackendTLSPolicy default/nocm is not usable: spec.validation.caCertificateRefs[0]: ConfigMap default/missing not found"},
	} {
		t.Run(c.host, func(t *testing.T) {
			r := get(t, g.url(p, "/"), c.host)
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("got %v, want 503", r)
			}
			var entry map[string]any
			pollUntil(5*time.Second, func() bool {
				entry = g.findLog("request failed", func(m map[string]any) bool {
					return m["host"] == c.host && m["reason"] == "upstream_connect_failure"
				})
				return entry != nil
			})
			if entry == nil {
				t.Fatal("no log line saying the upstream connection failed")
			}
			if msg, _ := entry["error"].(string); !strings.Contains(msg, c.why) {
				t.Errorf("logged error %q, want it to contain %q", msg, c.why)
			}
		})
	}
	t.Run("no policy: cleartext to a TLS port", func(t *testing.T) {
		r := get(t, g.url(p, "/"), "plain.test")
		if r.status != http.StatusBadRequest && r.status < 500 {
			t.Fatalf("got %v, want the TLS server's refusal of cleartext", r)
		}
	})
}
