package ratelimit

import (
	"bufio"
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// redisServer is a real redis-server on a loopback port, for one test.
type redisServer struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	out  *bytes.Buffer
	// stopFn kills the running server and waits for it; nil when stopped.
	stopFn func()
}

// startRedis runs redis-server on a free loopback port until the test ends.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (%v): the global rate-limit tests need it; `make test` installs it (scripts/test-deps.sh)", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &redisServer{t: t, bin: bin, port: port, dir: t.TempDir()}
	t.Cleanup(r.stop)
	r.start()
	return r
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// start runs the server on r.port and waits until it answers PING.
func (r *redisServer) start() {
	r.t.Helper()
	r.out = &bytes.Buffer{}
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir)
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for !r.ping() {
		select {
		case <-exited:
			r.t.Fatalf("redis-server exited on port %d:\n%s", r.port, r.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			r.t.Fatalf("redis-server on port %d does not answer PING:\n%s", r.port, r.out)
		}
	}
	r.stopFn = func() {
		cmd.Process.Kill()
		<-exited
	}
}

// ping reports whether the server answers PING.
func (r *redisServer) ping() bool {
	c, err := net.DialTimeout("tcp", r.addr(), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// stop kills the server, if running.
func (r *redisServer) stop() {
	if r.stopFn != nil {
		r.stopFn()
		r.stopFn = nil
	}
}

func newGlobal(t *testing.T, addr string) *Limiter {
	t.Helper()
	l, err := New(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func globalRule(name string, requests uint32, period time.Duration, burst uint32, failOpen bool) *ir.RateLimit {
	return &ir.RateLimit{Name: name, Key: ir.RateLimitClientIP, Requests: requests, Period: period,
		Burst: burst, Global: true, FailOpen: failOpen}
}

func TestGlobalSharedCount(t *testing.T) {
	srv := startRedis(t)
	replicas := []*Limiter{newGlobal(t, srv.addr()), newGlobal(t, srv.addr())}
	ctx := context.Background()
	tests := []struct {
		name string
		rule *ir.RateLimit
		key  string
		send int
		want int
	}{
		{"route key", globalRule("policy ns/p rule 0", 5, time.Hour, 0, false), "", 12, 5},
		{"client key", globalRule("policy ns/p rule 0", 5, time.Hour, 0, false), "192.0.2.1", 12, 5},
		{"other client", globalRule("policy ns/p rule 0", 5, time.Hour, 0, false), "192.0.2.2", 3, 3},
		{"burst", globalRule("policy ns/p rule 1", 1, time.Hour, 7, true), "192.0.2.1", 10, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allowed := 0
			for i := range tt.send {
				d := replicas[i%2].Allow(ctx, tt.rule, tt.key) // alternate replicas
				if d.Err != nil {
					t.Fatalf("request %d: %v", i, d.Err)
				}
				burst := tt.rule.Burst
				if burst == 0 {
					burst = tt.rule.Requests
				}
				if d.Allowed {
					allowed++
					if want := burst - uint32(allowed); d.Remaining != want {
						t.Fatalf("request %d: remaining %d, want %d", i, d.Remaining, want)
					}
				} else if d.RetryAfter <= 0 || d.Remaining != 0 {
					t.Fatalf("request %d denied with %+v", i, d)
				}
			}
			if allowed != tt.want {
				t.Fatalf("%d allowed across two replicas, want %d", allowed, tt.want)
			}
			key := redisKey(tt.rule, tt.key)
			if !strings.HasPrefix(key, "meshgate:rl:"+tt.rule.Name+":") {
				t.Fatalf("key %q", key)
			}
			ttl, err := replicas[0].Redis.PTTL(ctx, key).Result()
			if err != nil || ttl <= 0 {
				t.Fatalf("key %q: ttl %v, err %v", key, ttl, err)
			}
		})
	}
}

// TestGlobalMatchesLocal runs the same random traffic through the Lua script
// (with a fixed server clock) and the local buckets: the counts must agree
// exactly.
func TestGlobalMatchesLocal(t *testing.T) {
	srv := startRedis(t)
	g := newGlobal(t, srv.addr())
	ctx := context.Background()
	rules := []*ir.RateLimit{
		rule("three per 10s", 3, 10*time.Second, 0),
		rule("burst above", 10, 10*time.Second, 20),
		rule("one per hour", 1, time.Hour, 0),
		rule("burst below", 7, 30*time.Second, 3),
		rule("many", 1000, time.Minute, 1),
	}
	for _, r := range rules {
		t.Run(r.Name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(r.Requests)))
			clock := newFakeClock()
			local := newLocal(clock)
			p, _ := paramsOf(r)
			const startUS = 1_780_000_000_000_000 // a realistic Unix time in µs
			var elapsedUS int64
			step := int64(r.Period/time.Microsecond) / int64(r.Requests) * 2
			for i := range 300 {
				adv := rng.Int64N(step + 1)
				if rng.IntN(4) == 0 {
					adv = 0 // bursts at one instant
				}
				elapsedUS += adv
				clock.Advance(time.Duration(adv) * time.Microsecond)
				want := local.Allow(ctx, r, "k")
				got := g.allowGlobal(ctx, r, p, "k", startUS+elapsedUS)
				if got.Err != nil {
					t.Fatal(got.Err)
				}
				if got.Allowed != want.Allowed || got.Remaining != want.Remaining ||
					absDiff(got.Reset, want.Reset) >= time.Microsecond ||
					absDiff(got.RetryAfter, want.RetryAfter) >= time.Microsecond {
					t.Fatalf("step %d (+%dµs): redis %+v, local %+v", i, adv, got, want)
				}
			}
		})
	}
}

