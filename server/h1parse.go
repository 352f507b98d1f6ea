package server

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/meshgate/meshgate/internal/h1head"
	"github.com/meshgate/meshgate/internal/hdrvals"
)

// requestError is a malformed request: the connection answers with Status
// and closes, and Reason goes to the log.
type requestError struct {
	Status int
	Reason string
}

func (e *requestError) Error() string { return e.Reason }

func badRequest(reason string) *requestError {
	return &requestError{Status: http.StatusBadRequest, Reason: reason}
}

// errIdleClose is a connection that ended cleanly between requests.
var errIdleClose = errors.New("connection closed between requests")

// headBuf collects one request's header block so that all its strings can
// share a single allocation.
type headBuf struct {
	raw    []byte // the block as read, request line first, CRLF stripped, NUL separated
	fields int
	// last is the previous request's block as a string. A connection
	// often sends the same head again (a polling client, a health check,
	// a load generator, a proxy in front replaying one call); comparing
	// costs less than the copy, and an unchanged head then allocates
	// nothing, so steady repeated traffic leaves the garbage collector
	// idle. Strings are immutable, so handing the same one to the next
	// request is safe whatever kept the last one.
	last string
	// wire is the last block's bytes as received (blank line included),
	// when they were all buffered at once and are at most maxMemoHead
	// bytes, and wireMax the limit it was read with. The same bytes again
	// make the same block: readHead then leaves raw and fields as they
	// are, skipping the line by line copy and its checks, and
	// parseRequest gives the request what it made of that block last
	// time (parsed): one comparison where the two cost well over a
	// thousand instructions (1,345 for the parse alone, callgrind).
	wire    []byte
	wireMax int
	// same says the last readHead found wire again: raw and fields are
	// the previous request's, and so, when ok, is parsed.
	same   bool
	parsed parsedRequest
}

// parsedRequest is what parseRequest made of the block in headBuf.raw,
// kept to be given again to a request whose block is the same. Its
// strings point into that block's string, which nothing changes.
type parsedRequest struct {
	ok                 bool
	major, minor       int
	method, proto, uri string
	host               string
	url                url.URL
	fields             []reqField // in the order they were added
	ph                 parsedHead
	contentLength      int64
}

// reqField is one header field as parseRequest added it.
type reqField struct{ key, value string }

// apply fills r, u and ph as the parse that made p did, the header's value
// slices taken from vals (fields of them, as that parse took).
func (p *parsedRequest) apply(r *http.Request, u *url.URL, ph *parsedHead, vals *hdrvals.Arena, fields int) {
	r.ProtoMajor, r.ProtoMinor = p.major, p.minor
	r.Method, r.Proto, r.RequestURI, r.Host = p.method, p.proto, p.uri, p.host
	*u = p.url
	addFields(r.Header, vals.Take(fields), p.fields)
	*ph = p.ph
	r.ContentLength, r.Close = p.contentLength, p.ph.closeAfter
	if p.ph.chunked {
		r.TransferEncoding = chunkedTE
	}
}

// addFields adds fields to h in order, a key's first value in a slice of
// its own from vs, the next ones appended to it.
func addFields(h http.Header, vs []string, fields []reqField) {
	vi := 0
	for _, f := range fields {
		if cur := h[f.key]; cur != nil {
			h[f.key] = append(cur, f.value)
			continue
		}
		vs[vi] = f.value
		h[f.key] = vs[vi : vi+1 : vi+1]
		vi++
	}
}

// maxMemoHead bounds the request head a connection remembers (headBuf.wire).
const maxMemoHead = 1 << 10

// readHead reads a request line and header block into hb. It returns
// errIdleClose when the peer closed before sending anything.
func readHead(br *bufio.Reader, hb *headBuf, maxBytes int) error {
	if len(hb.wire) > 0 && hb.wireMax == maxBytes {
		if buf, _ := br.Peek(br.Buffered()); bytes.HasPrefix(buf, hb.wire) {
			br.Discard(len(hb.wire))
			hb.same = true
			return nil
		}
	}
	hb.wire, hb.same, hb.parsed.ok = hb.wire[:0], false, false // raw is about to change
	hb.raw = hb.raw[:0]
	hb.fields = 0
	first := true
	blank := 0
	var lr h1head.LineReader
	lr.Reset(br)
	for {
		line, err := readLineInto(&lr, hb, maxBytes, first)
		if err != nil {
			return err
		}
		if first {
			if len(line) == 0 {
				// RFC 9112 2.2: ignore a few empty lines before a
				// request line.
				hb.raw = hb.raw[:0]
				if blank++; blank > 8 {
					return badRequest("too many empty lines before the request line")
				}
				continue
			}
			first = false
			continue
		}
		if len(line) == 0 {
			lr.Done()
			if wire := lr.Head(); len(wire) <= maxMemoHead {
				hb.wire, hb.wireMax = append(hb.wire, wire...), maxBytes
			}
			return nil
		}
		if hb.fields++; hb.fields > MaxHeaderFields {
			return &requestError{Status: http.StatusRequestHeaderFieldsTooLarge, Reason: "more than " + strconv.Itoa(MaxHeaderFields) + " header fields"}
		}
	}
}

