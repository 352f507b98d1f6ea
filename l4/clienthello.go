package l4

import (
	"errors"
	"fmt"
	"io"
)

// TLS wire constants (RFC 8446 §5.1, §4; RFC 6066 §3).
const (
	recordHeaderLen          = 5
	maxRecordPayload         = 1 << 14
	recordTypeHandshake      = 22
	handshakeTypeClientHello = 1
	extensionServerName      = 0
	serverNameTypeHostName   = 0
	// maxClientHelloBytes bounds what is read before routing: one full
	// record. A ClientHello split over several records must fit too,
	// headers included.
	maxClientHelloBytes = maxRecordPayload + recordHeaderLen
)

var (
	// errIncomplete means the bytes so far are a valid prefix of a
	// ClientHello: read more.
	errIncomplete = errors.New("incomplete client hello")
	// errHelloTooLarge means the ClientHello does not fit the bound.
	errHelloTooLarge = fmt.Errorf("client hello larger than %d bytes", maxClientHelloBytes)
)

// parseClientHello returns the server name (SNI) of the ClientHello at the
// start of data, lowercased, or "" when it carries none. It returns
// errIncomplete when data is a valid but unfinished prefix, and another
// error for anything that is not a ClientHello. It never reads past data.
func parseClientHello(data []byte) (string, error) {
	var a helloAssembler
	return a.feed(data)
}

// helloAssembler reassembles a ClientHello from TLS records that arrive in
// pieces. feed is called with the whole buffer read so far (each call's data
// extends the previous one); it only looks at records it has not consumed,
// so reading byte by byte costs O(n) overall, not O(n²).
type helloAssembler struct {
	off int    // bytes of data consumed as complete records
	msg []byte // handshake bytes reassembled so far
}

// feed continues with data, which must start with everything passed before.
func (a *helloAssembler) feed(data []byte) (string, error) {
	for {
		if len(a.msg) >= 4 {
			n := int(a.msg[1])<<16 | int(a.msg[2])<<8 | int(a.msg[3])
			if len(a.msg) >= 4+n {
				return parseClientHelloBody(a.msg[4 : 4+n])
			}
		}
		rest := data[a.off:]
		if len(rest) < recordHeaderLen {
			return "", a.incomplete(len(data))
		}
		if rest[0] != recordTypeHandshake {
			return "", fmt.Errorf("not a TLS handshake record (type %d)", rest[0])
		}
		if rest[1] != 3 {
			return "", fmt.Errorf("unknown TLS record version %d.%d", rest[1], rest[2])
		}
		n := int(rest[3])<<8 | int(rest[4])
		if n == 0 || n > maxRecordPayload {
			return "", fmt.Errorf("bad TLS record length %d", n)
		}
		if len(rest) < recordHeaderLen+n {
			return "", a.incomplete(len(data))
		}
		a.msg = append(a.msg, rest[recordHeaderLen:recordHeaderLen+n]...)
		a.off += recordHeaderLen + n
		if a.msg[0] != handshakeTypeClientHello {
			return "", fmt.Errorf("handshake message type %d is not ClientHello", a.msg[0])
		}
		if len(a.msg) >= 4 {
			m := int(a.msg[1])<<16 | int(a.msg[2])<<8 | int(a.msg[3])
			if recordHeaderLen+4+m > maxClientHelloBytes {
				return "", errHelloTooLarge
			}
		}
	}
}

// incomplete says whether waiting for more bytes can still help.
func (a *helloAssembler) incomplete(have int) error {
	if have >= maxClientHelloBytes {
		return errHelloTooLarge
	}
	return errIncomplete
}