func absDiff(a, b time.Duration) time.Duration {
	if a > b {
		return a - b
	}
	return b - a
}

func TestGlobalKeyExpiry(t *testing.T) {
	srv := startRedis(t)
	l := newGlobal(t, srv.addr())
	ctx := context.Background()
	r := globalRule("short", 2, 300*time.Millisecond, 0, false)
	if got := allowN(l, r, "k", 3); got != 2 {
		t.Fatalf("%d allowed, want 2", got)
	}
	key := redisKey(r, "k")
	ttl, err := l.Redis.PTTL(ctx, key).Result()
	if err != nil || ttl <= 0 || ttl > 2*r.Period {
		t.Fatalf("ttl %v (err %v), want within (0, %v]", ttl, err, 2*r.Period)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := l.Redis.Exists(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("key %q never expired", key)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := l.Allow(ctx, r, "k"); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("after expiry: %+v, want a full bucket", d)
	}
}

func TestGlobalRedisOutage(t *testing.T) {
	srv := startRedis(t)
	l := newGlobal(t, srv.addr())
	ctx := context.Background()
	open := globalRule("open", 3, time.Hour, 0, true)
	closed := globalRule("closed", 3, time.Hour, 0, false)
	for _, r := range []*ir.RateLimit{open, closed} {
		if d := l.Allow(ctx, r, "k"); !d.Allowed || d.Err != nil {
			t.Fatalf("%s before outage: %+v", r.Name, d)
		}
	}

	srv.stop()
	tests := []struct {
		rule    *ir.RateLimit
		allowed bool
	}{
		{open, true},
		{closed, false},
	}
	for _, tt := range tests {
		for i := range 5 { // more than the remaining tokens: none are counted
			d := l.Allow(ctx, tt.rule, "k")
			if d.Allowed != tt.allowed || d.Err == nil {
				t.Fatalf("%s, redis down, request %d: %+v, want allowed=%v with an error", tt.rule.Name, i, d, tt.allowed)
			}
			h := make(map[string][]string)
			d.SetHeaders(h)
			if len(h) != 0 {
				t.Fatalf("headers on an error decision: %v", h)
			}
		}
	}

	srv.start() // same port, empty data
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := l.Allow(ctx, closed, "probe")
		if d.Err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("limiter never reconnected: %v", d.Err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, r := range []*ir.RateLimit{open, closed} {
		allowed := 0
		for i := range 5 {
			d := l.Allow(ctx, r, "after")
			if d.Err != nil {
				t.Fatalf("%s after restart, request %d: %v", r.Name, i, d.Err)
			}
			if d.Allowed {
				allowed++
			}
		}
		if allowed != 3 {
			t.Fatalf("%s after restart: %d allowed, want 3", r.Name, allowed)
		}
	}
}

// TestGlobalSlowRedis: a Redis that accepts but never answers costs each
// request at most the Limiter's Timeout, then the rule's FailOpen decides.
func TestGlobalSlowRedis(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // read nothing, answer nothing
		}
	}()
	l := newGlobal(t, ln.Addr().String())
	l.Timeout = 50 * time.Millisecond
	for _, r := range []*ir.RateLimit{globalRule("open", 1, time.Second, 0, true), globalRule("closed", 1, time.Second, 0, false)} {
		d := l.Allow(context.Background(), r, "k")
		if d.Allowed != r.FailOpen || d.Err == nil {
			t.Fatalf("%s: %+v, want allowed=%v with an error", r.Name, d, r.FailOpen)
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		addr      string
		wantErr   bool
		wantRedis bool
	}{
		{"", false, false},
		{"127.0.0.1:6379", false, true},
		{"redis://user:pass@127.0.0.1:6379/2", false, true},
		{"localhost", true, false},
		{"redis://%zz", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			l, err := New(tt.addr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if (l.Redis != nil) != tt.wantRedis {
				t.Fatalf("redis client %v, want %v", l.Redis != nil, tt.wantRedis)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
