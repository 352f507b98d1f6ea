package e2e

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
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const pebbleVersion = "v2.10.1"

func pebblePath(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MESHGATE_TOOLS")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "meshgate")
	}
	p := filepath.Join(dir, "pebble-"+pebbleVersion, "pebble")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("pebble not found at %s: run `make test-deps` (make test does it): %v", p, err)
	}
	return p
}

// fakeDNS answers A queries over UDP and TCP (Pebble uses TCP): names in
// answers get their IP, others NXDOMAIN; AAAA, CAA and the rest get an
// empty answer.
func fakeDNS(t *testing.T, answers map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	answer := func(msg []byte) []byte {
		var p dnsmessage.Parser
		h, err := p.Start(msg)
		if err != nil {
			return nil
		}
		q, err := p.Question()
		if err != nil {
			return nil
		}
		name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
		ip, known := answers[name]
		rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeSuccess}
		if !known {
			rh.RCode = dnsmessage.RCodeNameError
		}
		b := dnsmessage.NewBuilder(nil, rh)
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		if known && q.Type == dnsmessage.TypeA {
			b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}, dnsmessage.AResource{A: [4]byte(net.ParseIP(ip).To4())})
		}
		out, _ := b.Finish()
		return out
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := answer(buf[:n]); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				for {
					var l [2]byte
					if _, err := io.ReadFull(c, l[:]); err != nil {
						return
					}
					msg := make([]byte, int(l[0])<<8|int(l[1]))
					if _, err := io.ReadFull(c, msg); err != nil {
						return
					}
					out := answer(msg)
					if out == nil {
						return
					}
					c.Write(append([]byte{byte(len(out) >> 8), byte(len(out))}, out...))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

type pebble struct {
	dir, api, mgmt string
	client         *http.Client
}

// startPebble runs Pebble validating on httpPort and tlsPort with dns as
// its resolver; certificates live validity seconds.
func startPebble(t *testing.T, dns string, httpPort, tlsPort, validity int) *pebble {
	t.Helper()
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	p := &pebble{dir: dir, api: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1"))), mgmt: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": p.api, "managementListenAddress": p.mgmt,
		"certificate": filepath.Join(dir, "cert.pem"), "privateKey": filepath.Join(dir, "key.pem"),
		"httpPort": httpPort, "tlsPort": tlsPort,
		"profiles": map[string]any{"default": map[string]any{"description": "short-lived", "validityPeriod": validity}},
	}}
	b, _ := json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, "pebble.json"), b, 0o600)
	cmd := exec.Command(pebblePath(t), "-config", filepath.Join(dir, "pebble.json"), "-dnsserver", dns)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_VA_ALWAYS_VALID=0", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("pebble log:\n%s", logs.String())
		}
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	p.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &ctls.Config{RootCAs: pool}}}
	if !pollUntil(10*time.Second, func() bool {
		resp, err := p.client.Get("https://" + p.api + "/dir")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	}) {
		t.Fatalf("pebble did not start; log:\n%s", logs.String())
	}
	return p
}

// roots is the pool of Pebble's issuing root (management API /roots/0).
func (p *pebble) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	resp, err := p.client.Get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble /roots/0: no certificate in %q", b)
	}
	return pool
}

// acmeGateway starts the gateway with HTTP listener httpPort, HTTPS listener
// tlsPort for hostname, ACME on, talking to p.
func acmeGateway(t *testing.T, ip string, p *pebble, httpPort, tlsPort int, hostname, challenges string, extra ...string) *gateway {
	t.Helper()
	be := newBackend(t, "a")
	cfg := gatewayYAML(ip, listener{name: "http", port: httpPort}, listener{name: "https", port: tlsPort, protocol: "HTTPS", hostname: hostname}) +
		be.yaml() + simpleRoute("main", nil, "a")
	cfg = strings.Replace(cfg, "  name: gw\n  namespace: default\n", "  name: gw\n  namespace: default\n  annotations:\n    gateway.meshgate.dev/acme: \"true\"\n    gateway.meshgate.dev/acme-email: ops@example.com\n", 1)
	args := append([]string{"--acme-ca", "https://" + p.api + "/dir", "--acme-ca-root", filepath.Join(p.dir, "cert.pem"),
		"--acme-storage", t.TempDir(), "--acme-http-port", strconv.Itoa(httpPort), "--acme-tls-port", strconv.Itoa(tlsPort),
		"--acme-challenges", challenges, "--http3=false"}, extra...)
	return startGateway(t, ip, cfg, args...)
}

