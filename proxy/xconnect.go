package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// IsExtendedConnect reports whether r is an HTTP/2 extended CONNECT (RFC
// 8441) for a WebSocket, and so must be bridged to an HTTP/1.1 Upgrade.
func IsExtendedConnect(r *http.Request) bool {
	return r.ProtoMajor == 2 && r.Method == http.MethodConnect && r.Header.Get(":protocol") == "websocket"
}

// websocketGUID is RFC 6455's key suffix.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// ExtendedConnect bridges a WebSocket opened over HTTP/2 (RFC 8441) to an
// HTTP/1.1 upstream: the CONNECT becomes a GET with Upgrade: websocket and a
// fresh Sec-WebSocket-Key, the upstream's 101 (whose Sec-WebSocket-Accept is
// checked) becomes a 200 on the stream, and the stream's DATA frames carry
// the WebSocket bytes both ways. A refusal is relayed like any response.
func (c *H1Client) ExtendedConnect(ctx context.Context, addr string, cfg *tls.Config, out *Outbound, body io.ReadCloser, w http.ResponseWriter, writeHeader func(int), opts TunnelOptions) error {
	var raw [16]byte
	rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])
	delete(out.Header, ":protocol")
	out.Method = http.MethodGet
	out.Body, out.ContentLength = nil, 0
	out.Header["Connection"] = []string{"Upgrade"}
	out.Header["Upgrade"] = []string{"websocket"}
	out.Header["Sec-Websocket-Key"] = []string{key}
	if out.Header.Get("Sec-Websocket-Version") == "" {
		out.Header["Sec-Websocket-Version"] = []string{"13"}
	}
	up, br, _, done, err := c.upgradeHandshake(ctx, addr, cfg, out, w, writeHeader)
	if done || err != nil {
		return err
	}
	defer up.Close()
	h := w.Header()
	sum := sha1.Sum([]byte(key + websocketGUID))
	if got := h.Get("Sec-Websocket-Accept"); got != base64.StdEncoding.EncodeToString(sum[:]) {
		clear(h)
		return &UpstreamError{Kind: ErrProtocol, Err: fmt.Errorf("upstream answered the WebSocket upgrade with a wrong Sec-WebSocket-Accept %q", got)}
	}
	for _, k := range []string{"Sec-Websocket-Accept", "Upgrade", "Connection"} {
		delete(h, k)
	}
	writeHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("%w: flush 200: %w", errResponseStarted, err)
	}
	down := &streamConn{body: body, w: w, rc: rc}
	tunnel(down, bufio.NewReaderSize(down, 4096), up, br, opts)
	return nil
}

// streamConn presents one HTTP/2 stream (request body in, response body
// out) as a net.Conn, so the same tunnel code serves it.
type streamConn struct {
	body io.ReadCloser
	w    http.ResponseWriter
	rc   *http.ResponseController
}

func (s *streamConn) Read(p []byte) (int, error) { return s.body.Read(p) }

func (s *streamConn) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err == nil {
		err = s.rc.Flush()
	}
	return n, err
}

// Close ends the downstream direction: a pending Read returns at once.
func (s *streamConn) Close() error { return s.body.Close() }

// CloseWrite cannot end the response before the handler returns; the
// tunnel's linger deadline then ends the other direction.
func (s *streamConn) CloseWrite() error { return nil }

func (s *streamConn) LocalAddr() net.Addr  { return streamAddr{} }
func (s *streamConn) RemoteAddr() net.Addr { return streamAddr{} }

func (s *streamConn) SetDeadline(t time.Time) error {
	return errors.Join(s.rc.SetReadDeadline(t), s.rc.SetWriteDeadline(t))
}
func (s *streamConn) SetReadDeadline(t time.Time) error  { return s.rc.SetReadDeadline(t) }
func (s *streamConn) SetWriteDeadline(t time.Time) error { return s.rc.SetWriteDeadline(t) }

type streamAddr struct{}

func (streamAddr) Network() string { return "h2-stream" }
func (streamAddr) String() string  { return "h2-stream" }
