package filters

import (
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// splitmix64 is a deterministic stream of well-mixed 64-bit values, so the
// rate tests draw the same numbers on every run.
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// withinBinomial reports whether k successes out of n are within 5 standard
// deviations (plus one for discreteness) of the rate p.
func withinBinomial(k, n int, p float64) (ok bool, want, tol float64) {
	want = float64(n) * p
	tol = 5*math.Sqrt(float64(n)*p*(1-p)) + 1
	return math.Abs(float64(k)-want) <= tol, want, tol
}

func TestCompileFault(t *testing.T) {
	t.Parallel()
	delay := &ir.FaultDelay{Duration: time.Second, Percent: 50}
	tests := []struct {
		name    string
		f       *ir.Fault
		wantNil bool
		wantErr bool
	}{
		{name: "nil", f: nil, wantNil: true},
		{name: "nothing injected", f: &ir.Fault{Name: "ns/f"}, wantNil: true},
		{name: "delay", f: &ir.Fault{Delay: delay}},
		{name: "abort http", f: &ir.Fault{Abort: &ir.FaultAbort{HTTPStatus: 503, Percent: 1}}},
		{name: "abort grpc only", f: &ir.Fault{Abort: &ir.FaultAbort{GRPCStatus: ptr(14), Percent: 1}}},
		{name: "percent over 100 clamped", f: &ir.Fault{Delay: &ir.FaultDelay{Duration: 1, Percent: 250}}},
		{name: "empty header name", f: &ir.Fault{Delay: delay, Headers: []ir.StringMatch{{Name: "", Value: "x"}}}, wantErr: true},
		{name: "bad regex", f: &ir.Fault{Delay: delay, Headers: []ir.StringMatch{{Type: ir.MatchRegularExpression, Name: "x", Value: "("}}}, wantErr: true},
		{name: "unknown match type", f: &ir.Fault{Delay: delay, Headers: []ir.StringMatch{{Type: "Prefix", Name: "x", Value: "a"}}}, wantErr: true},
		{name: "negative delay", f: &ir.Fault{Delay: &ir.FaultDelay{Duration: -1, Percent: 1}}, wantErr: true},
		{name: "NaN percent", f: &ir.Fault{Delay: &ir.FaultDelay{Duration: 1, Percent: math.NaN()}}, wantErr: true},
		{name: "abort without status", f: &ir.Fault{Abort: &ir.FaultAbort{Percent: 1}}, wantErr: true},
		{name: "abort status 1xx", f: &ir.Fault{Abort: &ir.FaultAbort{HTTPStatus: 100, Percent: 1}}, wantErr: true},
		{name: "abort status 600", f: &ir.Fault{Abort: &ir.FaultAbort{HTTPStatus: 600, Percent: 1}}, wantErr: true},
		{name: "abort grpc 17", f: &ir.Fault{Abort: &ir.FaultAbort{HTTPStatus: 503, GRPCStatus: ptr(17), Percent: 1}}, wantErr: true},
		{name: "abort grpc negative", f: &ir.Fault{Abort: &ir.FaultAbort{HTTPStatus: 503, GRPCStatus: ptr(-1), Percent: 1}}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CompileFault(tc.f)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && (got == nil) != tc.wantNil {
				t.Fatalf("got %v, want nil %v", got, tc.wantNil)
			}
		})
	}
}