// readLineInto appends one line (without its line ending) and a NUL
// separator to hb.raw and returns the line.
func readLineInto(lr *h1head.LineReader, hb *headBuf, maxBytes int, first bool) ([]byte, error) {
	start := len(hb.raw)
	for {
		chunk, err := lr.ReadLine()
		if len(hb.raw)+len(chunk) > maxBytes {
			if first {
				return nil, &requestError{Status: http.StatusRequestURITooLong, Reason: "request line too long"}
			}
			return nil, &requestError{Status: http.StatusRequestHeaderFieldsTooLarge, Reason: "request header block larger than " + strconv.Itoa(maxBytes) + " bytes"}
		}
		hb.raw = append(hb.raw, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if first && len(hb.raw) == 0 {
				return nil, errIdleClose
			}
			return nil, err
		}
		break
	}
	line := hb.raw[start : len(hb.raw)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	hb.raw = append(hb.raw[:start+len(line)], 0)
	if bytes.IndexByte(line, 0) >= 0 || bytes.IndexByte(line, '\r') >= 0 {
		return nil, badRequest("NUL or bare CR in request head")
	}
	return hb.raw[start : start+len(line)], nil
}

// parsedHead is what the request head says about framing and connection
// handling, beyond what goes into the http.Request.
type parsedHead struct {
	chunked       bool
	contentLength int64
	closeAfter    bool // client asked to close, or HTTP/1.0 without keep-alive
	keepAlive10   bool // HTTP/1.0 client asked for keep-alive
	expect100     bool
}

// parseRequest fills r (whose Header map is empty) from the head in hb. All
// strings point into one string made from hb.raw; the header's value
// slices come from vals.
func parseRequest(hb *headBuf, r *http.Request, u *url.URL, ph *parsedHead, vals *hdrvals.Arena) error {
	p := &hb.parsed
	if hb.same && p.ok {
		p.apply(r, u, ph, vals, hb.fields)
		return nil
	}
	p.ok, p.fields = false, p.fields[:0]
	block := hb.last
	if block != string(hb.raw) {
		block = string(hb.raw) // the one allocation for all of the head's strings
		hb.last = block
	}
	lineEnd := strings.IndexByte(block, 0)
	reqLine := block[:lineEnd]
	rest := block[lineEnd+1:]

	method, rest1, ok1 := strings.Cut(reqLine, " ")
	target, proto, ok2 := strings.Cut(rest1, " ")
	if !ok1 || !ok2 || method == "" || target == "" || strings.IndexByte(proto, ' ') >= 0 || strings.IndexByte(target, ' ') >= 0 {
		return badRequest("malformed request line")
	}
	if !validMethod(method) {
		return badRequest("invalid method")
	}
	switch proto {
	case "HTTP/1.1":
		r.ProtoMajor, r.ProtoMinor = 1, 1
	case "HTTP/1.0":
		r.ProtoMajor, r.ProtoMinor = 1, 0
	default:
		if len(proto) == 8 && strings.HasPrefix(proto, "HTTP/1.") && proto[7] >= '2' && proto[7] <= '9' {
			// RFC 9110 2.5: a higher minor version is handled as the
			// highest one we speak.
			r.ProtoMajor, r.ProtoMinor = 1, 1
			break
		}
		if strings.HasPrefix(proto, "HTTP/") {
			return &requestError{Status: http.StatusHTTPVersionNotSupported, Reason: "unsupported protocol version " + proto}
		}
		return badRequest("malformed protocol version")
	}
	r.Method, r.Proto, r.RequestURI = method, proto, target

	if err := parseTarget(method, target, u); err != nil {
		return err
	}

	// Header fields: one backing array for all values.
	vs := vals.Take(hb.fields)
	h := r.Header
	hosts := 0
	ph.contentLength = -1
	var te string
	for rest != "" {
		end := strings.IndexByte(rest, 0)
		line := rest[:end]
		rest = rest[end+1:]
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return badRequest("obsolete line folding in header")
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return badRequest("malformed header line")
		}
		rawKey := line[:colon]
		key, ok := h1head.Intern(rawKey)
		if !ok {
			if !httpguts.ValidHeaderFieldName(rawKey) {
				return badRequest("invalid header name")
			}
			key = textproto.CanonicalMIMEHeaderKey(rawKey)
		}
		value := textproto.TrimString(line[colon+1:])
		if !h1head.ValidValue(value) {
			return badRequest("invalid header value for " + key)
		}
		switch key {
		case "Host":
			hosts++
			if hosts > 1 {
				return badRequest("more than one Host header")
			}
			if !httpguts.ValidHostHeader(value) {
				return badRequest("invalid Host header")
			}
			r.Host = value
			continue // net/http keeps Host out of Header
		case "Content-Length":
			n, err := parseContentLength(value)
			if err != nil || (ph.contentLength >= 0 && ph.contentLength != n) {
				return badRequest("invalid Content-Length")
			}
			ph.contentLength = n
		case "Transfer-Encoding":
			if te != "" {
				return badRequest("more than one Transfer-Encoding header")
			}
			te = value
		case "Connection":
			if hasToken(value, "close") {
				ph.closeAfter = true
			}
			if hasToken(value, "keep-alive") {
				ph.keepAlive10 = true
			}
		case "Expect":
			if strings.EqualFold(value, "100-continue") {
				ph.expect100 = true
			} else {
				return &requestError{Status: http.StatusExpectationFailed, Reason: "unsupported Expect"}
			}
		}
		p.fields = append(p.fields, reqField{key, value})
	}
	addFields(h, vs, p.fields)

	if r.ProtoMinor == 1 && hosts == 0 {
		return badRequest("missing Host header")
	}
	if u.Host != "" {
		r.Host = u.Host // absolute-form target wins (RFC 9112 3.2.2)
	}
	if r.ProtoMinor == 0 && !ph.keepAlive10 {
		ph.closeAfter = true
	}
	if te != "" {
		if r.ProtoMinor == 0 {
			return badRequest("Transfer-Encoding in an HTTP/1.0 request")
		}
		if !strings.EqualFold(te, "chunked") {
			return &requestError{Status: http.StatusNotImplemented, Reason: "unsupported Transfer-Encoding " + te}
		}
		if ph.contentLength >= 0 {
			// RFC 9112 6.1: the message is suspect (request smuggling);
			// refuse it and close the connection.
			return badRequest("request has both Content-Length and Transfer-Encoding")
		}
		ph.chunked = true
		r.TransferEncoding = chunkedTE
		r.ContentLength = -1
	} else if ph.contentLength >= 0 {
		r.ContentLength = ph.contentLength
	} else {
		r.ContentLength = 0
	}
	r.Close = ph.closeAfter
	p.ok = true
	p.major, p.minor = r.ProtoMajor, r.ProtoMinor
	p.method, p.proto, p.uri, p.host = r.Method, r.Proto, r.RequestURI, r.Host
	p.url, p.ph, p.contentLength = *u, *ph, r.ContentLength
	return nil
}

