package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOverload checks the two overload guards: over --memory-limit new
// requests get 503 with Connection: close (and the metric says so), and at
// --max-connections further connections are closed at once while the open
// ones keep working.
func TestOverload(t *testing.T) {
	t.Parallel()
	t.Run("memory over the limit sheds with 503", func(t *testing.T) {
		t.Parallel()
		ip := newLoopbackIP(t)
		p := freePort(t, ip)
		be := newBackend(t, "shed")
		g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: p})+be.yaml()+simpleRoute("shed", nil, "shed"),
			"--memory-limit=1") // 1 MiB: always over
		var r result
		ok := pollUntil(5*time.Second, func() bool {
			r = get(t, g.url(p, "/x"), "")
			return r.status == http.StatusServiceUnavailable
		})
		if !ok {
			t.Fatalf("got %v, want 503 while over the memory limit", r)
		}
		raw := rawExchange(t, g.addr(p), "GET /x HTTP/1.1\r\nHost: shed.test\r\n\r\n", true)
		if raw.resp.StatusCode != http.StatusServiceUnavailable || !raw.resp.Close || !raw.closed {
			t.Errorf("shed response: status %d, Connection: close %v, connection closed %v", raw.resp.StatusCode, raw.resp.Close, raw.closed)
		}
		_, body := g.adminBody("/metrics")
		if !strings.Contains(body, "meshgate_overload_shedding 1") || strings.Contains(body, "meshgate_overload_shed_requests_total 0") {
			t.Errorf("metrics do not show shedding")
		}
	})
	for _, flag := range []string{"--max-connections=2", "--max-connections-total=2"} {
		t.Run("connections beyond the cap are closed: "+flag, func(t *testing.T) {
			t.Parallel()
			connectionCap(t, flag)
		})
	}
}

// connectionCap opens two connections under a cap of two, then checks a
// third is closed at once while the first two keep working.
func connectionCap(t *testing.T, flag string) {
	{
		ip := newLoopbackIP(t)
		p, p2 := freePort(t, ip), freePort(t, ip)
		be := newBackend(t, "cap")
		g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: p}, listener{name: "http2", port: p2})+be.yaml()+simpleRoute("cap", nil, "cap"),
			flag)
		pa := p
		if strings.Contains(flag, "total") {
			// The total cap counts across listeners: the first
			// connection goes to the other one.
			pa = p2
		}
		send := func(c io.ReadWriter, br *bufio.Reader) (int, error) {
			fmt.Fprintf(c, "GET /ok HTTP/1.1\r\nHost: cap.test\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return 0, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		a, b := rawDial(t, g.addr(pa)), rawDial(t, g.addr(p))
		abr, bbr := bufio.NewReader(a), bufio.NewReader(b)
		for _, c := range []struct {
			rw io.ReadWriter
			br *bufio.Reader
		}{{a, abr}, {b, bbr}} {
			if st, err := send(c.rw, c.br); err != nil || st != 200 {
				t.Fatalf("connection within the cap: %d %v", st, err)
			}
		}
		extra := rawDial(t, g.addr(p))
		extra.SetDeadline(time.Now().Add(5 * time.Second))
		if st, err := send(extra, bufio.NewReader(extra)); err == nil {
			t.Fatalf("third connection got %d, want it closed", st)
		}
		if st, err := send(a, abr); err != nil || st != 200 {
			t.Fatalf("open connection after the refusal: %d %v", st, err)
		}
		_, body := g.adminBody("/metrics")
		if !strings.Contains(body, "meshgate_connections_refused_total{listener=") {
			t.Error("metrics do not count the refused connection")
		}
	}
}
