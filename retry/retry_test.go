package retry

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// splitmix64 is a deterministic stream of well-mixed 64-bit values.
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func TestReplayable(t *testing.T) {
	t.Parallel()
	strict := &ir.Retry{Attempts: 2}
	lax := &ir.Retry{Attempts: 2, NonIdempotent: true}
	tests := []struct {
		method string
		body   bool
		p      *ir.Retry
		want   bool
	}{
		{"GET", true, strict, true},
		{"HEAD", true, strict, true},
		{"OPTIONS", true, strict, true},
		{"PUT", true, strict, true},
		{"DELETE", true, strict, true},
		{"TRACE", true, strict, true},
		{"POST", true, strict, false},
		{"PATCH", true, strict, false},
		{"POST", true, lax, true},
		{"PATCH", true, lax, true},
		{"PROPFIND", true, lax, true},
		{"CONNECT", true, strict, false},
		{"CONNECT", true, lax, false},
		{"get", true, strict, false}, // methods are case-sensitive
		{"GET", false, strict, false},
		{"PUT", false, lax, false},
		{"POST", false, lax, false},
		{"GET", true, nil, false},
	}
	for _, tc := range tests {
		if got := Replayable(tc.method, tc.body, tc.p); got != tc.want {
			t.Errorf("Replayable(%q, body %v, nonIdempotent %v) = %v, want %v",
				tc.method, tc.body, tc.p != nil && tc.p.NonIdempotent, got, tc.want)
		}
	}
}

func TestShouldRetry(t *testing.T) {
	t.Parallel()
	all := &ir.Retry{Attempts: 2, Codes: []int{502, 503}, GRPCCodes: []int{14}, ConnectFailure: true, Reset: true, Timeout: true}
	codesOnly := &ir.Retry{Attempts: 2, Codes: []int{503}}
	ok200 := Result{Status: 200, GRPCStatus: -1}
	tests := []struct {
		name    string
		p       *ir.Retry
		attempt int
		r       Result
		want    bool
	}{
		{"listed status", all, 0, Result{Status: 503, GRPCStatus: -1}, true},
		{"other listed status", all, 1, Result{Status: 502, GRPCStatus: -1}, true},
		{"unlisted status", all, 0, Result{Status: 500, GRPCStatus: -1}, false},
		{"success", all, 0, ok200, false},
		{"attempts exhausted", all, 2, Result{Status: 503, GRPCStatus: -1}, false},
		{"beyond attempts", all, 5, Result{Status: 503, GRPCStatus: -1}, false},
		{"negative attempt", all, -1, Result{Status: 503, GRPCStatus: -1}, false},
		{"grpc listed", all, 0, Result{Status: 200, GRPCStatus: 14}, true},
		{"grpc unlisted", all, 0, Result{Status: 200, GRPCStatus: 13}, false},
		{"grpc ok", all, 0, Result{Status: 200, GRPCStatus: 0}, false},
		{"connect failure", all, 0, Result{ConnectFailure: true, GRPCStatus: -1}, true},
		{"reset", all, 0, Result{Reset: true, GRPCStatus: -1}, true},
		{"timeout", all, 0, Result{Timeout: true, GRPCStatus: -1}, true},
		{"connect failure not opted in", codesOnly, 0, Result{ConnectFailure: true, GRPCStatus: -1}, false},
		{"reset not opted in", codesOnly, 0, Result{Reset: true, GRPCStatus: -1}, false},
		{"timeout not opted in", codesOnly, 0, Result{Timeout: true, GRPCStatus: -1}, false},
		{"grpc not opted in", codesOnly, 0, Result{Status: 200, GRPCStatus: 14}, false},
		{"no answer is not status 0 in codes", &ir.Retry{Attempts: 1, Codes: []int{0}}, 0, Result{GRPCStatus: -1}, false},
		{"grpc none is not code -1", &ir.Retry{Attempts: 1, GRPCCodes: []int{-1}}, 0, Result{Status: 200, GRPCStatus: -1}, false},
		{"zero attempts", &ir.Retry{Codes: []int{503}}, 0, Result{Status: 503, GRPCStatus: -1}, false},
		{"nil policy", nil, 0, Result{Status: 503, GRPCStatus: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ShouldRetry(tc.p, tc.attempt, tc.r); got != tc.want {
				t.Errorf("ShouldRetry(attempt %d, %+v) = %v, want %v", tc.attempt, tc.r, got, tc.want)
			}
		})
	}
}

