package server

import (
	"net"
	"syscall"
)

// ackNow makes the kernel acknowledge what was read so far at once instead
// of after the delayed-ACK timer. After a TLS 1.3 handshake the server has
// nothing to send (Go sends its session tickets with its first flight), so
// a client whose request waits behind Nagle's algorithm for that ACK (ab,
// many OpenSSL clients) would stall for ~40 ms on every new connection.
func ackNow(c net.Conn) {
	tc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
