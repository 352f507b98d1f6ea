// Copyright 2026 The Meshgate Authors. Parts copied from golang.org/x/net/http2
// (BSD-style license, see FORK.md).

package http2

import (
	"context"
	"net/http"
	"slices"
	"sync"

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

// streamContext is a stream's request context (change 12 in FORK.md).
// x/net made it with context.WithCancel of the connection's context, and a
// proxy hangs its upstream abort on it with context.AfterFunc: between
// them six heap allocations a request (the cancelCtx and its cancel func,
// the children map, the done channel, the afterFuncCtx and its stop
// func). This one lives in the stream and has an AfterFunc method: called
// directly, as the upstream client does, its first registration costs
// one allocation (the stop func); context.AfterFunc and contexts derived
// from it use the method too, behind their own wrappers.
//
// Only cancel ends it: the serve loop cancels every stream
// (closeStream, closeAllStreamsOnConnClose) before the connection's base
// context ends, so it need not watch that one. It carries the base
// context's values, not its cancellation (context.WithoutCancel, which
// also keeps context.Cause from reporting the connection's instead).
type streamContext struct {
	context.Context // serverConn.streamBase

	mu       sync.Mutex
	canceled bool
	done     chan struct{} // made by the first Done
	first    streamAfter   // the usual single AfterFunc
	more     []*streamAfter
}

// streamAfter is one AfterFunc registration; f is nil once it has run or
// was stopped.
type streamAfter struct {
	c *streamContext
	f func()
}

// Done returns a channel closed when the stream ends.
func (c *streamContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.canceled {
			close(c.done)
		}
	}
	return c.done
}

// Err returns context.Canceled once the stream has ended, else nil.
func (c *streamContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.canceled {
		return context.Canceled
	}
	return nil
}

// AfterFunc calls f in its own goroutine once the stream ends (at once if
// it has), as context.AfterFunc, which calls this method.
func (c *streamContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	if c.canceled {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	a := &c.first
	if a.c != nil {
		a = new(streamAfter)
		c.more = append(c.more, a)
	}
	a.c, a.f = c, f
	c.mu.Unlock()
	return a.stop
}

// stop keeps a's function from running; it reports whether it did.
func (a *streamAfter) stop() bool {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	if a.f == nil {
		return false
	}
	a.f = nil
	return true
}

// cancel ends the stream's context: Done closes, Err says Canceled and
// the functions registered with AfterFunc start. Later calls do nothing.
func (c *streamContext) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.canceled {
		return
	}
	c.canceled = true
	if c.done != nil {
		close(c.done)
	}
	c.first.start()
	for _, a := range c.more {
		a.start()
	}
}

// start runs a's function in its own goroutine, unless it ran or was
// stopped; the context's lock is held.
func (a *streamAfter) start() {
	if a.f != nil {
		go a.f()
		a.f = nil
	}
}

// String names the context, as the context package's own do.
func (c *streamContext) String() string { return "xhttp2.streamContext" }
