package server

import (
	ctls "crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/meshgate/meshgate/internal/gopool"
)

// h2Guard watches the frames an HTTP/2 client sends and ends the connection
// on two abuses x/net/http2 lets run until its 60 s idle timer, which an
// open stream even stops: a header block held open (a HEADERS frame without
// END_HEADERS followed by empty or trickled CONTINUATION frames, or by
// nothing) longer than the read-header timeout, and a SETTINGS flood. It
// parses only the 9-byte frame headers, in the bytes x/net reads anyway.
type h2Guard struct {
	net.Conn
	log     *slog.Logger
	timeout time.Duration

	prefaceLeft int // client preface bytes still to pass
	hdr         [9]byte
	hdrN        int
	skip        uint32 // payload bytes of the current frame still to pass

	mu         sync.Mutex
	blockOpen  time.Time   // when the open header block began; zero if none
	blockTimer *time.Timer // closes the connection if the block stays open
	empty      int         // empty CONTINUATION frames in the open block

	settings      int
	settingsSince time.Time
}

// h2Guard limits.
const (
	maxEmptyContinuations = 8
	maxSettingsPerWindow  = 100
	settingsWindow        = 10 * time.Second
)

var errH2Abuse = errors.New("http2: connection closed for abuse")

// guardH2 wraps c; a TLS connection keeps exposing its ConnectionState,
// which x/net/http2 reads.
// Writes go through a batchConn (h2batch.go).
func guardH2(c net.Conn, timeout time.Duration, log *slog.Logger, flushers *gopool.Pool[*batchConn]) net.Conn {
	g := &h2Guard{Conn: newBatchConn(c, flushers), log: log, timeout: timeout, prefaceLeft: len(h2Preface)}
	if tc, ok := c.(*ctls.Conn); ok {
		return &h2GuardTLS{h2Guard: g, tc: tc}
	}
	return g
}

type h2GuardTLS struct {
	*h2Guard
	tc *ctls.Conn
}

func (g *h2GuardTLS) ConnectionState() ctls.ConnectionState { return g.tc.ConnectionState() }

func (g *h2Guard) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	if n > 0 {
		if why := g.scan(p[:n]); why != "" {
			g.log.Info("http2 connection closed for abuse", "remote", g.RemoteAddr().String(), "reason", why)
			g.Conn.Close()
			return 0, errH2Abuse
		}
	}
	return n, err
}

// Close also stops the header-block timer.
// WriteRoom is the batchConn's (see batchConn.WriteRoom).
func (g *h2Guard) WriteRoom() int {
	if b, ok := g.Conn.(*batchConn); ok {
		return b.WriteRoom()
	}
	return 0
}

func (g *h2Guard) Close() error {
	g.mu.Lock()
	if g.blockTimer != nil {
		g.blockTimer.Stop()
	}
	g.mu.Unlock()
	return g.Conn.Close()
}

// scan follows frame boundaries through b and returns why the connection
// must end, or "".
func (g *h2Guard) scan(b []byte) string {
	for len(b) > 0 {
		switch {
		case g.prefaceLeft > 0:
			k := min(g.prefaceLeft, len(b))
			g.prefaceLeft -= k
			b = b[k:]
			continue
		case g.skip > 0:
			k := int(min(g.skip, uint32(len(b))))
			g.skip -= uint32(k)
			b = b[k:]
			continue
		}
		k := copy(g.hdr[g.hdrN:], b)
		g.hdrN += k
		b = b[k:]
		if g.hdrN < len(g.hdr) {
			break
		}
		g.hdrN = 0
		length := uint32(g.hdr[0])<<16 | uint32(g.hdr[1])<<8 | uint32(g.hdr[2])
		typ, flags := g.hdr[3], g.hdr[4]
		g.skip = length
		if why := g.frame(typ, flags, length); why != "" {
			return why
		}
	}
	return ""
}

const (
	frameHeaders      = 0x1
	frameSettings     = 0x4
	framePushPromise  = 0x5
	frameContinuation = 0x9
	flagEndHeaders    = 0x4
	flagAck           = 0x1
)

func (g *h2Guard) frame(typ, flags byte, length uint32) string {
	now := time.Now()
	switch typ {
	case frameHeaders, framePushPromise:
		if flags&flagEndHeaders == 0 {
			g.openBlock(now)
		}
	case frameContinuation:
		g.mu.Lock()
		open := !g.blockOpen.IsZero()
		since := g.blockOpen
		g.mu.Unlock()
		if !open {
			return "" // x/net refuses a stray CONTINUATION itself
		}
		if length == 0 {
			g.empty++
			if g.empty > maxEmptyContinuations {
				return "empty CONTINUATION frames"
			}
		}
		if flags&flagEndHeaders != 0 {
			g.closeBlock()
		} else if now.Sub(since) > g.timeout {
			return "header block open longer than the read-header timeout"
		}
	case frameSettings:
		if flags&flagAck != 0 {
			return ""
		}
		if now.Sub(g.settingsSince) > settingsWindow {
			g.settingsSince, g.settings = now, 0
		}
		g.settings++
		if g.settings > maxSettingsPerWindow {
			return "SETTINGS flood"
		}
	}
	return ""
}

// openBlock notes a header block that continues in CONTINUATION frames and
// arms the timer that ends the connection if it is still open when the
// read-header timeout passes, even if the client sends nothing more.
func (g *h2Guard) openBlock(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blockOpen, g.empty = now, 0
	if g.blockTimer != nil {
		g.blockTimer.Stop()
	}
	started := now
	g.blockTimer = time.AfterFunc(g.timeout, func() {
		g.mu.Lock()
		stuck := g.blockOpen.Equal(started)
		g.mu.Unlock()
		if stuck {
			g.log.Info("http2 connection closed for abuse", "remote", g.RemoteAddr().String(), "reason", "header block open longer than the read-header timeout")
			g.Conn.Close()
		}
	})
}

func (g *h2Guard) closeBlock() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blockOpen = time.Time{}
	if g.blockTimer != nil {
		g.blockTimer.Stop()
		g.blockTimer = nil
	}
}
