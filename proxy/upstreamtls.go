package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/meshgate/meshgate/ir"
)

// upstreamTLS caches one client TLS config (and, for HTTP/2 backends, one
// transport) per distinct ir.UpstreamTLS content, so that reloads, which
// make new ir values, keep using the same pooled connections.
type upstreamTLS struct {
	mu      sync.Mutex
	entries map[string]*tlsEntry
}

type tlsEntry struct {
	key string
	h1  *tls.Config
	h2  *http2.Transport
}

// entry returns the cached config for u, building it on first use.
func (c *upstreamTLS) entry(u *ir.UpstreamTLS) (*tlsEntry, error) {
	key := UpstreamTLSKey(u)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil {
		return e, nil
	}
	base, err := ClientTLSConfig(u)
	if err != nil {
		return nil, err
	}
	h1 := base.Clone()
	h1.NextProtos = []string{"http/1.1"}
	h2cfg := base.Clone()
	h2cfg.NextProtos = []string{"h2"}
	e := &tlsEntry{key: key, h1: h1, h2: &http2.Transport{
		TLSClientConfig: h2cfg,
		// A busy backend's stream limit opens another connection rather
		// than queueing requests behind long-lived streams.
		StrictMaxConcurrentStreams: false,
		ReadIdleTimeout:            30 * time.Second,
		DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
			conn, err := dialH2(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return tlsHandshake(ctx, conn, cfg)
		},
	}}
	if c.entries == nil {
		c.entries = map[string]*tlsEntry{}
	}
	c.entries[key] = e
	return e, nil
}

// closeIdle closes idle HTTP/2 connections of every cached transport.
func (c *upstreamTLS) closeIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		e.h2.CloseIdleConnections()
	}
}

// tlsHandshake runs the client handshake on conn under ctx and checks that
// the server agreed to the one protocol offered, so an HTTP/2 request is
// never sent to a server that only speaks HTTP/1.1.
func tlsHandshake(ctx context.Context, conn net.Conn, cfg *tls.Config) (net.Conn, error) {
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", conn.RemoteAddr(), err)
	}
	if len(cfg.NextProtos) == 1 && cfg.NextProtos[0] == "h2" && tc.ConnectionState().NegotiatedProtocol != "h2" {
		tc.Close()
		return nil, fmt.Errorf("TLS handshake with %s: upstream did not agree to HTTP/2 (ALPN h2)", conn.RemoteAddr())
	}
	return tc, nil
}

// roundTripper is what forwardH2 sends requests with.
type roundTripper interface {
	RoundTrip(*http.Request) (*http.Response, error)
}
