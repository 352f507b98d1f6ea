//go:build !linux

package rawio

import "net"

// Wrap returns c unchanged: raw reads and writes are only used on Linux.
func Wrap(c net.Conn) net.Conn { return c }

// PeerGone reports false: where raw reads are not used, an idle
// connection is not looked into before reuse (see the Linux version).
func PeerGone(c net.Conn) bool { return false }
