// Copyright 2026 The Meshgate Authors. Parts copied from golang.org/x/net/http2
// (BSD-style license, see FORK.md).

package http2

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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

// handlerPool runs request handlers on goroutines that outlive a request.
// x/net starts a goroutine per request, whose small stack the proxy path
// outgrows every time: the runtime then copies the stack and adjusts each
// frame (with the start itself, about 9k of the 117k instructions of an
// HTTP/2 request under h2load). A pooled goroutine keeps the stack it grew.
// A request goes to an idle goroutine when one waits, else to a new one,
// so handlers never queue behind each other. A goroutine that served
// nothing for handlerIdle ends, and at most maxIdleHandlers wait at once,
// which bounds the stacks kept (at most ~8 MiB). The zero value is ready
// to use.
type handlerPool struct {
	once    sync.Once
	work    chan handlerWork // unbuffered: a send succeeds only to a waiting goroutine
	idle    atomic.Int32     // goroutines waiting on work
	maxIdle int32            // maxIdleHandlers when 0 (tests lower it)
	started atomic.Int64     // goroutines started, for tests
}

// handlerWork is one request for a pooled goroutine: runHandler's arguments.
type handlerWork struct {
	sc      *serverConn
	rw      *responseWriter
	req     *http.Request
	handler func(http.ResponseWriter, *http.Request)
}

// handlerIdle is how long a pooled handler goroutine waits for a request
// before it ends; maxIdleHandlers how many may wait.
const (
	handlerIdle     = 10 * time.Second
	maxIdleHandlers = 256
)

// start runs sc.runHandler(rw, req, handler) on an idle pooled goroutine,
// or on a new one when none is idle.
func (p *handlerPool) start(sc *serverConn, rw *responseWriter, req *http.Request, handler func(http.ResponseWriter, *http.Request)) {
	p.once.Do(func() { p.work = make(chan handlerWork) })
	w := handlerWork{sc: sc, rw: rw, req: req, handler: handler}
	select {
	case p.work <- w:
	default:
		p.started.Add(1)
		go p.serve(w)
	}
}

// serve runs w, then whatever start hands it, until it has had nothing for
// a whole handlerIdle. The timer is re-armed once per idle period, not per
// request: it fires, and the goroutine ends only if nothing came since.
func (p *handlerPool) serve(w handlerWork) {
	w.sc.runHandler(w.rw, w.req, w.handler)
	t := time.NewTimer(handlerIdle)
	defer t.Stop()
	busy := false
	maxIdle := p.maxIdle
	if maxIdle == 0 {
		maxIdle = maxIdleHandlers
	}
	for {
		if p.idle.Add(1) > maxIdle {
			p.idle.Add(-1)
			return
		}
		select {
		case w = <-p.work:
			p.idle.Add(-1)
			w.sc.runHandler(w.rw, w.req, w.handler)
			w = handlerWork{} // hold nothing of the request while idle
			busy = true
		case <-t.C:
			p.idle.Add(-1)
			if !busy {
				return
			}
			busy = false
			t.Reset(handlerIdle)
		}
	}
}