// TestBackoffCeiling pins the window for each attempt: rnd 0 waits nothing
// and the largest rnd waits exactly the ceiling.
func TestBackoffCeiling(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name    string
		p       *ir.Retry
		attempt int
		want    time.Duration
	}{
		{"default attempt 0", nil, 0, 25 * ms},
		{"default attempt 1", &ir.Retry{}, 1, 50 * ms},
		{"default attempt 2", &ir.Retry{}, 2, 100 * ms},
		{"default attempt 3", &ir.Retry{}, 3, 200 * ms},
		{"default capped at 10x base", &ir.Retry{}, 4, 250 * ms},
		{"default stays capped", &ir.Retry{}, 1000, 250 * ms},
		{"negative attempt is the first", &ir.Retry{}, -3, 25 * ms},
		{"custom base, default cap", &ir.Retry{BackoffBase: 100 * ms}, 10, time.Second},
		{"custom cap, default base", &ir.Retry{BackoffMax: 60 * ms}, 2, 60 * ms},
		{"custom both", &ir.Retry{BackoffBase: 10 * ms, BackoffMax: time.Second}, 5, 320 * ms},
		{"custom both capped", &ir.Retry{BackoffBase: 10 * ms, BackoffMax: time.Second}, 7, time.Second},
		{"cap below base", &ir.Retry{BackoffBase: 100 * ms, BackoffMax: 30 * ms}, 0, 30 * ms},
		{"huge base does not overflow", &ir.Retry{BackoffBase: math.MaxInt64 / 4}, 62, math.MaxInt64},
		{"huge cap, shift would overflow", &ir.Retry{BackoffBase: time.Second, BackoffMax: math.MaxInt64}, 62, math.MaxInt64},
		{"huge cap, attempt 63", &ir.Retry{BackoffBase: 1, BackoffMax: math.MaxInt64}, 63, math.MaxInt64},
		{"huge cap, attempt 62", &ir.Retry{BackoffBase: 1, BackoffMax: math.MaxInt64}, 62, 1 << 62},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Backoff(tc.p, tc.attempt, 0); got != 0 {
				t.Errorf("rnd 0: %v, want 0", got)
			}
			if got := Backoff(tc.p, tc.attempt, math.MaxUint64); got != tc.want {
				t.Errorf("rnd max: %v, want %v", got, tc.want)
			}
			if got := Backoff(tc.p, tc.attempt, 1<<63); got < tc.want/2-1 || got > tc.want/2+1 {
				t.Errorf("rnd half: %v, want about %v", got, tc.want/2)
			}
		})
	}
}

// TestBackoffJitter checks over 100k deterministic draws that the waits stay
// in the window and are spread uniformly across it: the mean and each
// quarter's count within 5 sigma.
func TestBackoffJitter(t *testing.T) {
	t.Parallel()
	const n = 100_000
	p := &ir.Retry{BackoffBase: 10 * time.Millisecond, BackoffMax: time.Second}
	for attempt := range 4 {
		ceiling := float64(10*time.Millisecond) * float64(int(1)<<attempt)
		s := splitmix64(attempt + 1)
		var sum float64
		var quarters [4]int
		for range n {
			d := Backoff(p, attempt, s.next())
			if d < 0 || float64(d) > ceiling {
				t.Fatalf("attempt %d: %v outside [0, %v]", attempt, d, time.Duration(ceiling))
			}
			sum += float64(d)
			quarters[min(int(float64(d)/ceiling*4), 3)]++
		}
		mean, sigma := sum/n, ceiling/math.Sqrt(12*n)
		if math.Abs(mean-ceiling/2) > 5*sigma {
			t.Errorf("attempt %d: mean %v, want %v ± %v", attempt, time.Duration(mean), time.Duration(ceiling/2), time.Duration(5*sigma))
		}
		qs := 5*math.Sqrt(n*0.25*0.75) + 1
		for i, q := range quarters {
			if math.Abs(float64(q)-n/4) > qs {
				t.Errorf("attempt %d: quarter %d has %d draws, want %d ± %.0f", attempt, i, q, n/4, qs)
			}
		}
	}
}

