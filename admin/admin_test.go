package admin

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestHandler(t *testing.T) {
	var ready atomic.Bool
	h := Handler(Options{Ready: ready.Load})
	tests := []struct {
		name  string
		path  string
		ready bool
		want  int
	}{
		{"healthz before config", "/healthz", false, 200},
		{"ready before config", "/ready", false, 503},
		{"ready after config", "/ready", true, 200},
		{"unknown path", "/nope", true, 404},
		{"pprof off by default", "/debug/pprof/", true, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ready.Store(tc.ready)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if rec.Code != tc.want {
				t.Fatalf("GET %s = %d, want %d", tc.path, rec.Code, tc.want)
			}
		})
	}
}