// servedLeaf handshakes with the HTTPS listener for name, verifying the
// chain against roots, and returns the leaf.
func servedLeaf(g *gateway, port int, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	c, err := ctls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", g.addr(port), &ctls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func waitCert(t *testing.T, g *gateway, port int, name string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	var err error
	if !pollUntil(30*time.Second, func() bool {
		leaf, err = servedLeaf(g, port, name, roots)
		return err == nil
	}) {
		t.Fatalf("no certificate for %s verifying against Pebble's root after 30 s: %v", name, err)
	}
	return leaf
}

func listenerProgrammed(t *testing.T, g *gateway, listener string) metav1.Condition {
	t.Helper()
	gw := statusOf(adminConfigStatuses(t, g), "Gateway", "gw")
	if gw == nil {
		t.Fatal("no status for Gateway gw")
	}
	for _, l := range gw.Listeners {
		if string(l.Name) == listener {
			return conditionOf(l.Conditions, "Programmed")
		}
	}
	t.Fatalf("Gateway gw has no listener %s", listener)
	return metav1.Condition{}
}

// TestACMEHTTP01: the gateway orders a certificate from Pebble for its
// HTTPS listener's hostname, answering HTTP-01 on its own HTTP listener,
// serves it (chain to Pebble's root), reports the listener Programmed, and
// renews it before expiry while a connection opened on the old certificate
// keeps working.
func TestACMEHTTP01(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	httpPort, tlsPort := freePort(t, ip), freePort(t, ip)
	const host = "www.acme.test"
	p := startPebble(t, fakeDNS(t, map[string]string{host: ip}), httpPort, tlsPort, 30)
	g := acmeGateway(t, ip, p, httpPort, tlsPort, host, "http-01", "--acme-renewal-window", "0.5", "--acme-renew-check", "1s")
	roots := p.roots(t)
	leaf := waitCert(t, g, tlsPort, host, roots)
	if leaf.DNSNames[0] != host {
		t.Errorf("certificate names %v, want %s", leaf.DNSNames, host)
	}
	if g.countLogs("ACME HTTP-01 validation answered") == 0 {
		t.Errorf("no HTTP-01 validation answered by the HTTP listener")
	}
	if !pollUntil(5*time.Second, func() bool { return listenerProgrammed(t, g, "https").Status == metav1.ConditionTrue }) {
		t.Errorf("listener https Programmed = %+v, want True", listenerProgrammed(t, g, "https"))
	}

	// A keep-alive connection opened on the first certificate.
	tr := &http.Transport{TLSClientConfig: &ctls.Config{ServerName: host, RootCAs: roots}, MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	reused := func() (bool, error) {
		var again bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { again = i.Reused }})
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+g.addr(tlsPort)+"/", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return false, fmt.Errorf("status %d", resp.StatusCode)
		}
		return again, nil
	}
	if _, err := reused(); err != nil {
		t.Fatalf("request on the first certificate: %v", err)
	}

	// 30 s certificates renewed at half their life: a new serial within
	// about 15 s.
	var renewed *x509.Certificate
	if !pollUntil(40*time.Second, func() bool {
		if ok, err := reused(); err != nil || !ok {
			t.Errorf("keep-alive request during renewal: reused %v, error %v", ok, err)
		}
		l, err := servedLeaf(g, tlsPort, host, roots)
		if err == nil && l.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			renewed = l
			return true
		}
		time.Sleep(500 * time.Millisecond)
		return false
	}) {
		t.Fatalf("certificate not renewed within 40 s (serial still %s)", leaf.SerialNumber)
	}
	if !renewed.NotAfter.After(leaf.NotAfter) {
		t.Errorf("renewed certificate expires %v, not after the old %v", renewed.NotAfter, leaf.NotAfter)
	}
	if g.findLog("ACME certificate obtained", func(e map[string]any) bool { return e["renewal"] == true }) == nil {
		t.Errorf("no log of the renewal")
	}
	if ok, err := reused(); err != nil || !ok {
		t.Errorf("connection opened before the renewal: reused %v, error %v", ok, err)
	}
}