// parseClientHelloBody reads the ClientHello fields up to the extensions
// and returns the host_name of the server_name extension.
func parseClientHelloBody(b []byte) (string, error) {
	c := cursor(b)
	if !c.skip(2 + 32) { // legacy_version, random
		return "", errors.New("client hello: truncated")
	}
	sid, ok := c.prefixed8()
	if !ok || len(sid) > 32 {
		return "", errors.New("client hello: bad session id")
	}
	suites, ok := c.prefixed16()
	if !ok || len(suites) < 2 || len(suites)%2 != 0 {
		return "", errors.New("client hello: bad cipher suites")
	}
	comp, ok := c.prefixed8()
	if !ok || len(comp) < 1 {
		return "", errors.New("client hello: bad compression methods")
	}
	if len(c) == 0 {
		return "", nil // no extensions (old clients): no SNI
	}
	exts, ok := c.prefixed16()
	if !ok || len(c) != 0 {
		return "", errors.New("client hello: bad extensions length")
	}
	name, seen := "", false
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.prefixed16()
		if !ok1 || !ok2 {
			return "", errors.New("client hello: truncated extension")
		}
		if typ != extensionServerName {
			continue
		}
		if seen {
			return "", errors.New("client hello: duplicate server_name extension")
		}
		seen = true
		var err error
		if name, err = parseServerName(data); err != nil {
			return "", fmt.Errorf("client hello: %w", err)
		}
	}
	return name, nil
}

// parseServerName reads a server_name extension (RFC 6066 §3) and returns
// its first host_name, validated and lowercased.
func parseServerName(data cursor) (string, error) {
	list, ok := data.prefixed16()
	if !ok || len(data) != 0 || len(list) == 0 {
		return "", errors.New("bad server_name extension")
	}
	host := ""
	for len(list) > 0 {
		typ, ok1 := list.u8()
		name, ok2 := list.prefixed16()
		if !ok1 || !ok2 {
			return "", errors.New("truncated server_name list")
		}
		if typ != serverNameTypeHostName || host != "" {
			continue
		}
		h, err := validHostName(name)
		if err != nil {
			return "", err
		}
		host = h
	}
	return host, nil
}

// validHostName accepts a DNS name (or an IP literal some clients send):
// printable ASCII without spaces or "*", no empty label, no trailing dot
// (RFC 6066), at most 253 characters. It returns it lowercased.
func validHostName(b []byte) (string, error) {
	if len(b) == 0 || len(b) > 253 {
		return "", fmt.Errorf("server name length %d", len(b))
	}
	out := make([]byte, len(b))
	for i, c := range b {
		switch {
		case c <= ' ' || c >= 0x7f || c == '*':
			return "", fmt.Errorf("server name has byte %#x", c)
		case c == '.' && (i == 0 || i == len(b)-1 || b[i-1] == '.'):
			return "", errors.New("server name has an empty label")
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return string(out), nil
}

// readClientHello reads from r until it holds a whole ClientHello, and
// returns every byte read (to be replayed to the backend) and the SNI. It
// reads at most maxClientHelloBytes; the caller bounds the time with a
// deadline.
func readClientHello(r io.Reader) ([]byte, string, error) {
	buf := make([]byte, 0, 4096)
	var a helloAssembler
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= maxClientHelloBytes {
				return buf, "", errHelloTooLarge
			}
			grown := make([]byte, len(buf), min(2*cap(buf), maxClientHelloBytes))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			sni, perr := a.feed(buf)
			if perr == nil {
				return buf, sni, nil
			}
			if !errors.Is(perr, errIncomplete) {
				return buf, "", perr
			}
		}
		if err != nil {
			return buf, "", fmt.Errorf("reading client hello after %d bytes: %w", len(buf), err)
		}
	}
}

// cursor reads TLS's length-prefixed wire format; every method reports
// false instead of reading past the end.
type cursor []byte

func (c *cursor) skip(n int) bool {
	if len(*c) < n {
		return false
	}
	*c = (*c)[n:]
	return true
}

func (c *cursor) u8() (uint8, bool) {
	if len(*c) < 1 {
		return 0, false
	}
	v := (*c)[0]
	*c = (*c)[1:]
	return v, true
}

func (c *cursor) u16() (uint16, bool) {
	if len(*c) < 2 {
		return 0, false
	}
	v := uint16((*c)[0])<<8 | uint16((*c)[1])
	*c = (*c)[2:]
	return v, true
}

func (c *cursor) bytes(n int) (cursor, bool) {
	if len(*c) < n {
		return nil, false
	}
	v := (*c)[:n:n]
	*c = (*c)[n:]
	return v, true
}

func (c *cursor) prefixed8() (cursor, bool) {
	n, ok := c.u8()
	if !ok {
		return nil, false
	}
	return c.bytes(int(n))
}

func (c *cursor) prefixed16() (cursor, bool) {
	n, ok := c.u16()
	if !ok {
		return nil, false
	}
	return c.bytes(int(n))
}
