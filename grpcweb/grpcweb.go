// Package grpcweb lets browser gRPC-Web clients reach plain gRPC backends
// through the gateway.
//
// Browsers cannot read HTTP trailers and cannot force HTTP/2, so the
// gRPC-Web protocol (PROTOCOL-WEB.md in the gRPC repository) moves the
// trailers into the response body as one final length-prefixed frame with
// flag 0x80, and offers a base64 ("-text") variant for clients that can only
// handle text bodies. This package translates one request at a time in both
// directions: the request becomes ordinary gRPC for the upstream, and the
// upstream's response (messages, then HTTP trailers or a trailers-only
// header block) becomes a gRPC-Web body. It keeps no state between requests
// and never buffers a whole body, so server streaming keeps streaming.
//
// CORS (preflight and exposed headers) is not handled here.
package grpcweb

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

const (
	ctWeb     = "application/grpc-web"
	ctText    = "-text"
	ctGRPC    = "application/grpc"
	flagTrail = 0x80 // frame flag marking the trailer frame
)

// Is reports whether r is a gRPC-Web request, judged by its Content-Type
// (application/grpc-web or application/grpc-web-text, optionally with a
// "+subtype" such as "+proto"; case-insensitive, parameters ignored). The
// gateway needs the test to decide whether a request must be translated
// before it is forwarded to a gRPC backend.
func Is(r *http.Request) bool {
	var ct string
	if v := r.Header["Content-Type"]; len(v) > 0 {
		ct = v[0] // not Get: the key is canonical, skip canonicalizing it
	}
	_, _, ok := parseContentType(ct)
	return ok
}

// parseContentType splits a gRPC-Web media type into its mode and its
// lowercased "+subtype" suffix ("" when absent).
func parseContentType(ct string) (text bool, suffix string, ok bool) {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if len(ct) < len(ctWeb) || !strings.EqualFold(ct[:len(ctWeb)], ctWeb) {
		return false, "", false
	}
	rest := ct[len(ctWeb):]
	if len(rest) >= len(ctText) && strings.EqualFold(rest[:len(ctText)], ctText) {
		text = true
		rest = rest[len(ctText):]
	}
	if rest == "" {
		return text, "", true
	}
	if rest[0] != '+' || len(rest) == 1 {
		return false, "", false
	}
	for i := 1; i < len(rest); i++ {
		if !isTokenChar(rest[i]) {
			return false, "", false
		}
	}
	return text, strings.ToLower(rest), true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&-^_.", c) >= 0
}

// isGRPCContentType reports whether an upstream response is gRPC, which is
// what makes its body safe to pass on as gRPC-Web messages.
func isGRPCContentType(ct string) bool {
	if len(ct) < len(ctGRPC) || !strings.EqualFold(ct[:len(ctGRPC)], ctGRPC) {
		return false
	}
	rest := ct[len(ctGRPC):]
	return rest == "" || rest[0] == '+' || rest[0] == ';' || rest[0] == ' '
}

// Handler returns middleware that serves gRPC-Web requests by translating
// them (see Wrap) around next, which is expected to speak plain gRPC, for
// example a reverse proxy to an h2c upstream. Other requests reach next
// unchanged, so Handler can sit in front of mixed traffic.
//
// If next panics (http.ErrAbortHandler after a broken upstream stream), no
// trailer frame is written: the client then sees a truncated response
// rather than a made-up status.
func Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Is(r) {
			next.ServeHTTP(w, r)
			return
		}
		w2, r2, finish := Wrap(w, r)
		next.ServeHTTP(w2, r2)
		_ = finish() // a failed write means the client left; nothing is left to tell it
	})
}

