// Package admin serves the gateway's own endpoints on a separate, by default
// loopback-only, listener: liveness and readiness today; metrics, config
// dumps and the live dashboard later.
package admin

import (
	"io"
	"net/http"
	"net/http/pprof"
)

// Options select optional admin endpoints.
type Options struct {
	// Pprof serves Go's profiler under /debug/pprof/. Off by default: a
	// profile reveals internals and costs CPU while it runs.
	Pprof bool
}

// Handler returns the admin endpoints:
//
//	/healthz  200 while the process runs
//	/ready    200 once a config is applied and all its listeners are bound, else 503
//	/debug/pprof/  the Go profiler, when opts.Pprof is set
func Handler(ready func() bool, opts Options) http.Handler {
	mux := http.NewServeMux()
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !ready() {
			http.Error(w, "not ready: no config applied yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}
