package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// UpgradeType returns the protocol an HTTP/1.1 request asks to switch to
// ("websocket"), or "" when it asks for none. It must be read before the
// hop-by-hop headers are removed, since both fields it needs are hop-by-hop.
func UpgradeType(h http.Header) string {
	if !hasToken(h["Connection"], "upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

// Upgrade forwards a request that asks to switch protocols (WebSocket) on a
// connection of its own. If the upstream agrees (101 with the same Upgrade),
// the downstream connection is taken over and bytes are copied both ways
// until either side closes; otherwise the upstream's answer is relayed like
// any response. Errors before anything was sent are *UpstreamError.
// cfg, when set, is the TLS client config for the upstream connection; opts
// bound the tunnel's life once established.
func (c *H1Client) Upgrade(ctx context.Context, addr string, cfg *tls.Config, upType string, out *Outbound, w http.ResponseWriter, writeHeader func(int), opts TunnelOptions) error {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return &UpstreamError{Kind: ErrProtocol, Err: errors.New("downstream connection cannot be upgraded (HTTP/2)")}
	}
	out.Header["Connection"] = []string{"Upgrade"}
	out.Header["Upgrade"] = []string{upType}
	up, br, resp, done, err := c.upgradeHandshake(ctx, addr, cfg, out, w, writeHeader)
	if done || err != nil {
		return err
	}
	defer func() {
		if up != nil {
			up.Close()
		}
	}()
	if !strings.EqualFold(resp, upType) {
		clear(w.Header())
		return &UpstreamError{Kind: ErrProtocol, Err: fmt.Errorf("upstream switched to %q, asked for %q", resp, upType)}
	}
	down, dbuf, err := hj.Hijack()
	if err != nil {
		return fmt.Errorf("%w: hijack: %w", errResponseStarted, err)
	}
	defer down.Close()
	h := w.Header()
	h["Connection"] = []string{"Upgrade"}
	h["Upgrade"] = []string{resp}
	dbuf.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	h.Write(dbuf)
	dbuf.WriteString("\r\n")
	if err := dbuf.Flush(); err != nil {
		return fmt.Errorf("%w: write 101: %w", errResponseStarted, err)
	}
	tunnel(down, dbuf.Reader, up, br, opts)
	return nil
}

// TunnelOptions bound an established tunnel (a WebSocket after its 101).
type TunnelOptions struct {
	// IdleTimeout closes a tunnel that carried no byte in either direction
	// for this long; 0 means never.
	IdleTimeout time.Duration
	// MaxLifetime closes a tunnel this long after it opened, whatever it
	// carries, so long-lived connections rebalance; 0 means never.
	MaxLifetime time.Duration
	// Track, when set, is called once the tunnel is open with a function
	// that ends it, for the reason given, with a WebSocket close frame
	// 1001 ("going away") to the client when a frame boundary allows; the
	// function Track returns is called when the tunnel ends. The data
	// plane uses it to close tunnels whose route was removed, and tunnels
	// still open at the end of a shutdown's drain.
	Track func(goAway func(reason string)) (untrack func())
	// OnEnd, when set, is told why the tunnel ended ("closed" by a peer,
	// "idle_timeout", "max_lifetime", "route_removed") and how many bytes
	// went each way, for the log.
	OnEnd func(reason string, toUpstream, toClient int64)
}

// upgradeHandshake opens a connection to addr (TLS with cfg when set),
// sends out's head and reads the answer's head into w.Header(). When the
// answer is not 101 it is relayed to the client and done is true. On 101 it
// returns the connection, its reader (which may hold the first tunnelled
// bytes) and the protocol the upstream switched to; the caller owns the
// connection.
func (c *H1Client) upgradeHandshake(ctx context.Context, addr string, cfg *tls.Config, out *Outbound, w http.ResponseWriter, writeHeader func(int)) (up net.Conn, br *bufio.Reader, upgrade string, done bool, err error) {
	up, err = c.dial(ctx, addr, out.DialTimeout)
	if err == nil && cfg != nil {
		up, err = tlsHandshake(ctx, up, cfg)
	}
	if err != nil {
		return nil, nil, "", false, classify(ctx, ErrConnect, err)
	}
	fail := func(e error) (net.Conn, *bufio.Reader, string, bool, error) {
		up.Close()
		return nil, nil, "", false, e
	}
	if !out.Deadline.IsZero() {
		// The handshake is bounded like any request; the tunnel is not.
		up.SetDeadline(out.Deadline)
	}
	bw := bufio.NewWriterSize(up, 4096)
	var chunked bool
	if err := writeRequestHead(bw, out, &chunked); err != nil {
		return fail(classify(ctx, ErrConnect, err))
	}
	if err := bw.Flush(); err != nil {
		return fail(classify(ctx, ErrConnect, err))
	}
	br = bufio.NewReaderSize(up, 4096)
	var resp respHead
	var sc respScratch
	resp.reset()
	if err := readResponseHead(br, w, &resp, 64<<10, &sc, false); err != nil {
		return fail(classify(ctx, ErrProtocol, err))
	}
	if resp.status != http.StatusSwitchingProtocols {
		// Refused: relay the answer, then this connection is done.
		var lr io.LimitedReader
		_, err := relayResponse(br, &lr, &resp, out.Method, w, writeHeader, nil, nil)
		up.Close()
		return nil, nil, "", true, err
	}
	up.SetDeadline(time.Time{})
	return up, br, resp.upgrade, false, nil
}

// tunnelLinger bounds how long a tunnel waits for its second direction to
// end after the first one did.
const tunnelLinger = 30 * time.Second

// tunnel copies bytes both ways, one goroutine per direction for the life of
// the connection (not per message). When one side stops sending, the other
// side's write half is closed so it sees the end; the tunnel ends when both
// directions are done, when it was idle for opts.IdleTimeout, when it
// reaches opts.MaxLifetime, or when the function given to opts.Track is
// called.
func tunnel(down net.Conn, downBuf *bufio.Reader, up net.Conn, upBuf *bufio.Reader, opts TunnelOptions) {
	var wg sync.WaitGroup
	var once, stopOnce sync.Once
	var lastActive atomic.Int64 // unix nanoseconds of the last byte either way
	lastActive.Store(time.Now().UnixNano())
	reason := "closed"
	stopWith := func(why string) func() {
		return func() {
			stopOnce.Do(func() {
				reason = why
				down.Close()
				up.Close()
			})
		}
	}
	if opts.MaxLifetime > 0 {
		t := time.AfterFunc(opts.MaxLifetime, stopWith("max_lifetime"))
		defer t.Stop()
	}
	var goingAway atomic.Pointer[string]
	if opts.Track != nil {
		untrack := opts.Track(func(why string) {
			if !goingAway.CompareAndSwap(nil, &why) {
				return
			}
			// Wake the upstream-to-client copy so it can send the
			// close frame between two frames; if it cannot within a
			// second (mid-frame, or already done), just close.
			up.SetReadDeadline(time.Now())
			time.AfterFunc(time.Second, stopWith(why))
		})
		defer untrack()
	}
	var sent [2]int64 // bytes client->upstream, upstream->client
	wg.Add(2)
	pipe := func(dst net.Conn, srcConn net.Conn, src io.Reader, count *int64, frames *wsFramer) {
		defer wg.Done()
		bp := copyBufPool.Get().(*[]byte)
		defer copyBufPool.Put(bp)
		buf := *bp
		var armed int64 // the read deadline last set, unix nanoseconds
		for {
			if opts.IdleTimeout > 0 {
				// Re-arming on every read would cost a timer update per
				// message; a deadline up to a second early is harmless,
				// the timeout branch below checks the real idle time.
				if want := lastActive.Load() + int64(opts.IdleTimeout); want-armed > int64(time.Second) {
					srcConn.SetReadDeadline(time.Unix(0, want))
					armed = want
				}
			}
			n, err := src.Read(buf)
			if n > 0 {
				lastActive.Store(time.Now().UnixNano())
				*count += int64(n)
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
				if frames != nil {
					frames.feed(buf[:n])
				}
			}
			if why := goingAway.Load(); why != nil && frames != nil {
				if !frames.atBoundary() {
					srcConn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
					continue // finish the frame in flight first
				}
				dst.Write(closeGoingAway)
				stopWith(*why)()
				break
			}
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && opts.IdleTimeout > 0 {
					// This direction was quiet; the tunnel is idle only
					// if the other one was too.
					if time.Since(time.Unix(0, lastActive.Load())) < opts.IdleTimeout {
						armed = 0
						continue
					}
					stopWith("idle_timeout")()
				}
				break
			}
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		// One side is done: the other gets a bounded time to finish, so
		// a peer that never closes cannot hold the tunnel forever.
		once.Do(func() {
			limit := time.Now().Add(tunnelLinger)
			if opts.IdleTimeout > 0 && opts.IdleTimeout < tunnelLinger {
				limit = time.Now().Add(opts.IdleTimeout)
			}
			down.SetReadDeadline(limit)
			up.SetReadDeadline(limit)
		})
	}
	go pipe(up, down, downBuf, &sent[0], nil)
	pipe(down, up, upBuf, &sent[1], &wsFramer{})
	wg.Wait()
	stopOnce.Do(func() {}) // fix the reason: later stops change nothing
	if opts.OnEnd != nil {
		opts.OnEnd(reason, sent[0], sent[1])
	}
}