// Wrap prepares one gRPC-Web exchange for code that forwards plain gRPC, for
// callers that cannot use Handler because they forward inline (the gateway's
// request handler). It returns:
//
//   - a ResponseWriter to give the gRPC side. Whatever is written to it is
//     translated: status 200, the gRPC-Web Content-Type the client sent,
//     message bytes passed through (base64 encoded for -text), and gRPC
//     metadata that would travel as HTTP trailers collected for the trailer
//     frame. Trailers are recognised in every form net/http code uses:
//     names declared in a "Trailer" header, keys with http.TrailerPrefix,
//     and keys set or changed after WriteHeader (proxy code that copies an
//     upstream's trailers into the header map after the body). grpc-status,
//     grpc-message and grpc-status-details-bin found in the response headers
//     (a trailers-only response) move into the trailer frame too. A non-200
//     or non-gRPC response becomes a trailer frame whose grpc-status is
//     mapped from the HTTP status as the gRPC HTTP mapping says. It
//     implements http.Flusher so streamed messages reach the client as they
//     are flushed.
//   - a shallow copy of r rewritten into gRPC: Content-Type
//     application/grpc plus the client's "+subtype", "TE: trailers", the
//     gRPC-Web-only X-Grpc-Web and grpc-web Accept headers removed, and for
//     -text a body decoded from base64 as it is read, with ContentLength -1.
//     r itself is not modified.
//   - finish, which must be called once after the gRPC side has returned
//     normally: it writes the trailer frame and reports a write error. Do
//     not call it (e.g. do not defer it) when the forwarding aborted with a
//     panic, so a broken stream is not passed off as a complete one.
//
// If r is not a gRPC-Web request, Wrap returns w and r unchanged and a
// finish that does nothing.
func Wrap(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request, func() error) {
	text, suffix, ok := parseContentType(r.Header.Get("Content-Type"))
	if !ok {
		return w, r, func() error { return nil }
	}
	r2 := new(http.Request)
	*r2 = *r
	h := r.Header.Clone()
	h["Content-Type"] = []string{ctGRPC + suffix}
	h["Te"] = []string{"trailers"}
	delete(h, "X-Grpc-Web")
	for _, v := range h["Accept"] {
		if strings.Contains(strings.ToLower(v), ctWeb) {
			// The client asked for a gRPC-Web body; the upstream can only
			// answer gRPC, which this package translates.
			delete(h, "Accept")
			break
		}
	}
	r2.Header = h
	if text {
		body := r.Body
		if body == nil {
			body = http.NoBody
		}
		r2.Body = &textDecoder{src: body}
		r2.GetBody = nil
		r2.ContentLength = -1
		delete(h, "Content-Length")
	}
	ct := ctWeb + suffix
	if text {
		ct = ctWeb + ctText + suffix
	}
	rw := &responseWriter{w: w, hdr: make(http.Header), contentType: ct, text: text}
	return rw, r2, rw.finish
}

// statusKeys are the gRPC status fields that a trailers-only response
// carries in its header block and the trailer frame must carry instead.
var statusKeys = [...]string{"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"}

// notTrailers are header keys never turned into trailer-frame lines.
func notTrailer(k string) bool {
	switch k {
	case "Trailer", "Content-Length", "Content-Type", "Transfer-Encoding", "Connection", "Date":
		return true
	}
	return false
}

var errFinished = errors.New("grpcweb: write after the trailer frame")

// responseWriter translates a gRPC response into gRPC-Web.
type responseWriter struct {
	w           http.ResponseWriter
	hdr         http.Header // what the gRPC side sees as the header map
	contentType string
	text        bool

	wroteHeader bool
	status      int         // status the gRPC side wrote
	passBody    bool        // the body is gRPC messages worth passing on
	sent        http.Header // hdr as it was at WriteHeader
	declared    []string    // canonical names from the Trailer header
	headerTrail http.Header // status fields of a trailers-only response
	done        bool

	// -text encoding: up to 2 bytes wait for a full 3-byte group until the
	// next write or flush.
	pend  [3]byte
	npend int
	ebuf  [4096]byte
}

// Header returns the map the gRPC side fills; it is copied to the client's
// header at WriteHeader minus what gRPC-Web moves into the body.
func (rw *responseWriter) Header() http.Header { return rw.hdr }

// Unwrap lets http.ResponseController reach the underlying writer.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.w }

// WriteHeader sends 200 with the gRPC-Web headers whatever code is: a
// gRPC-Web client reads the outcome from the trailer frame.
func (rw *responseWriter) WriteHeader(code int) {
	if rw.wroteHeader || rw.done {
		return
	}
	if code >= 100 && code < 200 {
		return // informational responses mean nothing to a gRPC-Web client
	}
	rw.wroteHeader = true
	rw.status = code
	rw.passBody = code == http.StatusOK && isGRPCContentType(rw.hdr.Get("Content-Type"))
	rw.sent = rw.hdr.Clone()
	for _, v := range rw.hdr["Trailer"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				rw.declared = append(rw.declared, http.CanonicalHeaderKey(name))
			}
		}
	}
	out := rw.w.Header()
	for k, vs := range rw.hdr {
		if notTrailer(k) || strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		if slices.Contains(statusKeys[:], k) {
			if rw.headerTrail == nil {
				rw.headerTrail = make(http.Header)
			}
			rw.headerTrail[k] = vs
			continue
		}
		out[k] = slices.Clone(vs)
	}
	if c := rw.hdr["Connection"]; c != nil {
		out["Connection"] = slices.Clone(c) // e.g. a close decided on an error path
	}
	delete(out, "Content-Length")
	out["Content-Type"] = []string{rw.contentType}
	rw.w.WriteHeader(http.StatusOK)
}