// TestFaultDecideEdges pins the exact behaviour at 0% and 100% and the
// extreme draws, and what an abort carries.
func TestFaultDecideEdges(t *testing.T) {
	t.Parallel()
	mk := func(dp, ap float64, grpc *int) *Fault {
		f, err := CompileFault(&ir.Fault{
			Delay: &ir.FaultDelay{Duration: 2 * time.Second, Percent: dp},
			Abort: &ir.FaultAbort{HTTPStatus: 503, GRPCStatus: grpc, Percent: ap},
		})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	draws := []uint64{0, 1, 1<<32 - 1, 1 << 32, 1<<63 - 1, 1 << 63, math.MaxUint64}
	tests := []struct {
		name string
		f    *Fault
		rnd  []uint64
		want FaultDecision
	}{
		{name: "nil fault", f: nil, rnd: draws, want: NoFault},
		{name: "0% never", f: mk(0, 0, nil), rnd: draws, want: NoFault},
		{name: "100% always", f: mk(100, 100, nil), rnd: draws,
			want: FaultDecision{Delay: 2 * time.Second, Abort: 503, GRPCStatus: -1}},
		{name: "100% always with grpc status", f: mk(100, 100, ptr(8)), rnd: draws,
			want: FaultDecision{Delay: 2 * time.Second, Abort: 503, GRPCStatus: 8}},
		{name: "over 100% clamped to always", f: mk(1000, 1000, nil), rnd: draws,
			want: FaultDecision{Delay: 2 * time.Second, Abort: 503, GRPCStatus: -1}},
		{name: "negative clamped to never", f: mk(-5, -5, nil), rnd: draws, want: NoFault},
		// 50%: the delay reads the high half, the abort the low half.
		{name: "50%: zero draw fires both", f: mk(50, 50, nil), rnd: []uint64{0},
			want: FaultDecision{Delay: 2 * time.Second, Abort: 503, GRPCStatus: -1}},
		{name: "50%: max draw fires neither", f: mk(50, 50, nil), rnd: []uint64{math.MaxUint64}, want: NoFault},
		{name: "50%: high half low, low half high: delay only", f: mk(50, 50, nil), rnd: []uint64{1<<32 - 1},
			want: FaultDecision{Delay: 2 * time.Second, GRPCStatus: -1}},
		{name: "50%: high half high, low half low: abort only", f: mk(50, 50, nil), rnd: []uint64{0xffffffff_00000000},
			want: FaultDecision{Abort: 503, GRPCStatus: -1}},
		{name: "50%: just below and at the threshold", f: mk(50, 50, nil), rnd: []uint64{0x7fffffff_80000000},
			want: FaultDecision{Delay: 2 * time.Second, GRPCStatus: -1}},
		// The smallest positive percentage still fires on the smallest draw.
		{name: "tiny percent fires on zero", f: mk(1e-300, 1e-300, nil), rnd: []uint64{0},
			want: FaultDecision{Delay: 2 * time.Second, Abort: 503, GRPCStatus: -1}},
		{name: "tiny percent not on one", f: mk(1e-300, 1e-300, nil), rnd: []uint64{1<<32 | 1}, want: NoFault},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range tc.rnd {
				if got := tc.f.Decide(http.Header{}, r); got != tc.want {
					t.Errorf("Decide(rnd=%#x) = %+v, want %+v", r, got, tc.want)
				}
			}
		})
	}
}

