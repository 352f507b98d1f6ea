// Package h1headtest holds what the tests of the two head parsers (server's
// request heads, proxy's response heads) share: inputs arriving in pieces,
// and the sequence of reads that checks a connection's memory of its last
// head against reading each head afresh.
package h1headtest

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// Pieces hands out input all at once (pieces 0), a byte a read (odd) or
// half of what is asked each read (even).
func Pieces(input string, pieces int) io.Reader {
	switch {
	case pieces == 0:
		return strings.NewReader(input)
	case pieces%2 == 1:
		return iotest.OneByteReader(strings.NewReader(input))
	}
	return iotest.HalfReader(strings.NewReader(input))
}

// CheckMemo reads heads a and b on one connection (state S) in a sequence
// that repeats each, changes from one to the other, sends one in pieces
// and lowers the limit: every way a remembered head can be met again or
// not. Each read must give what reading the same head on a fresh
// connection gives. read reads input's head with s, arriving as Pieces
// says, under the limit max, and returns what the read gave.
func CheckMemo[S any, O comparable](t testing.TB, a, b string, pieces uint8, max int, read func(s *S, input string, pieces, max int) O) {
	t.Helper()
	var s S
	for i, step := range []struct {
		input       string
		pieces, max int
	}{
		{a, 0, max}, {a, 0, max}, {b, 0, max}, {b, 0, max},
		{a, int(pieces), max}, {a, 0, max}, {a, 0, len(a) / 2}, {b, 0, max}, {a, 0, max},
	} {
		got := read(&s, step.input, step.pieces, step.max)
		var fresh S
		if want := read(&fresh, step.input, step.pieces, step.max); got != want {
			t.Fatalf("step %d (%q): with the connection's memory %+v, fresh %+v", i, step.input, got, want)
		}
	}
}
