package e2e

import (
	"bufio"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redisServer is a redis-server process the test started, on 127.0.0.1:port,
// with no persistence: a restart loses every key.
type redisServer struct {
	t      *testing.T
	bin    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
	logs   *logBuffer
}

// startRedis runs redis-server on a free port of 127.0.0.1 and waits (at
// most 10 s) until it answers PING. It is killed when the test ends.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found: run `make test-deps` (make test does it; scripts/test-deps.sh installs the Debian package): %v", err)
	}
	r := &redisServer{t: t, bin: bin, port: freePort(t, "127.0.0.1"), logs: &logBuffer{}}
	r.start()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("redis-server log:\n%s", truncate(r.logs.String(), 10000))
		}
	})
	return r
}

func (r *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// start runs the server (again) on its port and waits until it answers.
func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan struct{})
	r.exited = exited
	cmd := r.cmd
	go func() {
		cmd.Wait()
		close(exited)
	}()
	ok := pollUntil(10*time.Second, func() bool {
		select {
		case <-exited:
			r.t.Fatalf("redis-server exited at start:\n%s", r.logs.String())
		default:
		}
		c, err := net.DialTimeout("tcp", r.addr(), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return false
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && strings.HasPrefix(line, "+PONG")
	})
	if !ok {
		r.t.Fatalf("redis-server on %s does not answer PING after 10 s", r.addr())
	}
}

// stop kills the server and waits (at most 10 s) until it exited.
func (r *redisServer) stop() {
	r.t.Helper()
	select {
	case <-r.exited:
		return
	default:
	}
	r.cmd.Process.Kill()
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		r.t.Errorf("redis-server pid %d did not exit after SIGKILL", r.cmd.Process.Pid)
	}
}

