package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// fakeClock is a settable clock for local buckets.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLocal(clock *fakeClock) *Limiter {
	return &Limiter{Now: clock.Now}
}

func rule(name string, requests uint32, period time.Duration, burst uint32) *ir.RateLimit {
	return &ir.RateLimit{Name: name, Key: ir.RateLimitClientIP, Requests: requests, Period: period, Burst: burst}
}

// allowN sends n requests for key and counts the allowed ones.
func allowN(l *Limiter, r *ir.RateLimit, key string, n int) int {
	allowed := 0
	for range n {
		if l.Allow(context.Background(), r, key).Allowed {
			allowed++
		}
	}
	return allowed
}

func TestLocalExactCounts(t *testing.T) {
	type step struct {
		advance time.Duration
		send    int
		allowed int
	}
	tests := []struct {
		name  string
		rule  *ir.RateLimit
		steps []step
	}{
		{"burst defaults to requests", rule("r", 10, time.Second, 0), []step{
			{0, 15, 10},
			{100 * time.Millisecond, 5, 1},
			{250 * time.Millisecond, 5, 2}, // 2.5 tokens: half a token kept
			{50 * time.Millisecond, 1, 1},  // the half plus a half
			{99 * time.Millisecond, 1, 0},
			{time.Millisecond, 1, 1},
			{time.Hour, 20, 10},
		}},
		{"burst above requests", rule("r", 2, time.Second, 5), []step{
			{0, 10, 5},
			{500 * time.Millisecond, 3, 1},
			{1500 * time.Millisecond, 5, 3},
			{10 * time.Second, 10, 5},
		}},
		{"burst below requests", rule("r", 10, time.Second, 2), []step{
			{0, 5, 2},
			{time.Second, 5, 2}, // refill stops at the burst
			{100 * time.Millisecond, 2, 1},
		}},
		{"interval not a whole number of ns", rule("r", 3, time.Second, 0), []step{
			{0, 5, 3},
			{333 * time.Millisecond, 1, 0}, // 0.999 token
			{time.Millisecond, 2, 1},       // 1.002 tokens
			{332 * time.Millisecond, 1, 0}, // 0.998
			{time.Millisecond, 1, 1},       // 1.001
			{3 * time.Second, 4, 3},
		}},
		{"one per hour", rule("r", 1, time.Hour, 0), []step{
			{0, 2, 1},
			{time.Hour - time.Nanosecond, 1, 0},
			{time.Nanosecond, 2, 1},
		}},
		{"huge values do not overflow", rule("r", 1<<32-1, 1000*time.Hour, 1<<32-1), []step{
			{0, 3, 3},
			{1000 * time.Hour, 3, 3},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			l := newLocal(clock)
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				if got := allowN(l, tt.rule, "k", s.send); got != s.allowed {
					t.Fatalf("step %d (+%v, %d requests): %d allowed, want %d", i, s.advance, s.send, got, s.allowed)
				}
			}
		})
	}
}

func TestLocalDecisionFields(t *testing.T) {
	type want struct {
		allowed    bool
		remaining  uint32
		reset      time.Duration
		retryAfter time.Duration
	}
	tests := []struct {
		name  string
		rule  *ir.RateLimit
		pre   int           // requests sent first
		wait  time.Duration // then the clock moves
		want  want          // for the next request
		limit uint32
	}{
		{"first request", rule("r", 10, time.Second, 0), 0, 0,
			want{true, 9, 100 * time.Millisecond, 0}, 10},
		{"last token", rule("r", 10, time.Second, 0), 9, 0,
			want{true, 0, time.Second, 0}, 10},
		{"denied", rule("r", 10, time.Second, 0), 10, 0,
			want{false, 0, time.Second, 100 * time.Millisecond}, 10},
		{"denied part way to a token", rule("r", 10, time.Second, 0), 10, 30 * time.Millisecond,
			want{false, 0, 970 * time.Millisecond, 70 * time.Millisecond}, 10},
		{"reset rounds up to the ns", rule("r", 3, time.Second, 0), 0, 0,
			want{true, 2, 333333334, 0}, 3},
		{"burst above limit", rule("r", 2, time.Minute, 6), 0, 0,
			want{true, 5, 30 * time.Second, 0}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			l := newLocal(clock)
			allowN(l, tt.rule, "k", tt.pre)
			clock.Advance(tt.wait)
			d := l.Allow(context.Background(), tt.rule, "k")
			got := want{d.Allowed, d.Remaining, d.Reset, d.RetryAfter}
			if got != tt.want || d.Limit != tt.limit || d.Window != tt.rule.Period || d.Err != nil {
				t.Fatalf("got %+v (limit %d, window %v, err %v), want %+v (limit %d)",
					got, d.Limit, d.Window, d.Err, tt.want, tt.limit)
			}
		})
	}
}

