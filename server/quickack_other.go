//go:build !linux

package server

import "net"

// ackNow is a no-op where TCP_QUICKACK does not exist.
func ackNow(net.Conn) {}