// TestTrafficRateLimit covers TrafficPolicy rate limits: a local limit per
// client address allows exactly its 5 requests, then answers 429 with
// Retry-After and the RateLimit-* headers, while another client address
// has its own count; a limit keyed by a header counts each value apart and
// leaves requests without the header alone; a global limit counted in a
// real Redis shared by two gateway processes allows exactly its limit over
// both; with Redis stopped a failOpen limit lets requests through and a
// fail-closed one answers 503; with Redis back, limiting resumes.
func TestTrafficRateLimit(t *testing.T) {
	t.Parallel()
	redis := startRedis(t)
	be := newBackend(t, "limited")
	const host = "limit.test"
	const globalLimit = 10
	routes := be.yaml() + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: limited, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["` + host + `"]
  rules:
  - name: by-client
    matches: [{path: {type: PathPrefix, value: /by-client}}]
    backendRefs: [` + ref("limited") + `]
  - name: by-header
    matches: [{path: {type: PathPrefix, value: /by-header}}]
    backendRefs: [` + ref("limited") + `]
  - name: global-open
    matches: [{path: {type: PathPrefix, value: /global-open}}]
    backendRefs: [` + ref("limited") + `]
  - name: global-closed
    matches: [{path: {type: PathPrefix, value: /global-closed}}]
    backendRefs: [` + ref("limited") + `]
` + trafficPolicy("per-client", "HTTPRoute", "limited", "by-client", `rateLimit:
  local: [{key: ClientIP, requests: 5, unit: Minute}]`) +
		trafficPolicy("per-user", "HTTPRoute", "limited", "by-header", `rateLimit:
  local: [{key: Header, header: x-user, requests: 3, unit: Minute}]`) +
		// An hour: no token comes back while the test runs.
		trafficPolicy("global-open", "HTTPRoute", "limited", "global-open", `rateLimit:
  failOpen: true
  global: [{key: Route, requests: `+strconv.Itoa(globalLimit)+`, unit: Hour}]`) +
		trafficPolicy("global-closed", "HTTPRoute", "limited", "global-closed", `rateLimit:
  global: [{key: Route, requests: `+strconv.Itoa(globalLimit)+`, unit: Hour}]`)
	ip1, ip2 := newLoopbackIP(t), newLoopbackIP(t)
	port1, port2 := freePort(t, ip1), freePort(t, ip2)
	g1 := startGateway(t, ip1, gatewayYAML(ip1, listener{name: "http", port: port1})+routes, "--redis", redis.addr())
	g2 := startGateway(t, ip2, gatewayYAML(ip2, listener{name: "http", port: port2})+routes, "--redis", redis.addr())
	c := newClient()
	defer c.CloseIdleConnections()
	urls := []string{g1.url(port1, ""), g2.url(port2, "")}

	// check429 checks the headers of a rate-limited answer.
	check429 := func(t *testing.T, r result, limit int, window time.Duration) {
		t.Helper()
		if r.status != http.StatusTooManyRequests || r.echo != nil {
			t.Fatalf("got %v, want the gateway's 429", r)
		}
		intIn := func(name string, lo, hi int64) {
			t.Helper()
			v, err := strconv.ParseInt(r.header.Get(name), 10, 64)
			if err != nil || v < lo || v > hi {
				t.Errorf("%s: %q, want an integer in %d..%d", name, r.header.Get(name), lo, hi)
			}
		}
		perToken := int64((window/time.Duration(limit) + time.Second - 1) / time.Second)
		intIn("Retry-After", 1, perToken)
		intIn("RateLimit-Limit", int64(limit), int64(limit))
		intIn("RateLimit-Remaining", 0, 0)
		intIn("RateLimit-Reset", 1, int64(window/time.Second))
		if got, want := r.header.Get("RateLimit-Policy"), strconv.Itoa(limit)+";w="+strconv.Itoa(int(window/time.Second)); got != want {
			t.Errorf("RateLimit-Policy %q, want %q", got, want)
		}
	}

	t.Run("local per client address", func(t *testing.T) {
		for i := 1; i <= 5; i++ {
			if r := do(t, c, request{url: g1.url(port1, "/by-client"), host: host}); r.status != http.StatusOK {
				t.Fatalf("request %d of 5: %v, want 200", i, r)
			}
		}
		for i := 6; i <= 8; i++ {
			check429(t, do(t, c, request{url: g1.url(port1, "/by-client"), host: host}), 5, time.Minute)
		}
		// Another client address has its own count.
		other := newClient()
		defer other.CloseIdleConnections()
		otherIP := newLoopbackIP(t)
		other.Transport.(*http.Transport).DialContext = (&net.Dialer{Timeout: 5 * time.Second,
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(otherIP)}}).DialContext
		for i := 1; i <= 5; i++ {
			if r := do(t, other, request{url: g1.url(port1, "/by-client"), host: host}); r.status != http.StatusOK {
				t.Fatalf("client %s, request %d of 5: %v, want 200", otherIP, i, r)
			}
		}
		check429(t, do(t, other, request{url: g1.url(port1, "/by-client"), host: host}), 5, time.Minute)
	})

	t.Run("local per header value", func(t *testing.T) {
		for _, user := range []string{"alice", "bob"} {
			h := http.Header{"X-User": {user}}
			for i := 1; i <= 3; i++ {
				if r := do(t, c, request{url: g1.url(port1, "/by-header"), host: host, header: h}); r.status != http.StatusOK {
					t.Fatalf("%s request %d of 3: %v, want 200", user, i, r)
				}
			}
			check429(t, do(t, c, request{url: g1.url(port1, "/by-header"), host: host, header: h}), 3, time.Minute)
		}
		// Without the header the rule does not apply.
		for i := 0; i < 10; i++ {
			if r := do(t, c, request{url: g1.url(port1, "/by-header"), host: host}); r.status != http.StatusOK {
				t.Fatalf("request %d without x-user: %v, want 200", i+1, r)
			}
		}
	})

	// sendBoth sends n requests for path, alternating between the two
	// gateways, and counts the statuses.
	sendBoth := func(t *testing.T, path string, n int) (map[int]int, []result) {
		t.Helper()
		counts := map[int]int{}
		var limited []result
		for i := 0; i < n; i++ {
			r := do(t, c, request{url: urls[i%2] + path, host: host})
			counts[r.status]++
			if r.status == http.StatusTooManyRequests {
				limited = append(limited, r)
			}
		}
		return counts, limited
	}

	t.Run("global over two gateways, Redis up, down and back", func(t *testing.T) {
		counts, limited := sendBoth(t, "/global-closed", 3*globalLimit)
		if counts[200] != globalLimit || counts[429] != 2*globalLimit {
			t.Fatalf("%d requests over both gateways: statuses %v, want exactly %d × 200 and the rest 429", 3*globalLimit, counts, globalLimit)
		}
		check429(t, limited[0], globalLimit, time.Hour)
		if counts, _ := sendBoth(t, "/global-open", 4); counts[200] != 4 {
			t.Fatalf("fail-open limit with Redis up, under its limit: %v, want 4 × 200", counts)
		}

		redis.stop()
		if counts, _ := sendBoth(t, "/global-open", 2*globalLimit); counts[200] != 2*globalLimit {
			t.Fatalf("failOpen: true with Redis down: %v, want every request allowed", counts)
		}
		if counts, _ := sendBoth(t, "/global-closed", 6); counts[503] != 6 {
			t.Fatalf("failOpen: false with Redis down: %v, want every request 503", counts)
		}

		// Redis comes back empty (no persistence): the buckets start full.
		redis.start()
		allowed := 0
		for i, u := range urls {
			ok := pollUntil(10*time.Second, func() bool {
				r := do(t, c, request{url: u + "/global-closed", host: host})
				if r.status == http.StatusOK {
					allowed++
				}
				return r.status == http.StatusOK
			})
			if !ok {
				t.Fatalf("gateway %d: /global-closed not allowed again within 10 s of Redis coming back", i+1)
			}
		}
		counts, _ = sendBoth(t, "/global-closed", 3*globalLimit)
		if counts[200]+allowed != globalLimit || counts[200]+counts[429] != 3*globalLimit {
			t.Fatalf("after Redis came back: %d allowed while reconnecting, then statuses %v: want %d allowed in all and the rest 429",
				allowed, counts, globalLimit)
		}
		if counts, _ := sendBoth(t, "/global-open", 3*globalLimit); counts[200] != globalLimit || counts[429] != 2*globalLimit {
			t.Fatalf("fail-open limit after Redis came back: %v, want exactly %d × 200 and the rest 429", counts, globalLimit)
		}
	})
}