func TestLocalKeysAndRulesIndependent(t *testing.T) {
	clock := newFakeClock()
	l := newLocal(clock)
	a, b := rule("a", 2, time.Minute, 0), rule("b", 3, time.Minute, 0)
	tests := []struct {
		rule *ir.RateLimit
		key  string
		want int
	}{
		{a, "10.0.0.1", 2},
		{a, "10.0.0.2", 2},
		{a, "", 2},
		{b, "10.0.0.1", 3}, // same key, other rule
		{a, "10.0.0.1", 0}, // still exhausted
	}
	for _, tt := range tests {
		if got := allowN(l, tt.rule, tt.key, 5); got != tt.want {
			t.Errorf("rule %s key %q: %d allowed, want %d", tt.rule.Name, tt.key, got, tt.want)
		}
	}
}

func TestLocalConcurrentExact(t *testing.T) {
	l := newLocal(newFakeClock())
	r := rule("r", 50, time.Hour, 0)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				if l.Allow(context.Background(), r, "shared").Allowed {
					allowed.Add(1)
				}
				l.Allow(context.Background(), r, fmt.Sprintf("g%d-%d", g, i))
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 50 {
		t.Fatalf("%d allowed, want exactly 50", allowed.Load())
	}
}

func TestSetHeaders(t *testing.T) {
	tests := []struct {
		name string
		d    Decision
		want map[string]string // "" value: header absent
	}{
		{"allowed", Decision{Allowed: true, Limit: 100, Window: time.Minute, Remaining: 99, Reset: 600 * time.Millisecond},
			map[string]string{"RateLimit-Limit": "100", "RateLimit-Remaining": "99", "RateLimit-Reset": "1",
				"RateLimit-Policy": "100;w=60", "Retry-After": ""}},
		{"full bucket", Decision{Allowed: true, Limit: 5, Window: 90 * time.Second, Remaining: 5},
			map[string]string{"RateLimit-Reset": "0", "RateLimit-Policy": "5;w=90"}},
		{"denied, retry rounds up", Decision{Limit: 10, Window: time.Second, Reset: 1200 * time.Millisecond, RetryAfter: 1200 * time.Millisecond},
			map[string]string{"RateLimit-Remaining": "0", "RateLimit-Reset": "2", "Retry-After": "2", "RateLimit-Policy": "10;w=1"}},
		{"denied, whole seconds stay", Decision{Limit: 10, Window: time.Minute, Reset: 2 * time.Second, RetryAfter: 2 * time.Second},
			map[string]string{"Retry-After": "2", "RateLimit-Reset": "2"}},
		{"denied, retry at least 1", Decision{Limit: 10, Window: time.Second, RetryAfter: time.Nanosecond},
			map[string]string{"Retry-After": "1"}},
		{"denied, zero retry still 1", Decision{Limit: 10, Window: time.Second},
			map[string]string{"Retry-After": "1"}},
		{"sub-second window", Decision{Allowed: true, Limit: 10, Window: 100 * time.Millisecond},
			map[string]string{"RateLimit-Policy": "10;w=1"}},
		{"error, fail open", Decision{Allowed: true, Limit: 10, Window: time.Second, Err: ErrNoRedis},
			map[string]string{"RateLimit-Limit": "", "RateLimit-Policy": "", "Retry-After": ""}},
		{"error, fail closed", Decision{Limit: 10, Window: time.Second, Err: ErrNoRedis},
			map[string]string{"RateLimit-Limit": "", "Retry-After": ""}},
		{"no rule", Decision{Allowed: true},
			map[string]string{"RateLimit-Limit": "", "RateLimit-Remaining": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			tt.d.SetHeaders(h)
			for name, want := range tt.want {
				if got := h.Get(name); got != want {
					t.Errorf("%s = %q, want %q (all: %v)", name, got, want, h)
				}
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	base := rule("policy ns/p rule 0", 2, time.Minute, 0)
	with := func(f func(r *ir.RateLimit)) *ir.RateLimit {
		c := *base
		f(&c)
		return &c
	}
	tests := []struct {
		name   string
		update []*ir.RateLimit // applied after base is exhausted
		next   *ir.RateLimit   // then requests go to this rule
		want   int             // of 5 sent
	}{
		{"same rule, new pointer: counts kept", []*ir.RateLimit{with(func(*ir.RateLimit) {})}, nil, 0},
		{"burst raised: counts kept", []*ir.RateLimit{with(func(r *ir.RateLimit) { r.Burst = 4 })}, nil, 0},
		{"requests changed: reset", []*ir.RateLimit{with(func(r *ir.RateLimit) { r.Requests = 3 })}, nil, 3},
		{"period changed: reset", []*ir.RateLimit{with(func(r *ir.RateLimit) { r.Period = time.Hour })}, nil, 2},
		{"rule removed: buckets dropped", []*ir.RateLimit{rule("other", 1, time.Minute, 0)}, base, 2},
		{"rule made global: local buckets dropped", []*ir.RateLimit{with(func(r *ir.RateLimit) { r.Global = true })}, base, 2},
		{"nil and duplicate rules ignored", []*ir.RateLimit{nil, with(func(*ir.RateLimit) {}), with(func(r *ir.RateLimit) { r.Requests = 9 })}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLocal(newFakeClock())
			l.Update([]*ir.RateLimit{base})
			if got := allowN(l, base, "k", 5); got != 2 {
				t.Fatalf("before update: %d allowed, want 2", got)
			}
			l.Update(tt.update)
			next := tt.next
			if next == nil {
				next = tt.update[len(tt.update)-1]
				if tt.update[0] == nil {
					next = tt.update[1]
				}
			}
			if tt.next != nil && l.keys(base.Name) != 0 {
				t.Fatalf("%d keys of the removed rule kept", l.keys(base.Name))
			}
			if got := allowN(l, next, "k", 5); got != tt.want {
				t.Fatalf("after update: %d allowed, want %d", got, tt.want)
			}
		})
	}
}

func TestInvalidAndNilRules(t *testing.T) {
	l := newLocal(newFakeClock())
	tests := []struct {
		name    string
		rule    *ir.RateLimit
		allowed bool
		err     error
	}{
		{"nil rule", nil, true, nil},
		{"zero requests, fail closed", rule("r", 0, time.Second, 5), false, ErrInvalidRule},
		{"zero period, fail open", &ir.RateLimit{Name: "r", Requests: 1, FailOpen: true}, true, ErrInvalidRule},
		{"global without redis, fail open", &ir.RateLimit{Name: "g", Requests: 1, Period: time.Second, Global: true, FailOpen: true}, true, ErrNoRedis},
		{"global without redis, fail closed", &ir.RateLimit{Name: "g", Requests: 1, Period: time.Second, Global: true}, false, ErrNoRedis},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 3 {
				d := l.Allow(context.Background(), tt.rule, "k")
				if d.Allowed != tt.allowed || !errors.Is(d.Err, tt.err) {
					t.Fatalf("got allowed %v err %v, want %v %v", d.Allowed, d.Err, tt.allowed, tt.err)
				}
			}
		})
	}
}

func TestLocalMemoryBound(t *testing.T) {
	clock := newFakeClock()
	l := &Limiter{Now: clock.Now, MaxKeys: 1000}
	const capKeys = 1024 // MaxKeys rounded up to a multiple of 64
	r := rule("r", 10, time.Minute, 0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// A flood of distinct clients within one instant: no bucket is full
	// again, so the cap must evict live ones.
	for i := range 300_000 {
		l.Allow(context.Background(), r, fmt.Sprintf("client-%d", i))
		if i%50_000 == 0 && l.keys(r.Name) > capKeys {
			t.Fatalf("after %d keys: %d kept, cap %d", i+1, l.keys(r.Name), capKeys)
		}
	}
	if n := l.keys(r.Name); n > capKeys || n < capKeys/2 {
		t.Fatalf("%d keys kept, want at most %d (and not emptied)", n, capKeys)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// 300,000 unbounded buckets would take tens of MB.
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 8<<20 {
		t.Fatalf("heap grew by %d bytes", grown)
	}
	// The limiter still limits after the flood.
	if got := allowN(l, r, "hot", 15); got != 10 {
		t.Fatalf("hot key: %d allowed, want 10", got)
	}
}

func TestLocalSweepsIdleFullBuckets(t *testing.T) {
	clock := newFakeClock()
	l := newLocal(clock)
	r := rule("r", 10, time.Minute, 0)
	for i := range 1000 {
		l.Allow(context.Background(), r, fmt.Sprintf("old-%d", i))
	}
	if n := l.keys(r.Name); n != 1000 {
		t.Fatalf("%d keys, want 1000 (no bucket is full yet)", n)
	}
	clock.Advance(time.Minute) // every old bucket is full again
	for i := range 5000 {
		l.Allow(context.Background(), r, fmt.Sprintf("new-%d", i))
	}
	if n := l.keys(r.Name); n != 5000 {
		t.Fatalf("%d keys, want 5000: the idle full buckets should be swept", n)
	}
	// An evicted bucket was full: coming back gives the same answer.
	if d := l.Allow(context.Background(), r, "old-1"); !d.Allowed || d.Remaining != 9 {
		t.Fatalf("returning key: %+v", d)
	}
}

func TestAllowZeroAllocs(t *testing.T) {
	l := newLocal(newFakeClock())
	open, closed := rule("open", 1<<30, time.Second, 0), rule("closed", 1, time.Hour, 0)
	l.Allow(context.Background(), open, "203.0.113.7")
	l.Allow(context.Background(), closed, "203.0.113.7")
	tests := []struct {
		name    string
		rule    *ir.RateLimit
		allowed bool
	}{
		{"allowed", open, true},
		{"denied", closed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			allocs := testing.AllocsPerRun(1000, func() {
				if d := l.Allow(ctx, tt.rule, "203.0.113.7"); d.Allowed != tt.allowed {
					t.Fatalf("allowed %v, want %v", d.Allowed, tt.allowed)
				}
			})
			if allocs != 0 {
				t.Fatalf("%v allocations per Allow, want 0", allocs)
			}
		})
	}
}

func BenchmarkAllowLocal(b *testing.B) {
	l := &Limiter{}
	r := rule("r", 1<<30, time.Second, 0)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("10.0.%d.%d", i/256, i%256)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(context.Background(), r, keys[i%len(keys)])
			i++
		}
	})
}