// Write passes gRPC message bytes on, base64 encoded in -text mode. The body
// of a non-gRPC response (an error page) is dropped: its outcome is
// reported in the trailer frame instead.
func (rw *responseWriter) Write(p []byte) (int, error) {
	if rw.done {
		return 0, errFinished
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if !rw.passBody {
		return len(p), nil
	}
	if !rw.text {
		return rw.w.Write(p)
	}
	if err := rw.writeText(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush sends what was written so far, padding a partial base64 group, and
// flushes the underlying writer, so streamed messages are not held back.
func (rw *responseWriter) Flush() {
	if rw.done {
		return
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.text && rw.flushText() != nil {
		return
	}
	if f, ok := rw.w.(http.Flusher); ok {
		f.Flush()
	}
}

// writeText base64-encodes p, keeping a trailing partial group for later.
func (rw *responseWriter) writeText(p []byte) error {
	off := 0
	if rw.npend > 0 {
		k := copy(rw.pend[rw.npend:], p)
		rw.npend += k
		p = p[k:]
		if rw.npend < 3 {
			return nil
		}
		base64.StdEncoding.Encode(rw.ebuf[:4], rw.pend[:])
		rw.npend = 0
		off = 4
	}
	for len(p) >= 3 || off > 0 {
		n := min(len(p)/3*3, (len(rw.ebuf)-off)/4*3)
		base64.StdEncoding.Encode(rw.ebuf[off:], p[:n])
		if _, err := rw.w.Write(rw.ebuf[:off+n/3*4]); err != nil {
			return err
		}
		p = p[n:]
		off = 0
	}
	rw.npend = copy(rw.pend[:], p)
	return nil
}

// flushText writes a pending partial group with padding, which gRPC-Web
// allows at any chunk boundary.
func (rw *responseWriter) flushText() error {
	if rw.npend == 0 {
		return nil
	}
	base64.StdEncoding.Encode(rw.ebuf[:4], rw.pend[:rw.npend])
	rw.npend = 0
	_, err := rw.w.Write(rw.ebuf[:4])
	return err
}

// finish writes the trailer frame.
func (rw *responseWriter) finish() error {
	if rw.done {
		return nil
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	rw.done = true
	frame := appendTrailerFrame(nil, rw.trailers())
	if !rw.text {
		_, err := rw.w.Write(frame)
		return err
	}
	if err := rw.writeText(frame); err != nil {
		return err
	}
	return rw.flushText()
}

// trailers gathers the fields for the trailer frame, with a grpc-status
// synthesised when the gRPC side sent none.
func (rw *responseWriter) trailers() http.Header {
	t := make(http.Header, len(rw.headerTrail)+2)
	for k, vs := range rw.headerTrail {
		t[k] = vs
	}
	for _, k := range rw.declared {
		if vs := rw.hdr[k]; len(vs) > 0 && !notTrailer(k) {
			t[k] = vs
		}
	}
	for k, vs := range rw.hdr {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if k = http.CanonicalHeaderKey(name); !notTrailer(k) {
				t[k] = vs
			}
			continue
		}
		if notTrailer(k) {
			continue
		}
		if old, ok := rw.sent[k]; !ok || !slices.Equal(old, vs) {
			t[k] = vs // set after the header went out: a trailer
		}
	}
	if len(t["Grpc-Status"]) == 0 {
		code, msg := missingStatus(rw.status, rw.passBody)
		t["Grpc-Status"] = []string{strconv.Itoa(code)}
		t["Grpc-Message"] = []string{msg}
	}
	return t
}

// missingStatus chooses the gRPC status for a response that carried none,
// following the HTTP-to-gRPC mapping of gRPC's http-grpc-status-mapping.md.
func missingStatus(httpStatus int, grpcBody bool) (int, string) {
	const (
		unknown         = 2
		permission      = 7
		unimplemented   = 12
		internal        = 13
		unavailable     = 14
		unauthenticated = 16
	)
	msg := "upstream HTTP status " + strconv.Itoa(httpStatus)
	switch httpStatus {
	case http.StatusOK:
		if grpcBody {
			return unknown, "upstream sent no grpc-status"
		}
		return unknown, "upstream response is not gRPC"
	case http.StatusBadRequest:
		return internal, msg
	case http.StatusUnauthorized:
		return unauthenticated, msg
	case http.StatusForbidden:
		return permission, msg
	case http.StatusNotFound:
		return unimplemented, msg
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return unavailable, msg
	}
	return unknown, msg
}

// appendTrailerFrame appends the gRPC-Web trailer frame for t: lowercase
// "name: value\r\n" lines in name order. Values that could break a line
// are left out rather than let them forge fields.
func appendTrailerFrame(dst []byte, t http.Header) []byte {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	start := len(dst)
	dst = append(dst, flagTrail, 0, 0, 0, 0)
	for _, k := range keys {
		if !validName(k) {
			continue
		}
		for _, v := range t[k] {
			if strings.ContainsAny(v, "\r\n\x00") {
				continue
			}
			for i := 0; i < len(k); i++ {
				c := k[i]
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				dst = append(dst, c)
			}
			dst = append(dst, ": "...)
			dst = append(dst, v...)
			dst = append(dst, "\r\n"...)
		}
	}
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-5))
	return dst
}

func validName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenChar(k[i]) && !strings.ContainsRune("%'*+`|~", rune(k[i])) {
			return false
		}
	}
	return true
}

