package server

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/internal/bufpool"
)

// h1Response is the ResponseWriter of h1Conn, reused for every request on
// the connection. Like net/http's, it holds back up to pendingMax body bytes
// so that a handler that sets no Content-Length still gets one when its
// whole body is small; larger bodies go out chunked.
type h1Response struct {
	conn       *h1Conn
	hdr        http.Header
	status     int
	committed  bool
	closeAfter bool
	head       bool // HEAD request: no body bytes
	proto10    bool
	keepAlive  bool // HTTP/1.0 client asked for keep-alive
	noBody     bool // status forbids a body
	chunked    bool
	length     int64 // declared Content-Length, -1 if none
	written    int64
	pending    []byte
	trailers   []string // names declared in the Trailer header, sent after a chunked body

	// rawHead holds header lines sent as they are (SetRawHeader), rawCL
	// their response's Content-Length (-1 for none), rawDate whether they
	// include Date.
	rawHead []byte
	rawCL   int64
	rawDate bool
}

const pendingMax = 4096

// HeaderValues hands out header value slices valid until this response
// is finished (hdrvals.Source), from the connection's arena.
func (w *h1Response) HeaderValues(n int) []string { return w.conn.vals.Take(n) }

// ConnMemo returns the connection's memo slot (hdrvals.Source).
func (w *h1Response) ConnMemo() *any { return &w.conn.memo }

func (w *h1Response) reset(r *http.Request, closeAfter bool) {
	if w.hdr == nil {
		w.hdr = http.Header{} // dropped while the connection was parked
	}
	clear(w.hdr)
	w.status = 0
	w.committed = false
	w.closeAfter = closeAfter
	w.head = r.Method == http.MethodHead
	w.proto10 = r.ProtoMinor == 0
	w.keepAlive = w.proto10 && !closeAfter
	w.noBody = false
	w.chunked = false
	w.length = -1
	w.written = 0
	w.pending = w.pending[:0]
	w.trailers = w.trailers[:0]
	w.rawHead = w.rawHead[:0]
	w.rawCL = -1
	w.rawDate = false
}

// SetRawHeader gives header fields to send as they are, before those of
// Header(): lines "Name: value\r\n", valid (no CR or LF in a value), and
// none of the fields the server frames itself (Content-Length,
// Transfer-Encoding, Connection). contentLength is the response's
// Content-Length, -1 for none; hasDate says whether the lines include Date.
// The upstream HTTP/1.1 client hands over a proxied response head this way
// when nothing reads or edits it as a map (proxy.RawHeadSink): no map to
// fill and then walk. Call it before WriteHeader; the lines are copied.
func (w *h1Response) SetRawHeader(fields []byte, contentLength int64, hasDate bool) {
	if w.status != 0 || w.committed {
		return
	}
	w.rawHead = append(w.rawHead[:0], fields...)
	w.rawCL, w.rawDate = contentLength, hasDate
}

// Header is the response header map, reused between requests.
func (w *h1Response) Header() http.Header { return w.hdr }

// WriteHeader records the status; headers are sent with the first body
// bytes, on Flush, or when the handler returns.
func (w *h1Response) WriteHeader(status int) {
	if w.status != 0 || w.committed {
		return
	}
	if status < 100 || status > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(status))
	}
	if status < 200 {
		// Informational responses go out at once and the real one follows.
		if status == http.StatusSwitchingProtocols || w.proto10 {
			return // upgrades are not supported here yet; 1.0 has no 1xx
		}
		bw := w.conn.bw
		bw.WriteString("HTTP/1.1 ")
		bw.WriteString(statusLine(status))
		bw.WriteString("\r\n")
		for k, vs := range w.hdr { // e.g. 103 Early Hints' Link fields
			for _, v := range vs {
				if !strings.ContainsAny(v, "\r\n") {
					bw.WriteString(k + ": " + v + "\r\n")
				}
			}
		}
		bw.WriteString("\r\n")
		return
	}
	w.status = status
	w.noBody = status == http.StatusNoContent || status == http.StatusNotModified
	if w.rawCL >= 0 {
		w.length = w.rawCL
	} else if cl := w.hdr["Content-Length"]; len(cl) == 1 {
		if n, err := parseContentLength(cl[0]); err == nil {
			w.length = n
		} else {
			delete(w.hdr, "Content-Length")
		}
	}
}

