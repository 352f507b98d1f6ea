package server

import (
	"bytes"
	"net"
	"strconv"
	"sync"
)

// MaxHeaderFields is the most request header fields accepted; more gets 431.
const MaxHeaderFields = 100

// Verdict is what the framing scan decided about one HTTP/1 request.
type Verdict struct {
	// Status, when non-zero, is the error the request must get; the
	// connection is then closed.
	Status int
	// Reason explains Status for the log.
	Reason string
	// CloseAfter asks for the connection to be closed after this request
	// (the scan stopped following the byte stream, e.g. after an Upgrade).
	CloseAfter bool
}

// framingConn watches the bytes net/http reads from an HTTP/1 connection,
// request by request, to catch what net/http accepts silently: a request
// carrying both Content-Length and Transfer-Encoding (RFC 9112 6.1 says the
// connection must then be closed; net/http drops Content-Length and keeps
// the connection, which is the request-smuggling hole), and more header fields
// than MaxHeaderFields. It follows message framing (Content-Length and
// chunked bodies) so that body bytes are never mistaken for headers.
type framingConn struct {
	net.Conn

	mu       sync.Mutex
	verdicts []Verdict

	// maxHeaderBytes caps a request's header block (request line
	// included); beyond it the request gets 431.
	maxHeaderBytes int
	headerBytes    int

	st        scanState
	line      []byte
	firstLine bool
	fields    int
	hasCL     bool
	clValue   int64
	hasTE     bool
	chunked   bool
	upgrade   bool
	remaining int64
}

type scanState uint8

const (
	scanHead scanState = iota
	scanBody
	scanChunkSize
	scanChunkData
	scanChunkDataEnd
	scanTrailer
	scanOff // stopped following the stream (HTTP/2 preface, upgrade, error)
)

// maxScanLine bounds one buffered line; net/http rejects far shorter
// header blocks, so the scan stops following the stream past it.
const maxScanLine = 128 << 10

func newFramingConn(c net.Conn, maxHeaderBytes int) *framingConn {
	return &framingConn{Conn: c, firstLine: true, maxHeaderBytes: maxHeaderBytes}
}

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.scan(p[:n])
		c.mu.Unlock()
	}
	return n, err
}

// next returns the verdict for the next request net/http hands to the
// handler. Requests are served one at a time per HTTP/1 connection, in
// order, and their header bytes were read (and scanned) before the handler
// runs, so the queue's head belongs to the current request.
func (c *framingConn) next() Verdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.verdicts) == 0 {
		return Verdict{CloseAfter: c.st == scanOff}
	}
	v := c.verdicts[0]
	c.verdicts = c.verdicts[1:]
	return v
}

func (c *framingConn) scan(b []byte) {
	for len(b) > 0 {
		switch c.st {
		case scanOff:
			return
		case scanBody:
			b = c.skip(b, scanHead)
		case scanChunkData:
			b = c.skip(b, scanChunkDataEnd)
		default:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.appendLine(b)
				return
			}
			c.appendLine(b[:i])
			b = b[i+1:]
			if c.st == scanOff {
				return
			}
			line := bytes.TrimSuffix(c.line, []byte("\r"))
			c.onLine(line)
			c.line = c.line[:0]
		}
	}
}

// skip consumes up to c.remaining body bytes of b and moves to then when
// the body part is done.
func (c *framingConn) skip(b []byte, then scanState) []byte {
	n := min(int64(len(b)), c.remaining)
	c.remaining -= n
	if c.remaining == 0 {
		c.st = then
	}
	return b[n:]
}

func (c *framingConn) appendLine(b []byte) {
	if len(c.line)+len(b) > maxScanLine {
		c.st = scanOff
		return
	}
	c.line = append(c.line, b...)
}

func (c *framingConn) onLine(line []byte) {
	switch c.st {
	case scanHead:
		c.onHeadLine(line)
	case scanChunkSize:
		size := line
		if i := bytes.IndexByte(size, ';'); i >= 0 {
			size = size[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			c.st = scanOff // net/http rejects the body and closes
			return
		}
		if n == 0 {
			c.st = scanTrailer
			return
		}
		c.remaining = n
		c.st = scanChunkData
	case scanChunkDataEnd:
		if len(line) != 0 {
			c.st = scanOff
			return
		}
		c.st = scanChunkSize
	case scanTrailer:
		if len(line) == 0 {
			c.st = scanHead
		}
	}
}

func (c *framingConn) onHeadLine(line []byte) {
	if c.firstLine {
		if len(line) == 0 {
			return // tolerated empty lines before a request line
		}
		c.headerBytes = 0
		if bytes.HasPrefix(line, []byte("PRI * HTTP/2.0")) {
			c.st = scanOff // h2c prior knowledge: not HTTP/1 any more
			return
		}
		c.firstLine = false
		c.upgrade = bytes.HasPrefix(line, []byte("CONNECT "))
		return
	}
	c.headerBytes += len(line) + 2
	if len(line) > 0 {
		c.fields++
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return // net/http rejects malformed lines itself
		}
		name := line[:colon]
		value := bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			c.hasCL = true
			if n, err := strconv.ParseInt(string(value), 10, 64); err == nil && n >= 0 {
				c.clValue = n
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			c.hasTE = true
			v := bytes.TrimSpace(value)
			c.chunked = len(v) >= 7 && bytes.EqualFold(v[len(v)-7:], []byte("chunked"))
		case bytes.EqualFold(name, []byte("Upgrade")):
			c.upgrade = true
		}
		return
	}
	// End of the header block: judge the request, then follow its body.
	var v Verdict
	switch {
	case c.hasCL && c.hasTE:
		v = Verdict{Status: 400, Reason: "request has both Content-Length and Transfer-Encoding"}
	case c.fields > MaxHeaderFields:
		v = Verdict{Status: 431, Reason: "more than " + strconv.Itoa(MaxHeaderFields) + " header fields"}
	case c.maxHeaderBytes > 0 && c.headerBytes > c.maxHeaderBytes:
		v = Verdict{Status: 431, Reason: "request header block larger than " + strconv.Itoa(c.maxHeaderBytes) + " bytes"}
	}
	next := scanHead
	switch {
	case v.Status != 0 || c.upgrade || (c.hasTE && !c.chunked):
		// The connection ends with this request (rejected, upgraded, or
		// net/http answers 501): nothing more to follow.
		next = scanOff
		v.CloseAfter = true
	case c.chunked:
		next = scanChunkSize
	case c.hasCL && c.clValue > 0:
		next = scanBody
		c.remaining = c.clValue
	}
	c.verdicts = append(c.verdicts, v)
	c.firstLine, c.fields, c.hasCL, c.clValue, c.hasTE, c.chunked, c.upgrade = true, 0, false, 0, false, false, false
	c.st = next
}
