package accesslog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/obs"
)

var start = time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC)

func fullRecord() *obs.Request {
	return &obs.Request{
		Start:             start,
		Duration:          12345678 * time.Nanosecond,
		Listener:          "0.0.0.0:8080",
		Gateway:           "default/gw/http",
		Route:             "default/web",
		Rule:              0,
		Backend:           "default/web-svc",
		Endpoint:          "10.0.0.7:8080",
		Method:            "GET",
		Host:              "example.test",
		Path:              "/a \"quoted\"\npath",
		Proto:             "HTTP/1.1",
		Client:            "192.0.2.1:51234",
		GRPCStatus:        "0",
		Upgrade:           "websocket",
		Status:            200,
		BytesReceived:     10,
		BytesSent:         2326,
		UpstreamConnect:   1500 * time.Microsecond,
		UpstreamFirstByte: 3 * time.Millisecond,
		Reason:            "",
		TraceID:           "4bf92f3577b34da6a3ce929d0e0e4736",
	}
}

// syncBuffer is a bytes.Buffer safe to read while the writer goroutine
// writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newLogger(t testing.TB, opts Options) (*Logger, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	if opts.Output == nil {
		opts.Output = buf
	}
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, buf
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func decode(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return m
}

func TestJSONAllFields(t *testing.T) {
	l, buf := newLogger(t, Options{})
	l.ObserveRequest(fullRecord())
	l.Close()
	ls := lines(buf.String())
	if len(ls) != 1 {
		t.Fatalf("got %d lines, want 1: %q", len(ls), buf.String())
	}
	got := decode(t, ls[0])
	want := map[string]any{
		"time":                   "2026-03-04T05:06:07.890123456Z",
		"duration_ms":            json.Number("12.346"),
		"upstream_connect_ms":    json.Number("1.500"),
		"upstream_first_byte_ms": json.Number("3.000"),
		"listener":               "0.0.0.0:8080",
		"gateway_listener":       "default/gw/http",
		"route":                  "default/web",
		"rule":                   json.Number("0"),
		"backend":                "default/web-svc",
		"endpoint":               "10.0.0.7:8080",
		"method":                 "GET",
		"host":                   "example.test",
		"path":                   "/a \"quoted\"\npath",
		"proto":                  "HTTP/1.1",
		"client":                 "192.0.2.1:51234",
		"status":                 json.Number("200"),
		"grpc_status":            "0",
		"upgrade":                "websocket",
		"bytes_received":         json.Number("10"),
		"bytes_sent":             json.Number("2326"),
		"trace_id":               "4bf92f3577b34da6a3ce929d0e0e4736",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	// Fields come in the documented order.
	last := -1
	for _, name := range FieldNames {
		i := strings.Index(ls[0], `"`+name+`":`)
		if i < 0 {
			continue
		}
		if i < last {
			t.Errorf("field %s out of order in %s", name, ls[0])
		}
		last = i
	}
}

func TestJSONOmitsEmpty(t *testing.T) {
	l, buf := newLogger(t, Options{})
	var r obs.Request
	r.Reset()
	r.Start = start
	r.Duration = time.Millisecond
	r.Listener = "0.0.0.0:8080"
	r.Method = "GET"
	r.Host = "example.test"
	r.Path = "/"
	r.Proto = "HTTP/2.0"
	r.Client = "[2001:db8::1]:4000"
	r.Status = 404
	r.Reason = "no_route"
	l.ObserveRequest(&r)
	l.Close()
	got := decode(t, strings.TrimSpace(buf.String()))
	want := map[string]any{
		"time":        "2026-03-04T05:06:07.890123456Z",
		"duration_ms": json.Number("1.000"),
		"listener":    "0.0.0.0:8080",
		"method":      "GET",
		"host":        "example.test",
		"path":        "/",
		"proto":       "HTTP/2.0",
		"client":      "[2001:db8::1]:4000",
		"status":      json.Number("404"),
		"reason":      "no_route",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

// TestJSONDenied: a SecurityPolicy denial names the policy and section,
// so a log search finds which rule refused a request.
func TestJSONDenied(t *testing.T) {
	l, buf := newLogger(t, Options{})
	var r obs.Request
	r.Reset()
	r.Start = start
	r.Duration = time.Millisecond
	r.Method = "GET"
	r.Path = "/admin"
	r.Status = 403
	r.Reason = "ip_denied"
	r.DeniedPolicy = "default/office-only"
	r.DeniedSection = "ipAccess"
	l.ObserveRequest(&r)
	l.Close()
	got := decode(t, strings.TrimSpace(buf.String()))
	for k, v := range map[string]any{"reason": "ip_denied", "denied_policy": "default/office-only", "denied_section": "ipAccess"} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (line %s)", k, got[k], v, buf.String())
		}
	}
}

func TestJSONEscaping(t *testing.T) {
	cases := map[string]string{
		"plain":            `"plain"`,
		"q\"b\\":           `"q\"b\\"`,
		"\x00\x1f\t\r\n":   `"\u0000\u001f\t\r\n"`,
		"héllo ✓":          `"héllo ✓"`,
		"bad\xffutf8":      `"bad\ufffdutf8"`,
		"ls\u2028ps\u2029": `"ls\u2028ps\u2029"`,
	}
	for in, want := range cases {
		got := string(appendJSONString(nil, in))
		if got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%s: not valid JSON: %v", got, err)
		}
	}
}

