package l4

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Listener is one bound TCP socket serving a TCP or TLS Table. The socket
// stays open across reloads; SetTable changes where new connections go.
type Listener struct {
	ln    net.Listener
	opts  Options
	log   *slog.Logger
	table atomic.Pointer[Table]
	stats counters

	// hardCtx is cancelled when Shutdown gives up waiting, to abort dials
	// in progress.
	hardCtx  context.Context
	hardStop context.CancelFunc

	wg      sync.WaitGroup // the accept loop and every connection
	closing atomic.Bool

	mu      sync.Mutex
	conns   map[net.Conn]struct{} // client and backend sides of open connections
	forced  bool                  // Shutdown closed everything; refuse new conns
	started bool                  // Serve ran
}

// Listen binds addr for a TCP or TLS listener. Call SetTable, then Serve. ctx bounds the bind
// only; Shutdown ends the listener.
func Listen(ctx context.Context, addr string, opts Options) (*Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("l4: listen %s: %w", addr, err)
	}
	opts = opts.withDefaults(false)
	l := &Listener{ln: ln, opts: opts, log: opts.Log, conns: map[net.Conn]struct{}{}}
	l.hardCtx, l.hardStop = context.WithCancel(context.Background())
	return l, nil
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// SetTable routes connections accepted from now on with t. Open
// connections keep their backend. A nil table closes new connections as
// having no route.
func (l *Listener) SetTable(t *Table) { l.table.Store(t) }

// Stats returns a snapshot of the counters.
func (l *Listener) Stats() Stats { return l.stats.snapshot() }

// Serve starts accepting in the background and returns at once, like the
// HTTP listeners, so the data plane can start every socket in turn. Calls
// after the first, or after Shutdown, do nothing.
func (l *Listener) Serve() {
	// Under mu, so that Shutdown's Wait never races with this Add.
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing.Load() || l.started {
		return
	}
	l.started = true
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.acceptLoop()
	}()
}

func (l *Listener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure such as EMFILE: back off, keep going.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("l4 accept failed", "addr", l.Addr().String(), "error", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		l.stats.accepted.Add(1)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serveConn(c)
		}()
	}
}

// serveConn runs one connection from accept to close.
func (l *Listener) serveConn(c net.Conn) {
	l.stats.active.Add(1)
	defer l.stats.active.Add(-1)
	if !l.track(c) {
		c.Close()
		return
	}
	defer l.untrack(c)
	defer c.Close()
	sc := &streamConn{l: l, t: l.table.Load(), client: c, start: time.Now()}
	sc.serve()
	sc.logEnd()
}

// track registers a connection for Shutdown to close; false means Shutdown
// already closed everything and c must be closed at once.
func (l *Listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.forced {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *Listener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// wasForced reports whether Shutdown closed the connections.
func (l *Listener) wasForced() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.forced
}

// Shutdown stops accepting, waits for open connections to end until ctx
// ends, then closes them and returns ctx's error. Layer-4 streams have no
// way to ask a client to go away, so draining means waiting.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.closing.Store(true)
	l.mu.Unlock()
	l.ln.Close()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		l.hardStop()
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	l.forced = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.hardStop()
	<-done
	return fmt.Errorf("l4: shutdown %s: %w", l.Addr(), ctx.Err())
}
