package l4

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// ioTimeout bounds every blocking test step; tests never assert on time.
const ioTimeout = 10 * time.Second

// quietOptions log everything, to nowhere, so the log paths run too.
func quietOptions() Options {
	return Options{Log: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor polls cond, bounded in time and count, and fails if it never
// holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for i := 0; i < 5000 && time.Now().Before(deadline); i++ {
		if cond() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// --- ir builders ---

func irBackend(name string, addrs ...string) *ir.Backend {
	b := &ir.Backend{Name: name, Protocol: ir.BackendTCP}
	for _, a := range addrs {
		b.Endpoints = append(b.Endpoints, ir.Endpoint{Address: a})
	}
	return b
}

func weighted(w int32, b *ir.Backend) ir.WeightedBackend {
	return ir.WeightedBackend{Weight: w, Target: b}
}

func l4Route(name string, hostnames []string, bs ...ir.WeightedBackend) *ir.L4Route {
	return &ir.L4Route{Name: name, Hostnames: hostnames, Backends: bs}
}

func streamListener(p ir.Protocol, hosts ...*ir.ListenerHost) *ir.Listener {
	return &ir.Listener{Name: "127.0.0.1:0", Address: "127.0.0.1:0", Protocol: p, Hosts: hosts}
}

func tcpListenerTo(addrs ...string) *ir.Listener {
	return streamListener(ir.ProtocolTCP, &ir.ListenerHost{
		Name:     "default/gw/tcp",
		L4Routes: []*ir.L4Route{l4Route("default/r", nil, weighted(1, irBackend("svc/default/echo:80", addrs...)))},
	})
}

func mustCompile(t *testing.T, l *ir.Listener) *Table {
	t.Helper()
	tbl, err := Compile(l)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// startGateway serves l on a loopback port and shuts it down at cleanup.
func startGateway(t *testing.T, l *ir.Listener, opts Options) *Listener {
	t.Helper()
	gw, err := Listen(context.Background(), "127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	gw.SetTable(mustCompile(t, l))
	gw.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		gw.Shutdown(ctx)
	})
	return gw
}

func dial(t *testing.T, addr net.Addr) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// --- TCP backends ---

// tcpBackend is a loopback server running handle per connection.
type tcpBackend struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

func (b *tcpBackend) addr() string { return b.ln.Addr().String() }

func startBackend(t *testing.T, ln net.Listener, handle func(net.Conn)) *tcpBackend {
	t.Helper()
	b := &tcpBackend{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(3 * ioTimeout))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func loopbackListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// echo copies c back to itself until EOF, then closes.
func echo(c net.Conn) {
	buf := make([]byte, 16<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func startEcho(t *testing.T) *tcpBackend { return startBackend(t, loopbackListener(t), echo) }

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln := loopbackListener(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// roundTrip writes size random bytes to c while reading them back, and
// checks they come back intact.
func roundTrip(c net.Conn, size int) error {
	want := make([]byte, size)
	rand.Read(want)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		werr <- err
	}()
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(got, want) {
		return errors.New("echoed bytes differ")
	}
	return nil
}

// expectClosed reads c until the gateway closes it, failing if data comes.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("read %d bytes, err %v; want the connection closed", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection not closed")
	}
}

// --- certificates ---

type testCert struct {
	ir   *ir.Certificate
	tls  tls.Certificate
	pool *x509.CertPool
}

// selfSigned makes a certificate for names, its own root.
func selfSigned(t testing.TB, names ...string) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &testCert{
		ir:   &ir.Certificate{Name: "secret/default/" + names[0], Hostnames: names, CertPEM: certPEM, KeyPEM: keyPEM},
		tls:  pair,
		pool: pool,
	}
}

// startTLSEcho is a TLS backend serving cert that echoes plaintext.
func startTLSEcho(t *testing.T, cert *testCert) *tcpBackend {
	t.Helper()
	ln := tls.NewListener(loopbackListener(t), &tls.Config{Certificates: []tls.Certificate{cert.tls}})
	return startBackend(t, ln, echo)
}

// --- UDP ---

// udpEcho echoes datagrams and records who sent them.
type udpEcho struct {
	pc      *net.UDPConn
	mu      sync.Mutex
	sources map[netip.AddrPort]int
}

func startUDPEcho(t *testing.T) *udpEcho {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	e := &udpEcho{pc: pc, sources: map[netip.AddrPort]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, udpBufSize)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			e.mu.Lock()
			e.sources[from]++
			e.mu.Unlock()
			pc.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return e
}

func (e *udpEcho) addr() string { return e.pc.LocalAddr().String() }

func (e *udpEcho) sourceCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sources)
}

func udpListenerTo(addrs ...string) *ir.Listener {
	b := irBackend("svc/default/dns:53", addrs...)
	b.Protocol = ir.BackendUDP
	return &ir.Listener{Name: "udp", Address: "127.0.0.1:0", Protocol: ir.ProtocolUDP, Hosts: []*ir.ListenerHost{{
		Name:     "default/gw/udp",
		L4Routes: []*ir.L4Route{l4Route("default/u", nil, weighted(1, b))},
	}}}
}

func startUDPGateway(t *testing.T, l *ir.Listener, opts Options) *UDPListener {
	t.Helper()
	gw, err := ListenUDP(context.Background(), "127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	gw.SetTable(mustCompile(t, l))
	gw.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		gw.Shutdown(ctx)
	})
	return gw
}

func udpClient(t *testing.T, gw net.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, gw.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpExchange sends msg and waits for it to come back. Datagrams may be
// lost, so it tries a bounded number of times.
func udpExchange(c *net.UDPConn, msg string) error {
	buf := make([]byte, udpBufSize)
	var err error
	for range 5 {
		if _, err = c.Write([]byte(msg)); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(ioTimeout / 5))
		var n int
		n, err = c.Read(buf)
		if err == nil {
			if got := string(buf[:n]); got != msg {
				return fmt.Errorf("got %q, want %q", got, msg)
			}
			return nil
		}
	}
	return err
}
