package h1head

import (
	"bufio"
	"bytes"
)

// LineReader reads the lines of one message head from a bufio.Reader. A
// line already in the reader's buffer is cut straight from it with one
// IndexByte, and the lines handed out are consumed together by Done; only
// a line not yet buffered in full goes through bufio.Reader.ReadSlice. A
// head usually arrives in one read, so its lines cost a search each
// instead of a ReadSlice each (about a third of the instructions).
type LineReader struct {
	br    *bufio.Reader
	first []byte // what was buffered at Reset
	buf   []byte // buffered bytes after the lines handed out
	used  int    // bytes handed out from buf, not yet consumed from br
	n     int    // bytes handed out since Reset
	whole bool   // every line so far was cut from first
}

// Reset starts reading a head from br.
func (r *LineReader) Reset(br *bufio.Reader) {
	*r = LineReader{br: br, whole: true}
	r.buf, _ = br.Peek(br.Buffered())
	r.first = r.buf
}

// Head returns the bytes of the lines handed out since Reset, as they were
// received, when all of them were in the buffer at Reset; otherwise nil.
// A caller that remembers a head to recognize it next time (the heads'
// memos in server and proxy) copies them before the reader reads again:
// nothing is read into the buffer after Reset unless a line was not
// whole, so until then they are in place, even after Done.
func (r *LineReader) Head() []byte {
	if !r.whole {
		return nil
	}
	return r.first[:r.n]
}

// ReadLine returns the next line, '\n' included, with ReadSlice's
// contract: the line is valid until the next ReadLine or Done, and
// bufio.ErrBufferFull returns a part of a line longer than the buffer.
func (r *LineReader) ReadLine() ([]byte, error) {
	if i := bytes.IndexByte(r.buf, '\n'); i >= 0 {
		line := r.buf[:i+1]
		r.buf = r.buf[i+1:]
		r.used += i + 1
		r.n += i + 1
		return line, nil
	}
	r.Done()
	r.whole = false
	line, err := r.br.ReadSlice('\n')
	// Peek within what is buffered neither reads nor moves the buffer,
	// so line stays valid.
	r.buf, _ = r.br.Peek(r.br.Buffered())
	return line, err
}

// Done consumes from the bufio.Reader the lines handed out. Call it once
// the head is read, before reading the body.
func (r *LineReader) Done() {
	if r.used > 0 {
		r.br.Discard(r.used)
		r.used = 0
	}
}
