package rollout

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/obs"
)

const testConfig = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - name: main
    backendRefs:
    - {name: v1, port: 80}
    - {name: v2, port: 80, weight: 0}
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Rollout
metadata: {name: app, namespace: default}
spec:
  targetRef: {kind: HTTPRoute, name: app, ruleName: main}
  stableBackend: {name: v1}
  canaryBackend: {name: v2}
  steps:
  - {weight: 5, minDuration: 10s, minRequests: 20}
  - {weight: 50, minDuration: 10s, minRequests: 20}
  analysis:
    maxErrorRate: "5"
    maxP99Latency: 500ms
    maxErrorRateIncrease: "1"
    maxP99Increase: 50
`

type fixture struct {
	t     *testing.T
	e     *Engine
	now   time.Time
	snap  *config.Snapshot
	store *FileStore
}

func newFixture(t *testing.T, extra string, store string) *fixture {
	f := &fixture{t: t, now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.e = NewEngine(NewSink(), true)
	f.e.Now = func() time.Time { return f.now }
	if store == "" {
		store = filepath.Join(t.TempDir(), "state.json")
	}
	f.store = &FileStore{Path: store}
	f.e.Store = f.store
	f.load(extra)
	return f
}

// load shows the engine a snapshot whose Rollout spec has extra lines.
func (f *fixture) load(extra string) {
	f.t.Helper()
	cfg := testConfig
	if extra != "" {
		cfg += "  " + strings.ReplaceAll(strings.TrimSpace(extra), "\n", "\n  ") + "\n"
	}
	s, err := config.Parse("test.yaml", []byte(cfg))
	if err != nil || len(s.Rejected) > 0 {
		f.t.Fatalf("parse: %v %v", err, s.Rejected)
	}
	f.snap = s
	f.e.Prepare(s)
}

// serve records n requests to backend ("v1" or "v2") with status and latency.
func (f *fixture) serve(backend string, n, status int, d time.Duration) {
	for i := 0; i < n; i++ {
		r := &obs.Request{Route: "default/app", Rule: 0, Backend: "service/default/" + backend + ":80", Status: status, Duration: d}
		f.e.Sink.ObserveRequest(r)
	}
}

func (f *fixture) tick(d time.Duration) {
	f.now = f.now.Add(d)
	f.e.Tick()
}

func (f *fixture) want(phase string, step, weight int32) {
	f.t.Helper()
	st := f.e.Rollouts()["default/app"]
	if string(st.Phase) != phase || st.Step != step || st.CanaryWeight != weight {
		f.t.Fatalf("rollout is %s step %d weight %d (%s), want %s step %d weight %d", st.Phase, st.Step, st.CanaryWeight, st.Message, phase, step, weight)
	}
	// The translator sees the same weight.
	p, _ := f.e.Prepare(f.snap)
	if got := p.Rollouts[0].Status.CanaryWeight; got != weight {
		f.t.Fatalf("Prepare hands the translator weight %d, want %d", got, weight)
	}
}

func (f *fixture) message() string { return f.e.Rollouts()["default/app"].Message }

func TestAdvanceThroughSteps(t *testing.T) {
	f := newFixture(t, "", "")
	f.want("Progressing", 0, 5)
	f.serve("v2", 30, 200, 10*time.Millisecond)
	f.serve("v1", 300, 200, 10*time.Millisecond)
	f.tick(5 * time.Second)
	f.want("Progressing", 0, 5) // minDuration not reached
	f.tick(5 * time.Second)
	f.want("Progressing", 1, 50)
	f.serve("v2", 10, 200, 10*time.Millisecond)
	f.tick(20 * time.Second)
	f.want("Progressing", 1, 50) // 10 of 20 requests
	f.serve("v2", 10, 200, 10*time.Millisecond)
	f.tick(time.Second)
	f.want("Succeeded", 1, 100)
}

func TestRollbackOnErrorRate(t *testing.T) {
	f := newFixture(t, "", "")
	f.serve("v1", 100, 200, time.Millisecond)
	f.serve("v2", 5, 500, time.Millisecond)
	f.tick(time.Second)
	f.want("Progressing", 0, 5) // 5 requests: too few to judge
	f.serve("v2", 5, 200, time.Millisecond)
	f.tick(time.Second)
	f.want("RolledBack", 0, 0)
	if m := f.message(); !strings.Contains(m, "canary error rate 50.00% > maxErrorRate 5%") {
		t.Errorf("message %q", m)
	}
	if f.e.Rollbacks()["default/app"] != 1 {
		t.Errorf("rollbacks %v", f.e.Rollbacks())
	}
}

func TestRollbackOnP99(t *testing.T) {
	f := newFixture(t, "", "")
	f.serve("v1", 100, 200, time.Millisecond)
	f.serve("v2", 99, 200, 900*time.Millisecond)
	f.tick(time.Second)
	f.want("Progressing", 0, 5) // a p99 needs 100 samples
	f.serve("v2", 1, 200, 900*time.Millisecond)
	f.tick(time.Second)
	f.want("RolledBack", 0, 0)
	if m := f.message(); !strings.Contains(m, "p99 latency") || !strings.Contains(m, "> maxP99Latency 500ms") {
		t.Errorf("message %q", m)
	}
}

func TestRollbackRelativeToStable(t *testing.T) {
	// 4% errors passes maxErrorRate 5 but not stable (0%) + 1 point.
	f := newFixture(t, "", "")
	f.serve("v1", 100, 200, time.Millisecond)
	f.serve("v2", 96, 200, time.Millisecond)
	f.serve("v2", 4, 503, time.Millisecond)
	f.tick(time.Second)
	f.want("RolledBack", 0, 0)
	if m := f.message(); !strings.Contains(m, "maxErrorRateIncrease 1 points") {
		t.Errorf("message %q", m)
	}

	// Canary p99 100ms vs stable 20ms: more than 50% slower.
	g := newFixture(t, "", "")
	g.serve("v1", 100, 200, 20*time.Millisecond)
	g.serve("v2", 100, 200, 100*time.Millisecond)
	g.tick(time.Second)
	g.want("RolledBack", 0, 0)
	if m := g.message(); !strings.Contains(m, "maxP99Increase 50%") {
		t.Errorf("message %q", m)
	}

	// A stable backend failing as much keeps the canary in.
	h := newFixture(t, "", "")
	h.serve("v1", 96, 200, time.Millisecond)
	h.serve("v1", 4, 503, time.Millisecond)
	h.serve("v2", 96, 200, time.Millisecond)
	h.serve("v2", 4, 503, time.Millisecond)
	h.tick(time.Second)
	h.want("Progressing", 0, 5)
}

func TestGRPCErrorsCount(t *testing.T) {
	f := newFixture(t, "", "")
	for i := 0; i < 20; i++ {
		f.e.Sink.ObserveRequest(&obs.Request{Route: "default/app", Backend: "service/default/v2:80~policy", Status: 200, GRPC: true, GRPCStatus: "14"})
	}
	f.tick(time.Second)
	f.want("RolledBack", 0, 0)
}

func TestPauseResume(t *testing.T) {
	f := newFixture(t, "paused: true", "")
	f.want("Paused", 0, 5)
	f.serve("v2", 100, 200, time.Millisecond)
	f.tick(time.Minute)
	f.want("Paused", 0, 5)
	f.load("")
	f.want("Progressing", 0, 5)
	// The window restarted at resume: the paused traffic does not count.
	f.tick(11 * time.Second)
	f.want("Progressing", 0, 5)
	f.serve("v2", 20, 200, time.Millisecond)
	f.tick(time.Second)
	f.want("Progressing", 1, 50)
	// Pause mid-rollout holds step 2.
	f.load("paused: true")
	f.want("Paused", 1, 50)
}

func TestPromoteAndAbort(t *testing.T) {
	f := newFixture(t, "", "")
	f.load("promote: true")
	f.want("Succeeded", 0, 100)

	g := newFixture(t, "", "")
	g.load("abort: true")
	g.want("RolledBack", 0, 0)
	if g.e.Rollbacks()["default/app"] != 0 {
		t.Errorf("an abort is not a threshold rollback")
	}
	g.load("")
	g.want("Progressing", 0, 5) // abort removed: starts over
}

func TestRestartContinuesFromState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	f := newFixture(t, "", path)
	f.serve("v2", 30, 200, time.Millisecond)
	f.tick(11 * time.Second)
	f.want("Progressing", 1, 50)

	g := newFixture(t, "", path)
	g.now = f.now
	g.want("Progressing", 1, 50)
	// A new revision starts over.
	g.load("revision: v3")
	g.want("Progressing", 0, 5)
}

func TestQuantile(t *testing.T) {
	s := NewSink()
	c := s.track(key{"r", 0, "b"})
	for i := 0; i < 99; i++ {
		s.ObserveRequest(&obs.Request{Route: "r", Backend: "b", Status: 200, Duration: 10 * time.Millisecond})
	}
	s.ObserveRequest(&obs.Request{Route: "r", Backend: "b", Status: 200, Duration: time.Second})
	f := c.read().since(reading{})
	if f.P99 < 8*time.Millisecond || f.P99 > 12*time.Millisecond {
		t.Errorf("p99 of 99x10ms+1x1s = %s, want about 10ms", f.P99)
	}
	if n := testing.AllocsPerRun(100, func() {
		s.ObserveRequest(&obs.Request{Route: "r", Backend: "b~x", Status: 200, Duration: time.Millisecond})
	}); n > 1 {
		// The one allocation is the test's own *obs.Request.
		t.Errorf("ObserveRequest allocates %.0f times", n)
	}
}
