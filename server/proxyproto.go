package server

// PROXY protocol (HAProxy's, versions 1 and 2), read before TLS or HTTP on
// listeners behind a load balancer that sends it, so that the client
// address is the one the balancer saw. No library for it is served to
// this project, so this is a small parser of the two framings (tested
// and fuzzed in proxyproto_test.go).

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// proxyV2Sig starts every version 2 header.
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	proxyV1Max = 107 // the longest v1 line, CRLF included
	// proxyV2Max bounds the address and TLV block of a v2 header; load
	// balancers' TLVs (AWS, GCP, Azure) fit in well under this.
	proxyV2Max = 4096
)

var errNotProxy = errors.New("proxy protocol: no PROXY header")

// readProxyHeader reads one PROXY header from br. It returns the client
// address it carries, or nil when the header says to keep the peer's
// (v1 UNKNOWN, v2 LOCAL, or an address family other than TCP/UDP over
// IPv4/IPv6).
func readProxyHeader(br *bufio.Reader) (net.Addr, error) {
	sig, err := br.Peek(12)
	if err != nil {
		if len(sig) > 0 && !bytes.HasPrefix(proxyV2Sig, sig) && !bytes.HasPrefix([]byte("PROXY "), sig[:min(len(sig), 6)]) {
			return nil, errNotProxy
		}
		return nil, fmt.Errorf("proxy protocol: reading header: %w", err)
	}
	if bytes.Equal(sig, proxyV2Sig) {
		return readProxyV2(br)
	}
	if bytes.HasPrefix(sig, []byte("PROXY ")) {
		return readProxyV1(br)
	}
	return nil, errNotProxy
}

func readProxyV1(br *bufio.Reader) (net.Addr, error) {
	// Read byte by byte up to the LF, never past proxyV1Max: what follows
	// belongs to TLS or HTTP.
	var line []byte
	for len(line) < proxyV1Max {
		b, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("proxy protocol v1: %w", err)
		}
		line = append(line, b)
		if b == '\n' {
			break
		}
	}
	if !bytes.HasSuffix(line, []byte("\r\n")) {
		return nil, errors.New("proxy protocol v1: header line too long or not CRLF-terminated")
	}
	f := strings.Split(string(line[:len(line)-2]), " ")
	if f[0] != "PROXY" || len(f) < 2 {
		return nil, errors.New("proxy protocol v1: malformed header")
	}
	switch f[1] {
	case "UNKNOWN":
		return nil, nil
	case "TCP4", "TCP6":
	default:
		return nil, fmt.Errorf("proxy protocol v1: unknown protocol %q", f[1])
	}
	if len(f) != 6 {
		return nil, errors.New("proxy protocol v1: malformed header")
	}
	src, err1 := netip.ParseAddr(f[2])
	dst, err2 := netip.ParseAddr(f[3])
	sport, err3 := parsePort(f[4])
	_, err4 := parsePort(f[5])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || src.Zone() != "" || dst.Zone() != "" {
		return nil, errors.New("proxy protocol v1: malformed address or port")
	}
	if (f[1] == "TCP4") != (src.Is4() && dst.Is4()) || (f[1] == "TCP6" && (!src.Is6() || !dst.Is6())) {
		return nil, errors.New("proxy protocol v1: address family does not match")
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, sport)), nil
}

// parsePort reads a decimal port without sign or leading zeros.
func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("bad port")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("bad port")
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 65535 {
		return 0, errors.New("bad port")
	}
	return uint16(n), nil
}

func readProxyV2(br *bufio.Reader) (net.Addr, error) {
	hdr := make([]byte, 16)
	if _, err := ioReadFull(br, hdr); err != nil {
		return nil, fmt.Errorf("proxy protocol v2: %w", err)
	}
	verCmd, fam := hdr[12], hdr[13]
	if verCmd>>4 != 2 {
		return nil, fmt.Errorf("proxy protocol v2: version %d", verCmd>>4)
	}
	n := int(binary.BigEndian.Uint16(hdr[14:16]))
	if n > proxyV2Max {
		return nil, fmt.Errorf("proxy protocol v2: header of %d bytes is too long", n)
	}
	body := make([]byte, n)
	if _, err := ioReadFull(br, body); err != nil {
		return nil, fmt.Errorf("proxy protocol v2: %w", err)
	}
	switch verCmd & 0xF {
	case 0: // LOCAL: the balancer's own connection (health checks)
		return nil, nil
	case 1: // PROXY
	default:
		return nil, fmt.Errorf("proxy protocol v2: command %d", verCmd&0xF)
	}
	switch fam >> 4 {
	case 1: // AF_INET
		if n < 12 {
			return nil, errors.New("proxy protocol v2: short IPv4 address block")
		}
		ip := netip.AddrFrom4([4]byte(body[0:4]))
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[8:10]))), nil
	case 2: // AF_INET6
		if n < 36 {
			return nil, errors.New("proxy protocol v2: short IPv6 address block")
		}
		ip := netip.AddrFrom16([16]byte(body[0:16])).Unmap()
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[32:34]))), nil
	case 0, 3: // AF_UNSPEC, AF_UNIX: keep the peer
		return nil, nil
	}
	return nil, fmt.Errorf("proxy protocol v2: address family %d", fam>>4)
}

func ioReadFull(br *bufio.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := br.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// proxyConn is a connection whose PROXY header has been read: it reports
// the client address from the header and first returns the bytes read
// past it.
type proxyConn struct {
	net.Conn
	br     *bufio.Reader
	remote net.Addr
}

func (c *proxyConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

func (c *proxyConn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// acceptProxy reads c's PROXY header within timeout.
func acceptProxy(c net.Conn, timeout time.Duration) (net.Conn, error) {
	c.SetReadDeadline(time.Now().Add(timeout))
	br := bufio.NewReaderSize(c, 256)
	src, err := readProxyHeader(br)
	if err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Time{})
	return &proxyConn{Conn: c, br: br, remote: src}, nil
}
