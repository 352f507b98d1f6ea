// Package admin serves the gateway's own endpoints on a separate, by default
// loopback-only, listener: liveness and readiness today; metrics, config
// dumps and the live dashboard later.
package admin

import (
	"io"
	"net/http"
)

// Handler returns the admin endpoints:
//
//	/healthz  200 while the process runs
//	/ready    200 once a config is applied and all its listeners are bound, else 503
func Handler(ready func() bool) http.Handler {
	mux := http.NewServeMux()
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
