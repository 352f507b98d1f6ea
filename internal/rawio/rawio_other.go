//go:build !linux

package rawio

import (
	"errors"
	"net"
)

// Wrap returns c unchanged: raw reads and writes are only used on Linux.
func Wrap(c net.Conn) net.Conn { return c }

// PeerGone reports false: where raw reads are not used, an idle
// connection is not looked into before reuse (see the Linux version).
func PeerGone(c net.Conn) bool { return false }

// Conn is never returned by Wrap here; it exists so callers compile.
type Conn struct{ net.Conn }

// ErrWouldBlock is Recv's answer when nothing is ready to read.
var ErrWouldBlock = errors.New("rawio: nothing to read yet")

// ReadLoop is not available here (Wrap never returns a *Conn).
func (c *Conn) ReadLoop(step func() bool) error { return errors.ErrUnsupported }

// Recv is not available here (Wrap never returns a *Conn).
func (c *Conn) Recv(p []byte) (int, error) { return 0, errors.ErrUnsupported }