func (w *h1Response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.head || w.noBody {
		if !w.committed && w.length < 0 {
			w.written += int64(len(p)) // HEAD: report the length GET would have
		}
		return len(p), nil
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	if !w.committed {
		if w.length < 0 && len(w.pending)+len(p) <= pendingMax {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		if err := w.commit(false); err != nil {
			return 0, err
		}
	}
	return w.writeBody(p)
}

func (w *h1Response) writeBody(p []byte) (int, error) {
	bw := w.conn.bw
	w.written += int64(len(p))
	if !w.chunked {
		return bw.Write(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	var hex [16]byte
	bw.Write(strconv.AppendInt(hex[:0], int64(len(p)), 16))
	bw.WriteString("\r\n")
	bw.Write(p)
	_, err := bw.WriteString("\r\n")
	return len(p), err
}

// commit writes the status line and headers. final says the handler is done,
// so the pending bytes are the whole body.
func (w *h1Response) commit(final bool) error {
	w.committed = true
	if w.status == 0 {
		w.status = http.StatusOK
	}
	h := w.hdr
	bodyAllowed := !w.noBody
	if decl := h["Trailer"]; len(decl) > 0 && bodyAllowed && !w.head && !w.proto10 {
		// Trailers (gRPC's status among them) need a chunked body.
		for _, v := range decl {
			for v != "" {
				var name string
				name, v, _ = strings.Cut(v, ",")
				if name = strings.TrimSpace(name); name != "" {
					w.trailers = append(w.trailers, http.CanonicalHeaderKey(name))
				}
			}
		}
		delete(h, "Content-Length")
		w.length = -1
		w.rawCL = -1
		w.chunked = true
	}
	switch {
	case w.chunked:
	case !bodyAllowed:
		delete(h, "Content-Length")
		w.rawCL = -1
	case w.length >= 0:
	case final:
		// The whole body is known: declare its length.
		n := int64(len(w.pending))
		if w.head {
			n = w.written
		}
		if !(w.head && n == 0) {
			w.length = n
			h["Content-Length"] = []string{strconv.FormatInt(n, 10)}
		}
	case w.head:
	case w.proto10:
		w.closeAfter = true // length unknown: the end of the body is the close
	default:
		w.chunked = true
	}
	// The head is appended to the writer's free space and written with
	// one call: a write per piece costs ~60 instructions each, and a
	// local array for the length's digits would escape through
	// bw.Write (an allocation per response). A head larger than the
	// free space grows the slice instead.
	bw := w.conn.bw
	b := bw.AvailableBuffer()
	if w.proto10 {
		b = append(b, "HTTP/1.0 "...)
	} else {
		b = append(b, "HTTP/1.1 "...)
	}
	b = append(b, statusLine(w.status)...)
	b = append(b, "\r\n"...)
	b = append(b, w.rawHead...)
	if w.rawCL >= 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, w.rawCL, 10)
		b = append(b, "\r\n"...)
	}
	// The fields the server sets itself are handled in the one pass over
	// the header that writes it, not by lookups before it.
	hasDate := w.rawDate
	for k, vs := range h {
		switch k {
		case "Date":
			hasDate = true
		case "Connection":
			// Hop-by-hop: the server writes its own. A handler's
			// "close" closes the connection after this response.
			for _, v := range vs {
				if hasToken(v, "close") {
					w.closeAfter = true
				}
			}
			continue
		case "Transfer-Encoding":
			continue // the server frames the body itself
		case "Content-Length":
			if w.rawCL >= 0 {
				continue // written with the raw lines
			}
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vs {
			if strings.IndexByte(v, '\r') >= 0 || strings.IndexByte(v, '\n') >= 0 {
				continue // never let a value start a new header line
			}
			b = bufpool.AppendField(b, k, v)
		}
	}
	if !hasDate {
		b = append(b, "Date: "...)
		b = append(b, httpDate()...)
		b = append(b, "\r\n"...)
	}
	if w.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if w.closeAfter || w.conn.l.closing.Load() {
		w.closeAfter = true
		b = append(b, "Connection: close\r\n"...)
	} else if w.proto10 && w.keepAlive {
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	_, err := bw.Write(b)
	if err != nil {
		return err
	}
	if len(w.pending) > 0 && bodyAllowed && !w.head {
		p := w.pending
		w.pending = w.pending[:0]
		w.written = 0
		_, err = w.writeBody(p)
	}
	return err
}

// finish completes the response after the handler returned.
func (w *h1Response) finish() error {
	if !w.committed {
		if err := w.commit(true); err != nil {
			return err
		}
	}
	if w.chunked {
		bw := w.conn.bw
		bw.WriteString("0\r\n")
		w.writeTrailers(bw)
		_, err := bw.WriteString("\r\n")
		return err
	}
	if w.length >= 0 && w.written < w.length && !w.head && !w.noBody {
		// The handler promised more than it wrote: the framing is broken,
		// so the connection cannot carry another response.
		w.closeAfter = true
	}
	return nil
}

// writeTrailers writes the declared trailer fields the handler set after
// the headers went out, and those it set with http.TrailerPrefix.
func (w *h1Response) writeTrailers(bw *bufio.Writer) {
	write := func(k string, vs []string) {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	for _, k := range w.trailers {
		write(k, w.hdr[k])
	}
	for k, vs := range w.hdr {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			write(http.CanonicalHeaderKey(name), vs)
		}
	}
}

// Flush sends what is buffered, committing the headers.
func (w *h1Response) Flush() { w.FlushError() }

// FlushError is Flush reporting a write failure (http.ResponseController).
func (w *h1Response) FlushError() error {
	if !w.committed {
		if w.status == 0 {
			w.WriteHeader(http.StatusOK)
		}
		if err := w.commit(false); err != nil {
			return err
		}
	}
	return w.conn.bw.Flush()
}

// Hijack hands the connection to the handler, for protocol upgrades such
// as WebSocket. Nothing of the response may have been sent. The returned
// reader holds bytes the client already sent after the request.
func (w *h1Response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hc := w.conn
	if w.committed {
		return nil, nil, errors.New("hijack: response already started")
	}
	if hc.h2 || hc.hijacked || hc.rd.inLoop {
		// (A request served in the read loop has no Upgrade header; the
		// loop holds the connection's read lock, so the handler could
		// not read it anyway.)
		return nil, nil, errors.New("hijack: connection not available")
	}
	if err := hc.bw.Flush(); err != nil {
		return nil, nil, err
	}
	hc.hijacked = true
	w.committed = true
	hc.c.SetDeadline(time.Time{})
	hc.l.untrack(hc)
	return hc.c, bufio.NewReadWriter(hc.br, hc.bw), nil
}

var (
	_ http.Flusher  = (*h1Response)(nil)
	_ http.Hijacker = (*h1Response)(nil)
)

func statusLine(code int) string {
	if code < len(statusLines) && statusLines[code] != "" {
		return statusLines[code]
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

var statusLines = func() []string {
	s := make([]string, 600)
	for c := 100; c < 600; c++ {
		if t := http.StatusText(c); t != "" {
			s[c] = strconv.Itoa(c) + " " + t
		}
	}
	return s
}()

// dateCache holds the Date header value, refreshed once a second.
var dateCache atomic.Pointer[cachedDate]

type cachedDate struct {
	unix int64
	text string
}

func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.unix == now.Unix() {
		return d.text
	}
	d := &cachedDate{unix: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

var _ net.Conn = (*bufferedConn)(nil)
