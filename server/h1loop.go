package server

import (
	"net/http"
	"time"

	"github.com/meshgate/meshgate/internal/rawio"
)

// The read loop: on a plain TCP connection, keep-alive requests after the
// first are served inside one rawio.ReadLoop call rather than with a
// blocking read each. A read that comes back short means the socket was
// empty; inside the loop the wait for the next request then starts at
// once, where a fresh read would first ask the kernel again and hear
// EAGAIN. That recvfrom(2) followed every answer: one of the five system
// calls of a proxied keep-alive request (now 2 recvfrom and 2 sendto).
//
// Only requests the loop can finish without waiting on the client go
// through it: a whole head in the buffer, no body, no upgrade. Anything
// else (a head in pieces beyond the buffer, a body, an Upgrade or
// CONNECT, a malformed head, an error) leaves the loop and is served by
// the usual path, which reads the connection as before.

// loopExit is what serveLoop's steps left for the usual path.
type loopExit uint8

const (
	loopUsual loopExit = iota // read the next request the usual way
	loopServe                 // serve the request in hc.req/hc.ph
	loopFail                  // answer hc.err and close
	loopClose                 // the connection is done
)

// serveLoop runs the read loop until it ends. keep reports whether the
// connection goes on; usual, that its next request is to be read by the
// usual path.
func (hc *h1Conn) serveLoop() (keep, usual bool) {
	l := hc.l
	hc.loopIdle, hc.headWait, hc.exit = false, false, loopUsual
	err := hc.rd.raw.ReadLoop(hc.stepFn)
	hc.rd.inLoop = false
	if err != nil {
		// The wait ended without a request: a deadline, or the
		// connection was closed.
		if !hc.idleExpired(err, hc.loopIdle && l.limits.IdleTimeout > idleShrinkAfter) || !hc.waitIdle(hc.idleAt.Add(l.limits.IdleTimeout)) {
			return false, false
		}
		return true, true
	}
	switch hc.exit {
	case loopServe:
		return hc.serveRequest(&hc.ph), false
	case loopFail:
		hc.bw.Flush()
		hc.fail(hc.err)
		hc.err = nil
		return false, false
	case loopClose:
		return false, false
	}
	return true, true
}

// step is one call of the read loop: it serves the requests that are
// ready and returns false to wait for more, or true to leave the loop
// (hc.exit says why).
func (hc *h1Conn) step() bool {
	rd := &hc.rd
	// Woken (or called first): the socket may hold bytes again.
	rd.inLoop, rd.drained = true, false
	for {
		if hc.br.Buffered() == 0 {
			if !rd.drained {
				if _, err := hc.br.Peek(1); err != nil && err != rawio.ErrWouldBlock {
					return hc.leave(loopUsual) // EOF or an error: the usual path meets it again
				}
				continue
			}
			if !hc.loopIdle && !hc.startIdle() {
				return hc.leave(loopClose)
			}
			return false
		}
		if hc.loopIdle {
			hc.loopIdle = false
			if !hc.l.track(hc, connActive) {
				return hc.leave(loopClose)
			}
		}
		if !headBuffered(hc.br) {
			if hc.br.Buffered() == hc.br.Size() {
				return hc.leave(loopUsual) // a head larger than the buffer
			}
			if !rd.drained {
				if _, err := hc.br.Peek(hc.br.Buffered() + 1); err != nil && err != rawio.ErrWouldBlock {
					return hc.leave(loopUsual)
				}
				continue
			}
			if !hc.headWait {
				hc.headWait = true
				hc.armHeaderWait()
			}
			return false
		}
		hc.headWait = false
		if err := hc.readRequest(&hc.ph); err != nil {
			hc.err = err
			return hc.leave(loopFail)
		}
		if !servedInLoop(hc.req, &hc.ph) {
			return hc.leave(loopServe)
		}
		if !hc.serveRequest(&hc.ph) {
			return hc.leave(loopClose)
		}
	}
}

// leave ends the read loop with exit (serveLoop then clears rd.inLoop).
func (hc *h1Conn) leave(exit loopExit) bool {
	hc.exit = exit
	return true
}

// startIdle begins the wait for the next request: the idle deadline (see
// loop) and the idle state. It reports false when the listener is closing.
func (hc *h1Conn) startIdle() bool {
	l := hc.l
	now := time.Now()
	hc.idleAt = now
	hc.armIdleWait(now)
	hc.loopIdle = true
	return l.track(hc, connIdle)
}

// servedInLoop reports whether a request can be served inside the read
// loop: nothing of it is still to be read from the client, and its
// handler cannot take the connection over.
func servedInLoop(r *http.Request, ph *parsedHead) bool {
	return !ph.chunked && ph.contentLength <= 0 && r.Method != http.MethodConnect && r.Header["Upgrade"] == nil
}
