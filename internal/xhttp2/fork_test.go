package http2

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// frameContext is the writeContext of one serverConn's writes: a Framer
// over a buffer and the connection's HPACK encoder.
type frameContext struct {
	out  bytes.Buffer
	fr   *Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

func newFrameContext() *frameContext {
	c := &frameContext{}
	c.fr = NewFramer(&c.out, nil)
	c.enc = hpack.NewEncoder(&c.hbuf)
	return c
}

func (c *frameContext) Framer() *Framer  { return c.fr }
func (c *frameContext) Flush() error     { return nil }
func (c *frameContext) CloseConn() error { return nil }
func (c *frameContext) HeaderEncoder() (*hpack.Encoder, *bytes.Buffer) {
	return c.enc, &c.hbuf
}

// TestResHeadersStaysWithinBuffer checks the fork's one judgement call:
// when writeResHeaders says its frame fits in max bytes, the serve
// goroutine writes it into the connection's buffer, and a frame longer
// than promised would make that goroutine flush, and block, on the
// connection. The bound must hold for any header, fresh or indexed, and
// be tight enough to hold for the usual response.
func TestResHeadersStaysWithinBuffer(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Names and values that Huffman coding would lengthen, so HPACK
	// writes them literally: the case the bound is about.
	randString := func(chars string, n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(chars[rng.IntN(len(chars))])
		}
		return b.String()
	}
	const nameChars = "^`|~#$"
	const valueChars = "\x80\x9a\xb7\xcc\xe1\xfe^`|~"
	usual := &writeResHeaders{
		streamID: 1, httpResCode: 200,
		h: http.Header{
			"Server":        {"nginx"},
			"Vary":          {"Accept-Encoding"},
			"Cache-Control": {"no-cache"},
			"X-Request-Id":  {"5d1c2f0e-6a3b-4c8d-9e7f-0a1b2c3d4e5f"},
		},
		contentType: "text/plain; charset=utf-8", contentLength: "19",
		date: "Fri, 27 Nov 2026 07:00:00 GMT",
	}
	if !usual.staysWithinBuffer(bufWriterPoolBufferSize) {
		t.Fatalf("a usual response's HEADERS does not fit an empty %d-byte buffer", bufWriterPoolBufferSize)
	}

	ctx := newFrameContext() // one connection: the dynamic table carries over
	fits := 0
	for i := range 3000 {
		w := &writeResHeaders{streamID: uint32(2*i + 1), httpResCode: 100 + rng.IntN(500), h: http.Header{}}
		for range rng.IntN(80) {
			k := randString(nameChars, 1+rng.IntN(1+rng.IntN(150)))
			for range 1 + rng.IntN(3) {
				w.h[k] = append(w.h[k], randString(valueChars, rng.IntN(1+rng.IntN(200))))
			}
		}
		if rng.IntN(2) == 0 {
			w.contentType, w.contentLength, w.date = randString(valueChars, rng.IntN(40)), "19", randString(valueChars, 29)
		}
		if i%7 == 0 { // repeat an earlier response: its fields come from the dynamic table
			w = usual
			w.streamID = uint32(2*i + 1)
		}
		if rng.IntN(5) == 0 {
			ctx.enc.SetMaxDynamicTableSize(uint32(rng.IntN(8192)))
		}
		// The least buffer it would claim to fit in: the bound itself.
		least := sort.Search(4*bufWriterPoolBufferSize, w.staysWithinBuffer)
		ctx.out.Reset()
		if err := w.writeFrame(ctx); err != nil {
			t.Fatalf("writeFrame: %v", err)
		}
		if least < 4*bufWriterPoolBufferSize {
			fits++
			if ctx.out.Len() > least {
				t.Fatalf("response %d: said it stays within %d bytes, wrote %d (%d fields)", i, least, ctx.out.Len(), len(w.h))
			}
		}
	}
	if fits < 500 {
		t.Fatalf("only %d of 3000 responses were judged to fit 16 KiB: the test no longer exercises the bound", fits)
	}
}

// TestResHeadersTooLarge: a header block larger than the buffer goes to
// the asynchronous writer, as upstream's always does.
func TestResHeadersTooLarge(t *testing.T) {
	w := &writeResHeaders{streamID: 1, httpResCode: 200, h: http.Header{"X-Big": {strings.Repeat("a", bufWriterPoolBufferSize)}}}
	if w.staysWithinBuffer(bufWriterPoolBufferSize) {
		t.Fatal("a 4 KiB header value was judged to fit a 4 KiB buffer")
	}
	if (&writeResHeaders{streamID: 1, httpResCode: 200}).staysWithinBuffer(10) {
		t.Fatal("a bare :status was judged to fit 10 bytes (frame header alone is 9)")
	}
}