// textDecoder streams the base64 body of a -text request as bytes. The
// client may send several independently padded chunks back to back, so
// decoding restarts after every group that ends in padding.
type textDecoder struct {
	src    io.ReadCloser
	in     [4096]byte // undecoded base64
	nin    int
	out    [3072]byte // decoded, not yet read: out[r:n]
	r, n   int
	srcErr error
	err    error
}

var errBase64 = errors.New("grpcweb: request body is not valid base64")

// maxEmptyReads bounds reads that return neither data nor an error.
const maxEmptyReads = 100

func (d *textDecoder) Read(p []byte) (int, error) {
	for empty := 0; ; {
		if d.r < d.n {
			k := copy(p, d.out[d.r:d.n])
			d.r += k
			return k, nil
		}
		if d.err != nil {
			return 0, d.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		if q := d.nin &^ 3; q > 0 {
			n, err := decodeQuanta(d.out[:], d.in[:q])
			d.nin = copy(d.in[:], d.in[q:d.nin])
			d.r, d.n = 0, n
			if err != nil {
				d.err = errBase64
			}
			continue
		}
		if d.srcErr != nil {
			d.err = d.srcErr
			if d.nin > 0 {
				// 1 to 3 characters left: an unpadded last chunk, if the
				// body ended; otherwise they are lost with the error.
				if d.srcErr == io.EOF {
					n, err := base64.RawStdEncoding.Decode(d.out[:], d.in[:d.nin])
					if err != nil || bytes.ContainsAny(d.in[:d.nin], "\r\n") {
						n, d.err = 0, errBase64
					}
					d.r, d.n = 0, n
				}
				d.nin = 0
			}
			continue
		}
		k, err := d.src.Read(d.in[d.nin:])
		d.nin += k
		d.srcErr = err
		if k == 0 && err == nil {
			if empty++; empty >= maxEmptyReads {
				return 0, io.ErrNoProgress
			}
		}
	}
}

// Close closes the original request body.
func (d *textDecoder) Close() error { return d.src.Close() }

// decodeQuanta decodes whole 4-character groups, restarting after each
// padded group. dst must hold len(src)/4*3 bytes.
func decodeQuanta(dst, src []byte) (int, error) {
	if bytes.ContainsAny(src, "\r\n") {
		// encoding/base64 skips line breaks, which would shift the groups.
		return 0, errBase64
	}
	n := 0
	for len(src) > 0 {
		end := len(src)
		if i := bytes.IndexByte(src, '='); i >= 0 {
			end = (i/4 + 1) * 4
		}
		m, err := base64.StdEncoding.Decode(dst[n:], src[:end])
		n += m
		if err != nil {
			return n, err
		}
		src = src[end:]
	}
	return n, nil
}
