package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/meshgate/meshgate/internal/bufpool"
	"github.com/meshgate/meshgate/internal/h1head"
	"github.com/meshgate/meshgate/internal/hdrvals"
)

// respHead is what readResponseHead learns about the framing of a response.
type respHead struct {
	status        int
	proto11       bool
	close         bool
	chunked       bool
	contentLength int64
	// contentLengthRaw is the header's value as sent, reused downstream.
	contentLengthRaw string
	// upgrade is the Upgrade field of a 101 response.
	upgrade string
	// hasDate says whether the kept fields include Date.
	hasDate   bool
	bytesRead int
	// ambiguous is set when the framing had both Content-Length and
	// Transfer-Encoding: chunked framing is used (RFC 9112 §6.3), but the
	// connection is not reused, since the upstream may have meant the
	// other framing and left bytes that would answer the next request.
	ambiguous bool
}

func (r *respHead) reset() { *r = respHead{contentLength: -1} }

// isResponseHop reports whether an upstream response's field (canonical
// name) is never copied: it describes the upstream connection, not the
// message.
func isResponseHop(key string) bool {
	switch key {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te",
		"Trailer", "Content-Length", "Proxy-Authenticate":
		return true
	}
	return false
}

// commonValues holds ready-made value slices for frequent Content-Type
// values. They are shared, so their capacity is 1: an append copies.
var commonValues = func() map[string][]string {
	m := map[string][]string{}
	for _, v := range []string{"text/plain", "text/plain; charset=utf-8", "text/html", "text/html; charset=utf-8",
		"application/json", "application/json; charset=utf-8", "application/grpc", "application/octet-stream",
		"text/css", "application/javascript", "text/javascript", "image/png", "image/jpeg", "image/svg+xml"} {
		m[v] = []string{v}[:1:1]
	}
	return m
}()

var errHeaderTooLarge = errors.New("upstream response header too large")

// parseLength parses a Content-Length value: 1*DIGIT (RFC 9110 8.6), so
// no sign, space or other base, and at most 18 digits (no overflow).
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// canonicalKey is the canonical form of the header name b, interned when
// it is a common one in any spelling ("ETag", "content-type"), and
// whether b is a valid field name.
func canonicalKey(b []byte) (string, bool) {
	if k, ok := h1head.Intern(b); ok {
		return k, true
	}
	if !validFieldName(b) {
		return "", false
	}
	if len(b) <= 64 {
		var buf [64]byte
		c := buf[:copy(buf[:], b)]
		upper := true
		for i, ch := range c {
			switch {
			case upper && 'a' <= ch && ch <= 'z':
				c[i] = ch - ('a' - 'A')
			case !upper && 'A' <= ch && ch <= 'Z':
				c[i] = ch + ('a' - 'A')
			}
			upper = ch == '-'
		}
		if k, ok := h1head.Intern(c); ok {
			return k, true
		}
	}
	return textproto.CanonicalMIMEHeaderKey(string(b)), true
}

// respScratch is reusable memory for readResponseHead: the header values
// of one response head, copied out of the read buffer, and where each is.
// An upstream connection keeps one, so parsing a head allocates one string
// for all its values rather than one per field.
type respScratch struct {
	raw    []byte
	fields []respField
	// out is the kept fields as header lines, when they are wanted so
	// (readResponseHead's raw); drop the names Connection listed.
	out  []byte
	drop []string
	memo respMemo
}

// appendLine appends the kept field key: val to sc.out as a header line.
func (sc *respScratch) appendLine(key string, val []byte) {
	sc.out = bufpool.AppendField(sc.out, key, val)
}

// dropLines removes from sc.out the lines of the fields sc.drop names, and
// reports whether a Date line is left. (Values hold no CR or LF.)
func (sc *respScratch) dropLines() (hasDate bool) {
	out, rest := sc.out[:0], sc.out
	for len(rest) > 0 {
		end := bytes.IndexByte(rest, '\n') + 1
		line := rest[:end]
		rest = rest[end:]
		key := line[:bytes.IndexByte(line, ':')]
		dropped := false
		for _, d := range sc.drop {
			if d == string(key) {
				dropped = true
				break
			}
		}
		if !dropped {
			hasDate = hasDate || string(key) == "Date"
			out = append(out, line...) // moves it down the same array
		}
	}
	sc.out = out
	return hasDate
}

