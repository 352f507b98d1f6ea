// Package bufpool shares 4 KiB bufio readers and writers between the
// downstream HTTP/1.1 server and the upstream client, so connections borrow
// buffers only while they move bytes.
package bufpool

import (
	"bufio"
	"io"
	"sync"
)

// Size is the buffer size of pooled readers and writers.
const Size = 4096

var readers, writers sync.Pool

// Reader returns a pooled reader reading from r.
func Reader(r io.Reader) *bufio.Reader {
	if br, ok := readers.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, Size)
}

// PutReader returns br to the pool; br must not be used afterwards.
func PutReader(br *bufio.Reader) {
	br.Reset(nil)
	readers.Put(br)
}

// Writer returns a pooled writer writing to w.
func Writer(w io.Writer) *bufio.Writer {
	if bw, ok := writers.Get().(*bufio.Writer); ok {
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, Size)
}

// PutWriter returns bw to the pool; unflushed data is dropped.
func PutWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writers.Put(bw)
}

// AppendField appends the header line "k: v\r\n" to b. Heads built in a
// writer's AvailableBuffer and written with one Write use it.
func AppendField[V ~string | ~[]byte](b []byte, k string, v V) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, v...)
	return append(b, "\r\n"...)
}