// TestACMETLSALPN01: the certificate is obtained with TLS-ALPN-01 only,
// answered by the HTTPS listener itself.
func TestACMETLSALPN01(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	httpPort, tlsPort := freePort(t, ip), freePort(t, ip)
	const host = "alpn.acme.test"
	p := startPebble(t, fakeDNS(t, map[string]string{host: ip}), httpPort, tlsPort, 3600)
	g := acmeGateway(t, ip, p, httpPort, tlsPort, host, "tls-alpn-01")
	leaf := waitCert(t, g, tlsPort, host, p.roots(t))
	if leaf.DNSNames[0] != host {
		t.Errorf("certificate names %v, want %s", leaf.DNSNames, host)
	}
	if g.countLogs("ACME HTTP-01 validation answered") != 0 {
		t.Errorf("HTTP-01 used although only tls-alpn-01 is allowed")
	}
	if r := get(t, g.url(httpPort, "/"), "x"); r.backend() != "a" {
		t.Errorf("HTTP listener: %v, want backend a", r)
	}

	// The ACME certificate is in the expiry metric, on its listener.
	code, body := g.adminBody("/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	series := fmt.Sprintf(`meshgate_certificate_expiry_timestamp_seconds{certificate="acme/%s",listener="%s"}`, host, g.addr(tlsPort))
	if v, ok := metricValue(body, series); !ok || int64(v) != leaf.NotAfter.Unix() {
		t.Errorf("%s = %v (found %v), want %d", series, v, ok, leaf.NotAfter.Unix())
	}
}

// TestACMEFailure: Pebble cannot reach the challenge (the name resolves to
// an address nothing listens on): the order fails with a clear ERROR log
// and the listener is Programmed=False saying why; the rest serves.
func TestACMEFailure(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	nobody := newLoopbackIP(t)
	httpPort, tlsPort := freePort(t, ip), freePort(t, ip)
	const host = "unreachable.acme.test"
	p := startPebble(t, fakeDNS(t, map[string]string{host: nobody}), httpPort, tlsPort, 3600)
	g := acmeGateway(t, ip, p, httpPort, tlsPort, host, "http-01")
	var e map[string]any
	if !pollUntil(30*time.Second, func() bool {
		e = g.findLog("ACME certificate order failed", func(e map[string]any) bool { return e["hostname"] == host })
		return e != nil
	}) {
		t.Fatalf("no 'ACME certificate order failed' log for %s", host)
	}
	if e["level"] != "ERROR" || !strings.Contains(fmt.Sprint(e["error"]), nobody) {
		t.Errorf("failure log %v: want ERROR naming %s", e, nobody)
	}
	var c metav1.Condition
	if !pollUntil(5*time.Second, func() bool {
		c = listenerProgrammed(t, g, "https")
		return c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "order failed")
	}) {
		t.Errorf("listener https Programmed = %+v, want False saying the ACME order failed", c)
	}
	if c.Reason != "Pending" || !strings.Contains(c.Message, host) {
		t.Errorf("listener https Programmed = %+v, want Pending naming %s", c, host)
	}
	if _, err := servedLeaf(g, tlsPort, host, p.roots(t)); err == nil {
		t.Errorf("a certificate was served for %s although the order failed", host)
	}
	if r := get(t, g.url(httpPort, "/"), "x"); r.backend() != "a" {
		t.Errorf("HTTP listener: %v, want backend a", r)
	}
}