// respField is one header field kept for the response: its name and its
// value's bounds in respScratch.raw.
type respField struct {
	key        string
	start, end int
}

// readResponseHead parses a status line and header block from br into the
// header of w, dropping hop-by-hop fields and recording framing in resp.
// The kept values become one string; their slices come from w's
// connection when it has storage for them (hdrvals). With raw, the kept
// fields become header lines in sc.out instead, and w's header is left
// alone (Outbound.RawHead).
//
// A raw head the same, byte for byte, as the last one parsed with sc is
// not parsed again: resp and sc.out are what that parse left (see
// respMemo).
func readResponseHead(br *bufio.Reader, w http.ResponseWriter, resp *respHead, max int, sc *respScratch, raw bool) error {
	// Fill the buffer first, so that the head is in it when the lines
	// are cut (and can be remembered).
	if _, err := br.Peek(1); err != nil {
		return err // as the parse would, having read nothing
	}
	m := &sc.memo
	if raw && len(m.head) > 0 && m.max == max {
		if buf, _ := br.Peek(br.Buffered()); bytes.HasPrefix(buf, m.head) {
			*resp = m.resp
			br.Discard(len(m.head))
			return nil
		}
	}
	m.head = m.head[:0] // sc.out is about to change
	var lr h1head.LineReader
	lr.Reset(br)
	if err := parseResponseHead(&lr, w, resp, max, sc, raw); err != nil {
		return err
	}
	if raw && resp.bytesRead <= maxMemoHead {
		if head := lr.Head(); head != nil {
			m.head = append(m.head, head...)
			m.resp, m.max = *resp, max
		}
	}
	return nil
}

// maxMemoHead bounds the response head an upstream connection remembers:
// the usual head is 150-400 bytes, and a pooled connection should not
// keep a large one.
const maxMemoHead = 1 << 10

// respMemo is the last raw response head parsed on an upstream connection
// and what parsing it gave. A backend answering the same way again (a
// health check, a polled resource, a fixed reply: in the benchmark every
// answer within a second, until Date changes) sends the same bytes, and
// recognizing them with one comparison costs a few dozen instructions
// where the parse costs a few thousand; a head that differs costs the
// comparison up to its first differing byte. It is exact: the parse
// depends only on the bytes and max.
type respMemo struct {
	head []byte // the head's bytes as received, blank line included
	resp respHead
	max  int
}