var chunkedTE = []string{"chunked"}

// parseTarget fills u from a request target without allocating for the
// common origin-form without escapes.
func parseTarget(method, target string, u *url.URL) error {
	*u = url.URL{}
	for i := 0; i < len(target); i++ {
		// Control bytes and DEL are never part of a request target
		// (RFC 3986); forwarding them raw lets a backend split the line.
		if c := target[i]; c < 0x21 || c == 0x7f {
			return badRequest("control byte in request target")
		}
	}
	if target[0] == '/' && strings.IndexByte(target, '%') < 0 && strings.IndexByte(target, '#') < 0 {
		path, query, _ := strings.Cut(target, "?")
		u.Path, u.RawQuery = path, query
		return nil
	}
	if target == "*" && method == http.MethodOptions {
		u.Path = "*"
		return nil
	}
	if method == http.MethodConnect {
		// authority-form: Upgrade-style tunnels are not supported yet.
		return &requestError{Status: http.StatusMethodNotAllowed, Reason: "CONNECT is not supported"}
	}
	pu, err := url.ParseRequestURI(target)
	if err != nil {
		return badRequest("invalid request target")
	}
	if pu.Host != "" && !httpguts.ValidHostHeader(pu.Host) {
		return badRequest("invalid host in request target")
	}
	*u = *pu
	return nil
}

func parseContentLength(v string) (int64, error) {
	if v == "" || len(v) > 18 {
		return 0, errors.New("bad length")
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, errors.New("bad length")
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}

func hasToken(v, tok string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(textproto.TrimString(t), tok) {
			return true
		}
	}
	return false
}
