package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestIsGRPC(t *testing.T) {
	for _, tc := range []struct {
		ct   string
		want bool
	}{
		{"application/grpc", true},
		{"application/grpc+proto", true},
		{"application/grpc;charset=utf-8", true},
		{"application/grpc-web", false},
		{"application/grpc-web-text", false},
		{"application/json", false},
		{"", false},
	} {
		h := http.Header{}
		if tc.ct != "" {
			h.Set("Content-Type", tc.ct)
		}
		if got := IsGRPC(h); got != tc.want {
			t.Errorf("IsGRPC(%q) = %v, want %v", tc.ct, got, tc.want)
		}
	}
}

func TestGRPCTimeoutRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"100m", 100 * time.Millisecond, true},
		{"5S", 5 * time.Second, true},
		{"1H", time.Hour, true},
		{"2M", 2 * time.Minute, true},
		{"7u", 7 * time.Microsecond, true},
		{"99999999n", 99999999 * time.Nanosecond, true},
		{"999999999S", 0, false}, // more than 8 digits
		{"10", 0, false},
		{"m", 0, false},
		{"-1S", 0, false},
		{"1x", 0, false},
		{"", 0, false},
	} {
		got, ok := GRPCTimeout(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("GRPCTimeout(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	for _, d := range []time.Duration{time.Nanosecond, 1500 * time.Microsecond, 3 * time.Second, 90 * time.Minute, 10000 * time.Hour, 1<<63 - 1} {
		s := FormatGRPCTimeout(d)
		back, ok := GRPCTimeout(s)
		if !ok {
			t.Fatalf("FormatGRPCTimeout(%v) = %q does not parse", d, s)
		}
		if back < d {
			t.Errorf("FormatGRPCTimeout(%v) = %q = %v, shorter than asked", d, s, back)
		}
	}
	if s := FormatGRPCTimeout(-time.Second); s != "0n" {
		t.Errorf("FormatGRPCTimeout(negative) = %q, want 0n", s)
	}
}

func TestWriteErrorGRPC(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
	}{
		{http.StatusNotFound, "12"},
		{http.StatusServiceUnavailable, "14"},
		{http.StatusGatewayTimeout, "4"},
		{http.StatusTooManyRequests, "8"},
		{http.StatusInternalServerError, "13"},
		{http.StatusBadGateway, "14"},
		{http.StatusTeapot, "2"},
	} {
		r := httptest.NewRequest("POST", "/pkg.Svc/Method", nil)
		r.Header.Set("Content-Type", "application/grpc")
		w := httptest.NewRecorder()
		w.Header().Set("X-Upstream", "leftover")
		WriteError(w, r, nil, tc.status, "some reason: ü%", nil)
		if w.Code != http.StatusOK {
			t.Errorf("status %d: HTTP %d, want 200", tc.status, w.Code)
		}
		if got := w.Header().Get("Grpc-Status"); got != tc.code {
			t.Errorf("status %d: grpc-status %q, want %q", tc.status, got, tc.code)
		}
		if got := grpcDecodeMessage(w.Header().Get("Grpc-Message")); got != "some reason: ü%" {
			t.Errorf("status %d: grpc-message decodes to %q", tc.status, got)
		}
		if w.Header().Get("X-Upstream") != "" || w.Body.Len() != 0 {
			t.Errorf("status %d: leftover header or body %q", tc.status, w.Body.String())
		}
	}
}