func TestCommonFormat(t *testing.T) {
	l, buf := newLogger(t, Options{Format: FormatCommon})
	r := fullRecord()
	r.Start = time.Date(2000, 10, 10, 13, 55, 36, 0, time.FixedZone("", -7*3600))
	r.Path = "/apache_pb.gif"
	l.ObserveRequest(r)
	r.Client = ""
	r.BytesSent = 0
	r.Path = "/x\"y\x01"
	r.Status = 0
	r.Reason = "aborted"
	l.ObserveRequest(r)
	l.Close()
	want := `192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.1" 200 2326 12.346` + "\n" +
		`- - - [10/Oct/2000:13:55:36 -0700] "GET /x\"y\x01 HTTP/1.1" 0 - 12.346` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestFieldAllowList(t *testing.T) {
	l, buf := newLogger(t, Options{Fields: []string{"status", "route", "trace_id", "reason"}})
	l.ObserveRequest(fullRecord())
	l.Close()
	got := decode(t, strings.TrimSpace(buf.String()))
	want := map[string]any{
		"route":    "default/web",
		"status":   json.Number("200"),
		"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func TestOptionErrors(t *testing.T) {
	for name, opts := range map[string]Options{
		"format":   {Format: "xml"},
		"field":    {Fields: []string{"status", "nope"}},
		"rate neg": {SampleRate: -0.1},
		"rate big": {SampleRate: 1.5},
		"rate nan": {SampleRate: math.NaN()},
		"queue":    {QueueSize: -1},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("%s: New(%+v) succeeded, want an error", name, opts)
		}
	}
}

func TestFormatOff(t *testing.T) {
	l, buf := newLogger(t, Options{Format: FormatOff})
	l.ObserveRequest(fullRecord())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "" {
		t.Errorf("format off wrote %q", buf.String())
	}
}

func TestSampling(t *testing.T) {
	const n = 10000
	l, buf := newLogger(t, Options{SampleRate: 0.5, QueueSize: 2*n + 10})
	ok := fullRecord()
	for i := 0; i < n; i++ {
		l.ObserveRequest(ok)
	}
	errs := []obs.Request{
		{Start: start, Status: 502, Reason: "upstream_error"},
		{Start: start, Status: 500},
		{Start: start, Status: 0},
		{Start: start, Status: 404, Reason: "no_route"},
	}
	for i := 0; i < n; i++ {
		l.ObserveRequest(&errs[i%len(errs)])
	}
	l.Close()
	if d := l.Dropped(); d != 0 {
		t.Fatalf("dropped %d lines", d)
	}
	var sampled, errors int
	for _, ln := range lines(buf.String()) {
		if strings.Contains(ln, `"status":200`) {
			sampled++
		} else {
			errors++
		}
	}
	// Binomial(10000, 0.5): mean 5000, standard deviation 50; allow 6σ.
	if sampled < 4700 || sampled > 5300 {
		t.Errorf("sampled %d of %d at rate 0.5, want 5000±300", sampled, n)
	}
	if errors != n {
		t.Errorf("logged %d of %d errors, want all", errors, n)
	}
}

// blockingWriter blocks every Write until release is closed, and says on
// entered when a Write has begun.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	b       bytes.Buffer
	once    sync.Once
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestBlockedWriterDrops(t *testing.T) {
	const queue = 16
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	l, err := New(Options{Output: w, QueueSize: queue})
	if err != nil {
		t.Fatal(err)
	}
	r := fullRecord()
	l.ObserveRequest(r)
	<-w.entered // the writer holds the first line and is stuck in Write

	// None of these can be written while the writer is stuck; if
	// ObserveRequest blocked, the test would hang here.
	const extra = 100
	for i := 0; i < queue+extra; i++ {
		l.ObserveRequest(r)
	}
	if got := l.Dropped(); got != extra {
		t.Errorf("Dropped() = %d, want %d", got, extra)
	}
	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	n := len(lines(w.b.String()))
	w.mu.Unlock()
	if n != 1+queue {
		t.Errorf("wrote %d lines, want %d", n, 1+queue)
	}
}

func TestCloseFlushes(t *testing.T) {
	const n = 5000
	l, buf := newLogger(t, Options{QueueSize: n})
	var wg sync.WaitGroup
	for g := 0; g < 10; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := fullRecord()
			for i := 0; i < n/10; i++ {
				l.ObserveRequest(r)
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := lines(buf.String())
	if len(got)+int(l.Dropped()) != n {
		t.Fatalf("wrote %d + dropped %d lines, want %d in all", len(got), l.Dropped(), n)
	}
	if l.Dropped() != 0 {
		t.Errorf("dropped %d lines with a queue of %d", l.Dropped(), n)
	}
	for _, ln := range got {
		decode(t, ln)
	}
	// After Close, lines are discarded and Close stays safe to call.
	l.ObserveRequest(fullRecord())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(lines(buf.String())) != n {
		t.Error("a line observed after Close was written")
	}
}

// TestRecordReuse checks that the line is formatted before ObserveRequest
// returns, so the caller may reuse the record at once.
func TestRecordReuse(t *testing.T) {
	l, buf := newLogger(t, Options{Fields: []string{"path"}})
	var r obs.Request
	for _, p := range []string{"/one", "/two", "/three"} {
		r.Reset()
		r.Path = p
		r.Status = 200
		l.ObserveRequest(&r)
	}
	r.Reset()
	l.Close()
	want := `{"path":"/one"}` + "\n" + `{"path":"/two"}` + "\n" + `{"path":"/three"}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestOpenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	for i := 0; i < 2; i++ {
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		l, err := New(Options{Output: f, Fields: []string{"status"}})
		if err != nil {
			t.Fatal(err)
		}
		l.ObserveRequest(fullRecord())
		l.Close()
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o640 != 0 {
		t.Errorf("mode %v, want at most 0640", perm)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		if sc.Text() != `{"status":200}` {
			t.Errorf("line %q", sc.Text())
		}
	}
	if n != 2 {
		t.Errorf("%d lines, want 2 (appended)", n)
	}
}

func BenchmarkObserveRequest(b *testing.B) {
	for _, format := range []string{FormatJSON, FormatCommon} {
		b.Run(format, func(b *testing.B) {
			l, err := New(Options{Output: io.Discard, Format: format})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			r := fullRecord()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l.ObserveRequest(r)
			}
		})
	}
	b.Run("json-parallel", func(b *testing.B) {
		l, err := New(Options{Output: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := fullRecord()
			for pb.Next() {
				l.ObserveRequest(r)
			}
		})
	})
	b.Run("sampled-out", func(b *testing.B) {
		l, err := New(Options{Output: io.Discard, SampleRate: 0.000001})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		r := fullRecord()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			l.ObserveRequest(r)
		}
	})
}