// payload is n deterministic, non-repeating-looking bytes.
func payload(n int) []byte {
	b := make([]byte, n)
	s := splitmix64(uint64(n))
	for i := range b {
		b[i] = byte(s.next())
	}
	return b
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestBufferBody(t *testing.T) {
	t.Parallel()
	const max = 1024
	boom := errors.New("client went away")
	tests := []struct {
		name          string
		body          []byte // what the client sends
		wrap          func(io.Reader) io.Reader
		contentLength int64
		max           int64
		wantReplay    bool
		wantErr       error // Err() and the error after the body's bytes
		wantRead      int   // bytes read ahead from the client; -1: don't check
	}{
		{name: "empty unknown length", body: nil, contentLength: -1, max: max, wantReplay: true, wantRead: 0},
		{name: "empty declared", body: nil, contentLength: 0, max: max, wantReplay: true, wantRead: 0},
		{name: "small declared", body: payload(100), contentLength: 100, max: max, wantReplay: true, wantRead: 100},
		{name: "small unknown", body: payload(100), contentLength: -1, max: max, wantReplay: true, wantRead: 100},
		{name: "small one byte at a time", body: payload(300), wrap: iotest.OneByteReader, contentLength: -1, max: max, wantReplay: true, wantRead: 300},
		{name: "small with data and EOF together", body: payload(300), wrap: iotest.DataErrReader, contentLength: -1, max: max, wantReplay: true, wantRead: 300},
		{name: "exactly max", body: payload(max), contentLength: -1, max: max, wantReplay: true, wantRead: max},
		{name: "exactly max declared", body: payload(max), contentLength: max, max: max, wantReplay: true, wantRead: max},
		{name: "one byte over, unknown length", body: payload(max + 1), contentLength: -1, max: max, wantRead: max + 1},
		{name: "far over, unknown length, half reads", body: payload(200 << 10), wrap: iotest.HalfReader, contentLength: -1, max: max, wantRead: max + 1},
		{name: "declared over max is not read", body: payload(max + 1), contentLength: max + 1, max: max, wantRead: 0},
		{name: "declared small but longer", body: payload(3 * max), contentLength: 10, max: max, wantRead: max + 1},
		{name: "default max, 1 MiB", body: payload(1 << 20), contentLength: -1, max: DefaultMaxBody, wantRead: DefaultMaxBody + 1},
		{name: "default max, fits", body: payload(DefaultMaxBody), contentLength: -1, max: DefaultMaxBody, wantReplay: true, wantRead: DefaultMaxBody},
		{name: "max above the pooled size", body: payload(100 << 10), contentLength: -1, max: 128 << 10, wantReplay: true, wantRead: 100 << 10},
		{name: "max above the pooled size, over", body: payload(200 << 10), contentLength: -1, max: 128 << 10, wantRead: 128<<10 + 1},
		{name: "zero max keeps nothing", body: payload(10), contentLength: -1, max: 0, wantRead: 0},
		{name: "error at once", body: nil, wrap: func(r io.Reader) io.Reader { return io.MultiReader(r, iotest.ErrReader(boom)) },
			contentLength: -1, max: max, wantErr: boom, wantRead: -1},
		{name: "error midway", body: payload(500), wrap: func(r io.Reader) io.Reader { return io.MultiReader(r, iotest.ErrReader(boom)) },
			contentLength: -1, max: max, wantErr: boom, wantRead: -1},
		{name: "error right after max bytes", body: payload(max), wrap: func(r io.Reader) io.Reader { return io.MultiReader(r, iotest.ErrReader(boom)) },
			contentLength: -1, max: max, wantErr: boom, wantRead: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(tc.body)
			if tc.wrap != nil {
				r = tc.wrap(r)
			}
			cr := &countingReader{r: r}
			b := BufferBody(cr, tc.contentLength, tc.max)
			defer b.Release()
			if b.Replayable() != tc.wantReplay {
				t.Fatalf("Replayable = %v, want %v", b.Replayable(), tc.wantReplay)
			}
			if !errors.Is(b.Err(), tc.wantErr) || (tc.wantErr == nil) != (b.Err() == nil) {
				t.Fatalf("Err = %v, want %v", b.Err(), tc.wantErr)
			}
			if tc.wantRead >= 0 && cr.n != tc.wantRead {
				t.Errorf("read ahead %d bytes, want %d", cr.n, tc.wantRead)
			}
			if tc.wantReplay && b.Len() != len(tc.body) {
				t.Errorf("Len = %d, want %d", b.Len(), len(tc.body))
			}
			// Every attempt of a replayable body, the one attempt of the
			// others, sees every byte and then EOF or the client's error.
			attempts := 1
			if tc.wantReplay {
				attempts = 3
			}
			for i := range attempts {
				got, err := io.ReadAll(b.Reader())
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
					t.Fatalf("attempt %d: read error %v, want %v", i, err, tc.wantErr)
				}
				if !bytes.Equal(got, tc.body) {
					t.Fatalf("attempt %d: got %d bytes, want the %d sent (first difference at %d)", i, len(got), len(tc.body), firstDiff(got, tc.body))
				}
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestBufferBodyNoBody(t *testing.T) {
	t.Parallel()
	for _, r := range []io.Reader{nil, http.NoBody} {
		b := BufferBody(r, -1, DefaultMaxBody)
		if !b.Replayable() || b.Len() != 0 || b.Err() != nil {
			t.Errorf("%v: replayable %v len %d err %v, want an empty replayable body", r, b.Replayable(), b.Len(), b.Err())
		}
		if got, err := io.ReadAll(b.Reader()); len(got) != 0 || err != nil {
			t.Errorf("%v: read %q %v", r, got, err)
		}
		b.Release()
		b.Release()
		if got, err := io.ReadAll(b.Reader()); len(got) != 0 || err != nil {
			t.Errorf("%v: after Release, read %q %v; the shared empty body must stay usable", r, got, err)
		}
	}
}

// TestBufferBodyRelease checks a released body cannot be read by mistake
// and that a reused pooled buffer shows only its new body's bytes.
func TestBufferBodyRelease(t *testing.T) {
	t.Parallel()
	b := BufferBody(strings.NewReader("first body, the longer one"), -1, DefaultMaxBody)
	b.Release()
	b.Release() // idempotent
	if _, err := io.ReadAll(b.Reader()); !errors.Is(err, ErrReleased) {
		t.Fatalf("read after Release: %v, want ErrReleased", err)
	}
	for range 10 {
		b2 := BufferBody(strings.NewReader("second"), -1, DefaultMaxBody)
		got, err := io.ReadAll(b2.Reader())
		if err != nil || string(got) != "second" {
			t.Fatalf("got %q %v, want \"second\"", got, err)
		}
		b2.Release()
	}
}

// TestBufferBodyConcurrentReaders reads one body from several attempts at
// once, as when an earlier attempt's writer is still draining (run with
// -race).
func TestBufferBodyConcurrentReaders(t *testing.T) {
	t.Parallel()
	want := payload(10 << 10)
	b := BufferBody(bytes.NewReader(want), int64(len(want)), DefaultMaxBody)
	defer b.Release()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, err := io.ReadAll(iotest.HalfReader(b.Reader()))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("concurrent reader: %d bytes, err %v", len(got), err)
			}
		})
	}
	wg.Wait()
}

func BenchmarkBufferBody(b *testing.B) {
	data := payload(4 << 10)
	r := bytes.NewReader(data)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(data)
		body := BufferBody(r, int64(len(data)), DefaultMaxBody)
		body.Release()
	}
}
