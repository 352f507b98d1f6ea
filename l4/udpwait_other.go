//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package l4

import (
	"errors"
	"syscall"
)

// canWaitReadable says waitReadable works on this platform: here it does
// not, so each session keeps its own receive buffer.
const canWaitReadable = false

func waitReadable(syscall.RawConn) error { return errors.New("not supported") }
