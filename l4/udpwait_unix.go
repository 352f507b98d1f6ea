//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package l4

import "syscall"

// canWaitReadable says waitReadable works on this platform.
const canWaitReadable = true

// waitReadable blocks until the socket has a datagram (or an error) queued,
// honouring its read deadline, without reading it: a one-byte MSG_PEEK
// tells whether to wait, and the runtime poller does the waiting.
func waitReadable(rc syscall.RawConn) error {
	var b [1]byte
	err := rc.Read(func(fd uintptr) bool {
		var e error
		_, _, e = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		// Anything but "nothing queued" is for the real Read to return.
		return e != syscall.EAGAIN && e != syscall.EWOULDBLOCK
	})
	return err
}
