package e2e

// Raw TCP proxy faults through TCPRoutes, row 29 of docs/reliability.md: an
// upstream that resets mid-stream, one that accepts and stays silent, and
// one that is not there at all.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// l4fGateway is a Gateway with one TCP listener per name, on ports.
func l4fGateway(ip string, names []string, ports []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: meshgate}
spec: {controllerName: gateway.meshgate.dev/controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: meshgate
  addresses: [{type: IPAddress, value: %s}]
  listeners:
`, ip)
	for i, n := range names {
		fmt.Fprintf(&b, "  - {name: %s, port: %d, protocol: TCP}\n", n, ports[i])
	}
	return b.String()
}

// l4fUpstream is a TCP server on 127.0.0.1 running serve on each connection;
// connections still open when the test ends are closed.
func l4fUpstream(t *testing.T, serve func(c *net.TCPConn)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var live sync.Map
	t.Cleanup(func() {
		ln.Close()
		live.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			live.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer live.Delete(c)
				defer c.Close()
				serve(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// l4fWaitClosed reads from c until the gateway closes it (EOF or reset),
// at most within. It returns how it ended and whether it was closed.
func l4fWaitClosed(c net.Conn, within time.Duration) (how string, took time.Duration, closed bool) {
	start := time.Now()
	c.SetReadDeadline(start.Add(within))
	n, err := io.Copy(io.Discard, c)
	took = time.Since(start)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("still open (%d bytes read)", n), took, false
	case err == nil:
		return fmt.Sprintf("EOF after %d bytes", n), took, true
	default:
		return fmt.Sprintf("%v after %d bytes", err, n), took, true
	}
}

// TestL4Faults is row 29: an upstream that resets the connection mid-stream
// gets the client's connection closed (EOF or reset) promptly, well before
// the 1 h idle timeout; an upstream that accepts and says nothing gets it
// closed by --l4-idle-timeout (2 s here) within 3× that, counted as
// idle_timeout; a dead upstream port gets it closed at once, counted as
// connect_failed. The gateway keeps serving, and no goroutine or file is
// left behind.
func TestL4Faults(t *testing.T) {
	t.Parallel()
	const l4Idle = 2 * time.Second

	// The upstream reads "hello", answers "part1", waits for "go" and
	// then resets the connection (SO_LINGER 0).
	rst := l4fUpstream(t, func(c *net.TCPConn) {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(c)
		if l, err := br.ReadString('\n'); err != nil || l != "hello\n" {
			return
		}
		io.WriteString(c, "part1\n")
		if _, err := br.ReadString('\n'); err != nil {
			return
		}
		c.SetLinger(0)
	})
	// The silent upstream accepts and never writes (it reads, so that its
	// connection ends when the gateway or the test closes it).
	silent := l4fUpstream(t, func(c *net.TCPConn) {
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		io.Copy(io.Discard, c)
	})
	dead := freePort(t, "127.0.0.1") // nothing listens there
	echo := tcpEcho(t, "echo", nil)

	ip := newLoopbackIP(t)
	pRST, pDead, pEcho := freePort(t, ip), freePort(t, ip), freePort(t, ip)
	g := startGateway(t, ip, l4fGateway(ip, []string{"rst", "dead", "echo"}, []int{pRST, pDead, pEcho})+
		backendYAML("rst", rst)+backendYAML("dead", dead)+backendYAML("echo", echo)+
		l4Route("TCPRoute", "rst", "rst", nil, "rst")+l4Route("TCPRoute", "dead", "dead", nil, "dead")+
		l4Route("TCPRoute", "echo", "echo", nil, "echo"))
	ipIdle := newLoopbackIP(t)
	pSilent := freePort(t, ipIdle)
	gIdle := startGateway(t, ipIdle, l4fGateway(ipIdle, []string{"silent"}, []int{pSilent})+
		backendYAML("silent", silent)+l4Route("TCPRoute", "silent", "silent", nil, "silent"),
		"--l4-idle-timeout="+l4Idle.String())

	echoWorks := func(t *testing.T) {
		t.Helper()
		c := rawDial(t, g.addr(pEcho))
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "ping\n")
		if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || l != "echo: ping\n" {
			t.Errorf("TCP echo through the gateway: %q %v", l, err)
		}
		c.Close()
	}
	echoWorks(t)
	baseG, baseFD := stallBaseline(t, g)

	t.Run("upstream reset mid-stream closes the client", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			c := rawDial(t, g.addr(pRST))
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "hello\n")
			br := bufio.NewReader(c)
			if l, err := br.ReadString('\n'); err != nil || l != "part1\n" {
				t.Fatalf("before the reset: %q %v", l, err)
			}
			io.WriteString(c, "go\n")
			how, took, closed := l4fWaitClosed(c, 10*time.Second)
			t.Logf("connection %d after the upstream's reset: %s after %v", i, how, took)
			if !closed {
				t.Errorf("client connection %d still open 10 s after the upstream reset it (l4 idle timeout 1 h)", i)
			}
			c.Close()
		}
	})

	t.Run("silent upstream is closed by the idle timeout", func(t *testing.T) {
		before, _ := stallMetricSum(t, gIdle, "meshgate_l4_connection_failures_total", ":"+strconv.Itoa(pSilent)+`"`, `reason="idle_timeout"`)
		for _, clientSends := range []bool{true, false} {
			c := rawDial(t, gIdle.addr(pSilent))
			if clientSends {
				io.WriteString(c, "anyone there?\n")
			}
			how, took, closed := l4fWaitClosed(c, 3*l4Idle)
			t.Logf("silent upstream (client sent a line: %v): %s after %v", clientSends, how, took)
			if !closed {
				t.Errorf("client connection to a silent upstream still open after %v (3× --l4-idle-timeout=%v; client sent a line: %v)", 3*l4Idle, l4Idle, clientSends)
			}
			c.Close()
		}
		var after float64
		ok := pollUntil(5*time.Second, func() bool {
			after, _ = stallMetricSum(t, gIdle, "meshgate_l4_connection_failures_total", ":"+strconv.Itoa(pSilent)+`"`, `reason="idle_timeout"`)
			return after >= before+2
		})
		if !ok {
			t.Errorf(`meshgate_l4_connection_failures_total{reason="idle_timeout"} went from %v to %v, want +2`, before, after)
		}
	})

	t.Run("dead upstream port closes the client and counts connect_failed", func(t *testing.T) {
		labels := []string{":" + strconv.Itoa(pDead) + `"`, `reason="connect_failed"`}
		before, found := stallMetricSum(t, g, "meshgate_l4_connection_failures_total", labels...)
		if !found {
			_, body := g.adminBody("/metrics")
			var lines []string
			for _, l := range strings.Split(body, "\n") {
				if strings.HasPrefix(l, "meshgate_l4_") {
					lines = append(lines, l)
				}
			}
			t.Fatalf("no meshgate_l4_connection_failures_total{reason=\"connect_failed\"} series for port %d:\n%s", pDead, strings.Join(lines, "\n"))
		}
		const n = 3
		for i := 0; i < n; i++ {
			c := rawDial(t, g.addr(pDead))
			io.WriteString(c, "hello?\n")
			how, took, closed := l4fWaitClosed(c, 10*time.Second)
			t.Logf("dead upstream, connection %d: %s after %v", i, how, took)
			if !closed {
				t.Errorf("client connection %d still open 10 s after the upstream refused the gateway's dial (connect timeout 5 s)", i)
			}
			c.Close()
		}
		var after float64
		ok := pollUntil(5*time.Second, func() bool {
			after, _ = stallMetricSum(t, g, "meshgate_l4_connection_failures_total", labels...)
			return after >= before+n
		})
		if !ok {
			t.Errorf(`meshgate_l4_connection_failures_total{reason="connect_failed"} went from %v to %v, want +%d`, before, after, n)
		}
	})

	echoWorks(t)
	stallBackToBaseline(t, g, baseG, baseFD, 30*time.Second, true)
	if !gIdle.running() {
		t.Fatalf("idle-timeout gateway exited: %v", gIdle.exitErr)
	}
}
