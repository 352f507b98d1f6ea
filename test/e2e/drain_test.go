package e2e

import (
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestShutdownReadinessFirst: on SIGTERM with --shutdown-delay, /ready
// fails at once while requests are still served (so a load balancer stops
// sending before anything is refused), then the gateway drains and exits 0.
func TestShutdownReadinessFirst(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	be := newBackend(t, "drain")
	g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: p})+be.yaml()+simpleRoute("drain", nil, "drain"),
		"--shutdown-delay=2s")
	if code := g.adminGet("/ready"); code != 200 {
		t.Fatalf("/ready before SIGTERM: %d", code)
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !pollUntil(2*time.Second, func() bool { return g.adminGet("/ready") == http.StatusServiceUnavailable }) {
		t.Fatal("/ready did not turn 503 after SIGTERM")
	}
	// Still serving new connections during the delay.
	for i := 0; i < 5; i++ {
		if r := get(t, g.url(p, "/during"), ""); r.status != 200 {
			t.Fatalf("request during the shutdown delay: %v", r)
		}
	}
	select {
	case <-g.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not exit after the delay and drain")
	}
	if g.exitErr != nil {
		t.Fatalf("exit: %v, want 0", g.exitErr)
	}
}
