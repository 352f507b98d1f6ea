// Command demo-backend is a tiny HTTP server for the demo and for trying
// routes by hand: it answers every request with a JSON echo of what it
// received, tagged with its own name, so one can see which version served a
// request and what the gateway changed on the way.
//
//	demo-backend --name v1 --listen 127.0.0.1:9101
//
// GET /delay/DURATION waits before answering (e.g. /delay/2s), and
// /status/CODE answers with that status, to try timeouts and errors.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	name := flag.String("name", "v1", "name reported in every response")
	listen := flag.String("listen", "127.0.0.1:9101", "address to listen on")
	flag.Parse()
	srv := &http.Server{
		Addr:              *listen,
		Handler:           echo(*name),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.SetPrefix("demo-backend " + *name + ": ")
	log.Printf("listening on %s", *listen)
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type reply struct {
	Backend string              `json:"backend"`
	Method  string              `json:"method"`
	Host    string              `json:"host"`
	Path    string              `json:"path"`
	Query   string              `json:"query,omitempty"`
	Headers map[string][]string `json:"headers"`
}

func echo(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := http.StatusOK
		if d, ok := strings.CutPrefix(r.URL.Path, "/delay/"); ok {
			if dur, err := time.ParseDuration(d); err == nil && dur <= time.Minute {
				select {
				case <-time.After(dur):
				case <-r.Context().Done():
					return
				}
			}
		}
		if c, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
			if n, err := strconv.Atoi(c); err == nil && n >= 200 && n <= 599 {
				status = n
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Backend", name)
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(reply{Backend: name, Method: r.Method, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery, Headers: r.Header})
	})
}
