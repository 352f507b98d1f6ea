package e2e

// Slow clients against the real binary, row 30 of docs/reliability.md:
// slowloris and slow request bodies (slowhttptest, Debian package
// slowhttptest, installed by scripts/test-deps.sh) and a slow reader that
// asks for large responses and never reads them. The gateway runs with
// short timeouts; a probe client must keep getting its answers, and the
// attack's connections must not outlive a bound derived from those
// timeouts.

import (
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	slowReadHeaderTimeout = 2 * time.Second
	slowIdleTimeout       = 5 * time.Second
)

// slowhttptestRow is one second of slowhttptest's CSV report.
type slowhttptestRow struct {
	second, closed, pending, connected int
}

// runSlowhttptest runs slowhttptest with args (plus its CSV report) for
// at most testLength + 30 s and returns the report's rows.
func runSlowhttptest(t *testing.T, testLength time.Duration, args ...string) []slowhttptestRow {
	t.Helper()
	bin, err := exec.LookPath("slowhttptest")
	if err != nil {
		t.Fatalf("slowhttptest not installed: run `make test-deps` as root (make test does it): %v", err)
	}
	prefix := filepath.Join(t.TempDir(), "report")
	args = append(args, "-l", strconv.Itoa(int(testLength/time.Second)), "-g", "-o", prefix)
	ctx, cancel := context.WithTimeout(context.Background(), testLength+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("slowhttptest %s did not finish in %v:\n%s", strings.Join(args, " "), testLength+30*time.Second, truncate(string(out), 2000))
	}
	if err != nil {
		t.Fatalf("slowhttptest %s: %v\n%s", strings.Join(args, " "), err, truncate(string(out), 2000))
	}
	f, err := os.Open(prefix + ".csv")
	if err != nil {
		t.Fatalf("slowhttptest wrote no CSV report: %v\n%s", err, truncate(string(out), 2000))
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("slowhttptest CSV report: %v (%d lines)", err, len(recs))
	}
	var rows []slowhttptestRow
	for _, rec := range recs[1:] { // Seconds,Closed,Pending,Connected,Service Available
		if len(rec) < 4 {
			continue
		}
		var r slowhttptestRow
		var errs [4]error
		r.second, errs[0] = strconv.Atoi(strings.TrimSpace(rec[0]))
		r.closed, errs[1] = strconv.Atoi(strings.TrimSpace(rec[1]))
		r.pending, errs[2] = strconv.Atoi(strings.TrimSpace(rec[2]))
		r.connected, errs[3] = strconv.Atoi(strings.TrimSpace(rec[3]))
		if errs[0] != nil || errs[1] != nil || errs[2] != nil || errs[3] != nil {
			t.Fatalf("slowhttptest CSV line %q", strings.Join(rec, ","))
		}
		rows = append(rows, r)
	}
	// slowhttptest writes a row a second and stops early once the server
	// has closed every connection ("No open connections left"), so the
	// last row can predate that: record the end it reported.
	if strings.Contains(string(out), "No open connections left") && len(rows) > 0 {
		last := rows[len(rows)-1]
		rows = append(rows, slowhttptestRow{second: last.second + 1, closed: last.closed + last.connected + last.pending})
	}
	var summary []string
	for _, r := range rows {
		summary = append(summary, fmt.Sprintf("%ds:%d", r.second, r.connected))
	}
	t.Logf("slowhttptest %s: connected per second %s", strings.Join(args, " "), strings.Join(summary, " "))
	return rows
}

// checkSlowAttack checks slowhttptest's report: the attack did hold
// connections open at some point (at least half of conns), and from
// second `by` on (or at the end, if it ended earlier because none were
// left) at most a tenth of them were still connected.
func checkSlowAttack(t *testing.T, rows []slowhttptestRow, conns, by int, why string) {
	t.Helper()
	peak := 0
	for _, r := range rows {
		peak = max(peak, r.connected)
	}
	if peak < conns/2 {
		t.Fatalf("the attack never held more than %d of %d connections open: it did not run as intended", peak, conns)
	}
	// The row at second by, or the last one when the attack ended sooner
	// (every connection closed, see runSlowhttptest).
	at := rows[len(rows)-1]
	for _, r := range rows {
		if r.second >= by {
			at = r
			break
		}
	}
	if at.connected > conns/10 {
		t.Errorf("%d of %d attack connections still open at second %d of the attack (want at most %d from second %d: %s)",
			at.connected, conns, at.second, conns/10, by, why)
	}
}

// waitConnsDrained waits until the gateway counts at most n open HTTP/1
// connections on addr (at most within d) and fails t otherwise.
func waitConnsDrained(t *testing.T, g *gateway, addr string, n float64, d time.Duration) {
	t.Helper()
	var last float64
	if !pollUntil(d, func() bool {
		last = atkConns(t, g, addr, "h1") + atkConns(t, g, addr, "h2")
		return last <= n
	}) {
		t.Errorf("gateway still counts %v open connections on %s %v after the attack (want at most %v)", last, addr, d, n)
	}
}