// parseResponseHead is readResponseHead's parse, from lr reset on the
// connection's reader.
func parseResponseHead(lr *h1head.LineReader, w http.ResponseWriter, resp *respHead, max int, sc *respScratch, raw bool) error {
	line, err := readLine(lr, resp, max)
	if err != nil {
		return err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return fmt.Errorf("malformed status line %q", truncate(line))
	}
	resp.proto11 = line[7] == '1'
	code := line[9:12]
	st := 0
	for _, c := range code {
		if c < '0' || c > '9' {
			return fmt.Errorf("malformed status code %q", truncate(line))
		}
		st = st*10 + int(c-'0')
	}
	if st < 100 || (len(line) > 12 && line[12] != ' ') {
		return fmt.Errorf("malformed status line %q", truncate(line))
	}
	resp.status = st
	h := w.Header()
	sc.raw, sc.fields, sc.out = sc.raw[:0], sc.fields[:0], sc.out[:0]
	var connTokens []byte
	clStart, clEnd := -1, -1
	fields := 0
	for {
		line, err := readLine(lr, resp, max)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			lr.Done()
			break
		}
		if fields++; fields > 200 {
			return errHeaderTooLarge
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			return fmt.Errorf("malformed header line %q", truncate(line))
		}
		rawKey := line[:colon]
		key, ok := canonicalKey(rawKey)
		if !ok {
			return fmt.Errorf("malformed header name %q", truncate(rawKey))
		}
		val := trimOWS(line[colon+1:])
		if !h1head.ValidValue(val) {
			return fmt.Errorf("invalid header value for %q", rawKey)
		}
		if !raw && key == "Content-Type" && len(h[key]) == 0 {
			// The most common response header: reuse its interned value
			// when it is one of the usual ones.
			if v, ok := commonValues[string(val)]; ok {
				h[key] = v
				continue
			}
		}
		switch key {
		case "Content-Length":
			n, ok := parseLength(val)
			if !ok || (resp.contentLength >= 0 && resp.contentLength != n) {
				return fmt.Errorf("invalid Content-Length %q", val)
			}
			resp.contentLength = n
			if !raw {
				clStart = len(sc.raw)
				sc.raw = append(sc.raw, val...)
				clEnd = len(sc.raw)
			}
			continue
		case "Transfer-Encoding":
			if !bytes.EqualFold(val, []byte("chunked")) {
				return fmt.Errorf("unsupported Transfer-Encoding %q", val)
			}
			resp.chunked = true
		case "Upgrade":
			resp.upgrade = string(val)
		case "Connection":
			if string(val) == "keep-alive" {
				break // the usual value: no field named, nothing to close
			}
			connTokens = append(connTokens, ',')
			connTokens = append(connTokens, val...)
			if containsToken(val, "close") {
				resp.close = true
			}
		}
		if isResponseHop(key) {
			continue
		}
		if raw {
			// Straight to the header lines the client's writer takes.
			sc.appendLine(key, val)
			resp.hasDate = resp.hasDate || key == "Date"
			continue
		}
		start := len(sc.raw)
		sc.raw = append(sc.raw, val...)
		sc.fields = append(sc.fields, respField{key: key, start: start, end: len(sc.raw)})
	}
	if resp.chunked {
		resp.ambiguous = resp.contentLength >= 0
		resp.contentLength = -1
	}
	// Fields named in Connection are hop-by-hop too (RFC 9110 7.6.1).
	drop := sc.drop[:0]
	for len(connTokens) > 0 {
		var tok []byte
		i := bytes.IndexByte(connTokens, ',')
		if i < 0 {
			tok, connTokens = connTokens, nil
		} else {
			tok, connTokens = connTokens[:i], connTokens[i+1:]
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) == 0 || bytes.EqualFold(tok, []byte("keep-alive")) || bytes.EqualFold(tok, []byte("close")) {
			continue // the usual tokens name no field we kept
		}
		drop = append(drop, textproto.CanonicalMIMEHeaderKey(string(tok)))
	}
	sc.drop = drop
	if raw {
		if len(drop) > 0 {
			resp.hasDate = sc.dropLines()
		}
		return nil
	}
	if len(sc.fields) > 0 || clStart >= 0 {
		block := string(sc.raw) // the one allocation for all kept values
		if clStart >= 0 {
			resp.contentLengthRaw = block[clStart:clEnd]
		}
		vals := hdrvals.Take(w, len(sc.fields))
		for i, f := range sc.fields {
			v := block[f.start:f.end]
			if cur := h[f.key]; cur != nil {
				h[f.key] = append(cur, v)
				continue
			}
			vals[i] = v
			h[f.key] = vals[i : i+1 : i+1]
		}
	}
	for _, k := range drop {
		delete(h, k)
	}
	return nil
}

// trimOWS trims the optional whitespace around a field value (RFC 9110
// 5.6.3: spaces and horizontal tabs); any other control byte stays, for
// the value check to refuse.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func readLine(lr *h1head.LineReader, resp *respHead, max int) ([]byte, error) {
	line, err := lr.ReadLine()
	resp.bytesRead += len(line)
	if err == bufio.ErrBufferFull || resp.bytesRead > max {
		return nil, errHeaderTooLarge
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func containsToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		i := bytes.IndexByte(v, ',')
		if i < 0 {
			t, v = v, nil
		} else {
			t, v = v[:i], v[i+1:]
		}
		if bytes.EqualFold(bytes.TrimSpace(t), []byte(tok)) {
			return true
		}
	}
	return false
}

// tokenChars marks the bytes allowed in a header name (RFC 9110 token).
var tokenChars = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(c))
	}
	return t
}()

func validFieldName(b []byte) bool {
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return len(b) > 0
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
