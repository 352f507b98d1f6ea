package dataplane

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/proxy"
	"github.com/meshgate/meshgate/router"
	"github.com/meshgate/meshgate/upstream"
)

// Mirroring bounds: a copy needs the whole request body, so bodies larger
// than maxMirrorBody are not mirrored; copies beyond maxMirrorsInFlight are
// dropped rather than queued, so a slow mirror backend cannot grow memory or
// slow the primary traffic.
const (
	maxMirrorBody      = 1 << 20
	maxMirrorsInFlight = 256
)

// mirrorer sends copies of requests to mirror backends in the background and
// ignores their answers.
type mirrorer struct {
	forwarder *proxy.Forwarder
	balancer  *upstream.Balancer
	slots     chan struct{}
	log       *slog.Logger
	// dropped counts copies not sent (body too large or cut short, too
	// many in flight, no endpoint).
	dropped atomic.Uint64
}

func newMirrorer(f *proxy.Forwarder, b *upstream.Balancer, log *slog.Logger) *mirrorer {
	return &mirrorer{forwarder: f, balancer: b, slots: make(chan struct{}, maxMirrorsInFlight), log: log}
}

// pendingMirror is a request to copy once its body has been read.
type pendingMirror struct {
	targets []*ir.Backend
	out     proxy.Outbound
	tee     *teeBody
}

// prepare decides which of route's mirrors copy r, snapshots its head, and
// wraps its body so the primary request's reading of it is recorded; fwd,
// when not nil, are the forwarding fields kept out of r.Header, which the
// copy sends as well. It returns nil when nothing is to be copied.
func (m *mirrorer) prepare(route *router.Route, r *http.Request, uri string, fwd *proxy.ForwardedFields) *pendingMirror {
	var targets []*ir.Backend
	for _, mf := range route.Mirrors {
		if mf.Sample() {
			targets = append(targets, mf.Target)
		}
	}
	if len(targets) == 0 {
		return nil
	}
	p := &pendingMirror{targets: targets, out: proxy.Outbound{
		Method: r.Method, RequestURI: uri, Host: r.Host, Header: r.Header.Clone(), ContentLength: r.ContentLength,
	}}
	if fwd != nil {
		p.out.Forwarded = *fwd // the forwarding fields, kept out of r.Header
	}
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > maxMirrorBody {
			m.drop(p, "body too large")
			return nil
		}
		p.tee = &teeBody{r: r.Body}
		r.Body = p.tee
	}
	return p
}

// send copies p to its targets in the background.
func (m *mirrorer) send(p *pendingMirror) {
	var body []byte
	if p.tee != nil {
		if !p.tee.eof || p.tee.overflow {
			m.drop(p, "body not read whole or too large")
			return
		}
		body = p.tee.buf.Bytes()
	}
	for _, target := range p.targets {
		select {
		case m.slots <- struct{}{}:
		default:
			m.drop(p, "too many mirrored requests in flight")
			continue
		}
		out := p.out
		out.Header = p.out.Header.Clone()
		out.ContentLength = int64(len(body))
		if body != nil {
			out.Body = bytes.NewReader(body)
		}
		go func() {
			defer func() { <-m.slots }()
			pick, err := m.balancer.Pick(target, upstream.PickInput{})
			if err != nil {
				m.drop(p, "mirror backend has no endpoint")
				return
			}
			ep := pick.Endpoint
			// Mirrored answers are ignored; so is their outcome.
			defer pick.Done(upstream.Outcome{Local: true})
			ctx, cancel := context.WithTimeout(context.Background(), proxy.DefaultUpstreamTimeout)
			defer cancel()
			var w discardWriter
			if err := m.forwarder.Forward(ctx, target, ep, &out, &w, func(int) {}); err != nil {
				m.log.Debug("mirrored request failed", "backend", target.Name, "upstream", ep.Address, "error", err.Error())
			}
		}()
	}
}

func (m *mirrorer) drop(p *pendingMirror, why string) {
	m.dropped.Add(1)
	m.log.Debug("request not mirrored", "reason", why, "path", p.out.RequestURI)
}

// teeBody records what the primary request reads of the body, up to
// maxMirrorBody.
type teeBody struct {
	r        io.ReadCloser
	buf      bytes.Buffer
	eof      bool
	overflow bool
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 && !t.overflow {
		if t.buf.Len()+n > maxMirrorBody {
			t.overflow = true
			t.buf = bytes.Buffer{}
		} else {
			t.buf.Write(p[:n])
		}
	}
	if err == io.EOF {
		t.eof = true
	}
	return n, err
}

func (t *teeBody) Close() error { return t.r.Close() }

// discardWriter is the ResponseWriter of a mirrored request: the answer is
// read and thrown away.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Flush()                      {}