// TestSlowClientSlowloris: 200 connections send their request heads a
// line every 5 s (slowhttptest -H); the read-header timeout is 2 s, so
// each must be closed within 3x that of opening, while a probe client
// keeps getting 200s.
func TestSlowClientSlowloris(t *testing.T) {
	t.Parallel()
	s := newAtkSetup(t, "slowloris", "--read-header-timeout", slowReadHeaderTimeout.String(), "--idle-timeout", slowIdleTimeout.String())
	addr := s.g.addr(s.plain)
	probeClient := newClient()
	stop := make(chan struct{})
	probe := startAtkProbe(probeClient, s.g.url(s.plain, "/probe"), s.host, 100*time.Millisecond, 600, stop)

	const conns, rate = 200, 100
	rows := runSlowhttptest(t, 20*time.Second, "-H", "-c", strconv.Itoa(conns), "-r", strconv.Itoa(rate), "-i", "5",
		"-u", "http://"+addr+"/", "-p", "3")
	close(stop)
	probe.check(t, "probe during slowloris")
	// Connections open within conns/rate s; each must go within 3x the
	// read-header timeout.
	by := conns/rate + int(3*slowReadHeaderTimeout/time.Second)
	checkSlowAttack(t, rows, conns, by, fmt.Sprintf("read-header timeout %v", slowReadHeaderTimeout))

	probeClient.CloseIdleConnections()
	waitConnsDrained(t, s.g, addr, 2, 3*slowIdleTimeout)
	s.checkAlive(t)
}

// TestSlowClientSlowBody: 200 connections send complete heads announcing
// an 8 KiB body, then trickle it a few bytes every 10 s (slowhttptest -B;
// 10 s is twice the idle timeout). With --idle-timeout=5s each must be
// closed within 3x the idle timeout of opening (a body that makes no
// progress for longer than the idle timeout is abandoned), while a probe
// client keeps getting 200s.
func TestSlowClientSlowBody(t *testing.T) {
	t.Parallel()
	s := newAtkSetup(t, "slowbody", "--read-header-timeout", slowReadHeaderTimeout.String(), "--idle-timeout", slowIdleTimeout.String())
	addr := s.g.addr(s.plain)
	probeClient := newClient()
	stop := make(chan struct{})
	probe := startAtkProbe(probeClient, s.g.url(s.plain, "/probe"), s.host, 100*time.Millisecond, 600, stop)

	const conns, rate = 200, 100
	rows := runSlowhttptest(t, 25*time.Second, "-B", "-c", strconv.Itoa(conns), "-r", strconv.Itoa(rate), "-i", "10", "-s", "8192",
		"-u", "http://"+addr+"/", "-p", "3")
	close(stop)
	probe.check(t, "probe during slow body")
	by := conns/rate + int(3*slowIdleTimeout/time.Second)
	checkSlowAttack(t, rows, conns, by, fmt.Sprintf("idle timeout %v, body trickled every 10 s", slowIdleTimeout))

	probeClient.CloseIdleConnections()
	waitConnsDrained(t, s.g, addr, 2, 3*slowIdleTimeout)
	s.checkAlive(t)
}

// TestSlowClientSlowRead: 20 connections (4 KiB receive buffers) each ask
// for a 32 MiB response and never read it. Other HTTP/1.1 and HTTP/2
// clients keep getting answers, the gateway's memory stays bounded (the
// responses are not buffered whole), and once the slow readers go the
// gateway's connection count returns near zero.
func TestSlowClientSlowRead(t *testing.T) {
	t.Parallel()
	s := newAtkSetup(t, "slowread", "--read-header-timeout", slowReadHeaderTimeout.String(), "--idle-timeout", slowIdleTimeout.String())
	addr := s.g.addr(s.plain)
	const respSize, readers = 32 << 20, 20
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = 'a' + byte(i%26)
	}
	s.be.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/large" {
			return false
		}
		rc := http.NewResponseController(w)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(respSize))
		for sent := 0; sent < respSize; sent += len(chunk) {
			rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := w.Write(chunk); err != nil || r.Context().Err() != nil {
				return true
			}
		}
		return true
	})
	// Warm up, then measure.
	for i := 0; i < 3; i++ {
		if r := get(t, s.g.url(s.plain, "/warm"), s.host); r.status != 200 {
			t.Fatalf("warm-up: %v", r)
		}
	}
	base := atkRSS(t, s.g)

	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)},
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			}); err != nil {
				return err
			}
			return serr
		}}
	var slow []net.Conn
	for i := 0; i < readers; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		t.Cleanup(func() { c.Close() })
		slow = append(slow, c)
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "GET /large HTTP/1.1\r\nHost: %s\r\n\r\n", s.host); err != nil {
			t.Fatalf("write request: %v", err)
		}
	}
	if !pollUntil(10*time.Second, func() bool { return s.countPaths("/large") == readers }) {
		t.Fatalf("backend saw %d of %d slow-read requests", s.countPaths("/large"), readers)
	}

	// The responses are stuck in buffers now; other clients must not be.
	stop := make(chan struct{})
	p1 := startAtkProbe(newClient(), s.g.url(s.plain, "/probe-h1"), s.host, 50*time.Millisecond, 400, stop)
	p2 := startAtkProbe(atkH2CClient(t), s.g.url(s.plain, "/probe-h2"), s.host, 50*time.Millisecond, 400, stop)
	time.Sleep(8 * time.Second)
	close(stop)
	p1.check(t, "HTTP/1.1 probe during slow reads")
	p2.check(t, "h2c probe during slow reads")
	rss := atkRSS(t, s.g)
	open := atkConns(t, s.g, addr, "h1")
	t.Logf("gateway RSS %.1f MiB before, %.1f MiB with %d slow readers of %d MiB responses; %v HTTP/1 connections still open after 8 s (closing a client that reads nothing is not required here)",
		base/(1<<20), rss/(1<<20), readers, respSize>>20, open)
	if rss-base > atkMemAllowance() {
		t.Errorf("gateway RSS grew by %.1f MiB with %d slow readers (allowed %.0f MiB): responses are buffered for clients that do not read",
			(rss-base)/(1<<20), readers, atkMemAllowance()/(1<<20))
	}

	for _, c := range slow {
		c.Close()
	}
	waitConnsDrained(t, s.g, addr, 2, 3*slowIdleTimeout)
	s.checkAlive(t)
}
