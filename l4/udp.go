package l4

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/upstream"
)

// udpBufSize fits the largest UDP payload.
const udpBufSize = 64 << 10

// UDPListener is one bound UDP socket serving a UDP Table. Each client
// address gets a session: its own connected socket to one backend endpoint,
// chosen by weight when the session starts, so replies come back to the
// right client and a reload does not move a session.
type UDPListener struct {
	pc    *net.UDPConn
	opts  Options
	log   *slog.Logger
	table atomic.Pointer[Table]
	stats counters

	wg sync.WaitGroup // the read loop and every session

	mu       sync.Mutex
	sessions map[netip.AddrPort]*udpSession
	closing  bool
	started  bool
}

// ListenUDP binds addr for UDP. Call SetTable, then Serve. ctx bounds the
// bind only; Shutdown ends the listener.
func ListenUDP(ctx context.Context, addr string, opts Options) (*UDPListener, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("l4: listen udp %s: %w", addr, err)
	}
	opts = opts.withDefaults(true)
	return &UDPListener{
		pc:       pc.(*net.UDPConn),
		opts:     opts,
		log:      opts.Log,
		sessions: map[netip.AddrPort]*udpSession{},
	}, nil
}

// Addr is the bound address.
func (l *UDPListener) Addr() net.Addr { return l.pc.LocalAddr() }

// SetTable routes sessions started from now on with t. Open sessions keep
// their backend. A nil table drops datagrams from new clients as having no
// route.
func (l *UDPListener) SetTable(t *Table) { l.table.Store(t) }

// Stats returns a snapshot of the counters.
func (l *UDPListener) Stats() Stats { return l.stats.snapshot() }

// Serve starts reading datagrams in the background and returns at once.
// Calls after the first, or after Shutdown, do nothing.
func (l *UDPListener) Serve() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing || l.started {
		return
	}
	l.started = true
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.readLoop()
	}()
}

// readLoop forwards client datagrams to their sessions. It is the only
// goroutine that creates sessions, which keeps MaxUDPSessions exact.
func (l *UDPListener) readLoop() {
	buf := make([]byte, udpBufSize)
	var delay time.Duration
	for {
		n, from, err := l.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.isClosing() {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("l4 udp read failed", "addr", l.Addr().String(), "error", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s := l.sessionFor(from)
		if s == nil {
			continue
		}
		if _, err := s.up.Write(buf[:n]); err != nil {
			// A connected UDP socket reports an earlier ICMP error
			// (port unreachable) here: start over with a new session
			// on the next datagram.
			l.end(s, endBackendError, fmt.Errorf("write: %w", err))
			continue
		}
		s.in.Add(int64(n))
	}
}

func (l *UDPListener) isClosing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closing
}

// sessionFor returns the live session of client, starting one if the
// bound allows; nil means the datagram is dropped (and counted).
func (l *UDPListener) sessionFor(client netip.AddrPort) *udpSession {
	l.mu.Lock()
	if s := l.sessions[client]; s != nil {
		// Under mu, so expiry sees this before deciding.
		s.clk.touch()
		l.mu.Unlock()
		return s
	}
	full := len(l.sessions) >= l.opts.MaxUDPSessions
	closing := l.closing
	l.mu.Unlock()
	if closing {
		return nil
	}
	if full {
		l.stats.udpDropped.Add(1)
		return nil
	}
	// Only this goroutine adds sessions, so the count checked above can
	// only have gone down while dialing unlocked.
	s := l.startSession(client)
	if s == nil {
		return nil
	}
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		s.up.Close()
		return nil
	}
	l.sessions[client] = s
	l.stats.accepted.Add(1)
	l.stats.udpActive.Add(1)
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		s.run()
	}()
	return s
}

// startSession routes a new client and dials its backend endpoint. It logs
// and counts failures and returns nil for them.
func (l *UDPListener) startSession(client netip.AddrPort) *udpSession {
	s := &udpSession{l: l, client: client, start: time.Now()}
	t := l.table.Load()
	if t == nil || t.protocol != ir.ProtocolUDP || t.single == nil {
		l.stats.noRoute.Add(1)
		s.logEnd(endNoRoute, nil)
		return nil
	}
	s.t, s.route = t, t.single
	wb, ok := s.route.backend(rand.Int64N)
	switch {
	case !ok:
		return s.fail(endNoBackend, errors.New("no backend with a positive weight"))
	case wb.Target == nil:
		return s.fail(endNoBackend, errors.New("invalid backend reference"))
	}
	s.backend = wb.Target.Name
	pick, err := l.opts.Picker.Pick(wb.Target, upstream.PickInput{})
	if err != nil {
		return s.fail(endNoBackend, err)
	}
	ep := pick.Endpoint
	s.endpoint = ep.Address
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.ConnectTimeout)
	up, err := l.opts.DialContext(ctx, "udp", ep.Address)
	cancel()
	pick.Done(upstream.Outcome{GatewayError: err != nil})
	if err != nil {
		return s.fail(endConnectFailed, err)
	}
	s.up = up
	s.clk = newIdleClock(l.opts.IdleTimeout)
	s.clk.touch()
	return s
}

// expireIfIdle ends s if nothing moved for the idle timeout; otherwise it
// returns the deadline to wait until.
func (l *UDPListener) expireIfIdle(s *udpSession) (bool, time.Time) {
	l.mu.Lock()
	expired, deadline := s.clk.expired()
	if !expired || !l.detach(s) {
		l.mu.Unlock()
		return false, deadline
	}
	l.mu.Unlock()
	l.finish(s, endIdle, nil)
	return true, time.Time{}
}

// end ends s for reason unless something else ended it first.
func (l *UDPListener) end(s *udpSession, reason string, err error) {
	l.mu.Lock()
	ok := l.detach(s)
	l.mu.Unlock()
	if ok {
		l.finish(s, reason, err)
	}
}

// detach removes s from the session map; false if it was already ended.
// Call with mu held.
func (l *UDPListener) detach(s *udpSession) bool {
	if s.ended {
		return false
	}
	s.ended = true
	if l.sessions[s.client] == s {
		delete(l.sessions, s.client)
	}
	return true
}

// finish closes a detached session, counts and logs why it ended.
func (l *UDPListener) finish(s *udpSession, reason string, err error) {
	s.up.Close()
	l.stats.udpActive.Add(-1)
	switch reason {
	case endIdle:
		l.stats.udpExpired.Add(1)
	case endBackendError:
		l.stats.connectFailed.Add(1)
	}
	s.logEnd(reason, err)
}

// Shutdown ends every session and closes the socket. Datagrams have no
// connection to drain, so it waits only for the goroutines to return, or
// for ctx, whichever comes first.
func (l *UDPListener) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	var open []*udpSession
	for _, s := range l.sessions {
		if l.detach(s) {
			open = append(open, s)
		}
	}
	l.mu.Unlock()
	l.pc.Close()
	for _, s := range open {
		l.finish(s, endShutdown, nil)
	}
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("l4: shutdown udp %s: %w", l.Addr(), ctx.Err())
	}
}