func TestFaultGRPCOnlyAbort(t *testing.T) {
	t.Parallel()
	f, err := CompileFault(&ir.Fault{Abort: &ir.FaultAbort{GRPCStatus: ptr(14), Percent: 100}})
	if err != nil {
		t.Fatal(err)
	}
	want := FaultDecision{Abort: 503, GRPCStatus: 14}
	if got := f.Decide(nil, 12345); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// TestFaultRates measures delay, abort and joint rates over 100k
// deterministic draws against a 5-sigma binomial tolerance.
func TestFaultRates(t *testing.T) {
	t.Parallel()
	const n = 100_000
	tests := []struct{ delay, abort float64 }{
		{50, 50},
		{10, 90},
		{0.1, 1},
		{33.3, 0.5},
		{99.9, 25},
	}
	for _, tc := range tests {
		f, err := CompileFault(&ir.Fault{
			Delay: &ir.FaultDelay{Duration: time.Millisecond, Percent: tc.delay},
			Abort: &ir.FaultAbort{HTTPStatus: 500, Percent: tc.abort},
		})
		if err != nil {
			t.Fatal(err)
		}
		s := splitmix64(uint64(tc.delay*1000 + tc.abort))
		var delayed, aborted, both int
		for range n {
			d := f.Decide(nil, s.next())
			dl, ab := d.Delay != 0, d.Abort != 0
			if dl {
				delayed++
			}
			if ab {
				aborted++
			}
			if dl && ab {
				both++
			}
		}
		pd, pa := tc.delay/100, tc.abort/100
		for _, c := range []struct {
			what string
			k    int
			p    float64
		}{
			{"delayed", delayed, pd},
			{"aborted", aborted, pa},
			// Independence: the joint rate is the product of the rates.
			{"delayed and aborted", both, pd * pa},
		} {
			if ok, want, tol := withinBinomial(c.k, n, c.p); !ok {
				t.Errorf("delay %v%% abort %v%%: %s %d of %d, want %.1f ± %.1f", tc.delay, tc.abort, c.what, c.k, n, want, tol)
			}
		}
	}
}

func TestFaultHeaderScope(t *testing.T) {
	t.Parallel()
	f, err := CompileFault(&ir.Fault{
		Headers: []ir.StringMatch{
			{Name: "x-tester", Value: "alice"},
			{Type: ir.MatchRegularExpression, Name: "X-Canary", Value: "on|yes"},
			{Name: "X-TESTER", Value: "ignored: only the first of equal names counts"},
		},
		Abort: &ir.FaultAbort{HTTPStatus: 418, Percent: 100},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		h    http.Header
		want bool
	}{
		{name: "all match", h: http.Header{"X-Tester": {"alice"}, "X-Canary": {"on"}}, want: true},
		{name: "regex alternative", h: http.Header{"X-Tester": {"alice"}, "X-Canary": {"yes"}}, want: true},
		{name: "regex anchored", h: http.Header{"X-Tester": {"alice"}, "X-Canary": {"only"}}},
		{name: "one missing", h: http.Header{"X-Tester": {"alice"}}},
		{name: "exact differs in case", h: http.Header{"X-Tester": {"Alice"}, "X-Canary": {"on"}}},
		{name: "repeated header compared joined", h: http.Header{"X-Tester": {"alice", "bob"}, "X-Canary": {"on"}}},
		{name: "none", h: http.Header{}},
		{name: "nil header", h: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := f.Decide(tc.h, 0).Abort == 418
			if got != tc.want {
				t.Errorf("aborted = %v, want %v", got, tc.want)
			}
		})
	}

	joined, err := CompileFault(&ir.Fault{
		Headers: []ir.StringMatch{{Name: "X-Tester", Value: "alice,bob"}},
		Delay:   &ir.FaultDelay{Duration: time.Second, Percent: 100},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := joined.Decide(http.Header{"X-Tester": {"alice", "bob"}}, 0); d.Delay != time.Second {
		t.Errorf("repeated header: got %+v, want the delay", d)
	}
}

func TestHTTPStatusForGRPC(t *testing.T) {
	t.Parallel()
	for code, want := range map[int]int{0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 7: 403, 8: 429, 12: 501, 13: 500, 14: 503, 16: 401, 99: 500} {
		if got := HTTPStatusForGRPC(code); got != want {
			t.Errorf("HTTPStatusForGRPC(%d) = %d, want %d", code, got, want)
		}
	}
}

func BenchmarkFaultDecide(b *testing.B) {
	f, err := CompileFault(&ir.Fault{
		Headers: []ir.StringMatch{{Name: "X-Tester", Value: "alice"}},
		Delay:   &ir.FaultDelay{Duration: time.Second, Percent: 10},
		Abort:   &ir.FaultAbort{HTTPStatus: 503, Percent: 10},
	})
	if err != nil {
		b.Fatal(err)
	}
	h := http.Header{"X-Tester": {"alice"}}
	var s splitmix64
	b.ReportAllocs()
	for b.Loop() {
		f.Decide(h, s.next())
	}
}
