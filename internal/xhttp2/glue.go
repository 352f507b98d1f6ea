// Copyright 2026 The Meshgate Authors. Parts copied from golang.org/x/net/http2
// (BSD-style license, see FORK.md).

package http2

import (
	"net/http"
	"slices"

	"github.com/meshgate/meshgate/internal/gopool"

	// WebSocket over HTTP/2 (RFC 8441) is switched on through GODEBUG,
	// which http2.go's init reads: importing xconnect makes it run first.
	_ "github.com/meshgate/meshgate/internal/xconnect"

	// The package this one copies. Importing it makes govulncheck's
	// package scan of this package (scripts/vulncheck.sh) report every
	// advisory against x/net/http2, which may concern this copy too.
	_ "golang.org/x/net/http2"
)

// strSliceContains is defined by x/net's transport.go, which the fork
// leaves out.
func strSliceContains(ss []string, s string) bool { return slices.Contains(ss, s) }

// The client's flow-control defaults, from x/net's transport.go:
// setConfigDefaults names them, the server never uses them.
const (
	transportDefaultConnFlow   = 1 << 30
	transportDefaultStreamFlow = 4 << 20
)

// handlerPool runs request handlers on pooled goroutines (gopool) that
// keep their grown stacks: x/net starts a goroutine per request, whose
// small stack the proxy path outgrows every time, and the runtime then
// copies it and adjusts each frame (with the start itself, about 9k of the
// 117k instructions of an HTTP/2 request under h2load). The zero value is
// ready to use.
type handlerPool struct{ gopool.Pool[handlerWork] }

// handlerWork is one request for a pooled goroutine: runHandler's arguments.
type handlerWork struct {
	sc      *serverConn
	rw      *responseWriter
	req     *http.Request
	handler func(http.ResponseWriter, *http.Request)
}

func runHandlerWork(w handlerWork) { w.sc.runHandler(w.rw, w.req, w.handler) }

// start runs sc.runHandler(rw, req, handler) on a pooled goroutine.
func (p *handlerPool) start(sc *serverConn, rw *responseWriter, req *http.Request, handler func(http.ResponseWriter, *http.Request)) {
	p.Go(handlerWork{sc: sc, rw: rw, req: req, handler: handler}, runHandlerWork)
}

// writeRoomer is a connection that says how many bytes its Write takes
// without blocking: the server's batchConn, whose writes append to a
// buffer another goroutine sends.
type writeRoomer interface{ WriteRoom() int }

// flushWontBlock reports whether w is a flush whose bytes the connection
// takes without blocking. x/net writes every flush from a goroutine
// started for it (it may block on a slow client, and the serve goroutine
// must not), about one per response; over a writeRoomer with room, the
// serve goroutine flushes itself.
func (sc *serverConn) flushWontBlock(w writeFramer) bool {
	if _, ok := w.(flushFrameWriter); !ok {
		return false
	}
	r, ok := sc.conn.(writeRoomer)
	return ok && sc.bw.buffered() <= r.WriteRoom()
}

// buffered is how many bytes wait in w's buffer.
func (w *bufferedWriter) buffered() int {
	if w.bw == nil {
		return 0
	}
	return w.bw.Buffered()
}

// headerGet is h.Get(key) for a key already in canonical form: a map
// lookup, without canonicalizing key again (http.Header.Get does, some 480
// instructions for "Content-Length"; writeChunk looked up two or three
// such literals per response).
func headerGet(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// HeaderValues returns n strings for the response header's values, from
// the stream's Arena (hdrvals.Values): the proxy takes the upstream's
// header values there instead of allocating a slice for them. They are
// valid until the handler returns; the HEADERS frame is written from the
// snapshot WriteHeader took, with its own slices.
func (w *responseWriter) HeaderValues(n int) []string { return w.rws.vals.Take(n) }
