package http2

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/internal/hdrvals"
	xhttp2 "golang.org/x/net/http2"
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

// TestLastDataNotAwaited serves many concurrent streams whose handlers
// return with their last DATA still buffered, of every size around the
// copy limit, and checks every body arrives whole: the handler's buffer
// goes back to a pool for the next stream the moment it returns, so a
// frame written from it instead of from a copy would carry another
// response's bytes.
func TestLastDataNotAwaited(t *testing.T) {
	body := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i%23)
		}
		return b
	}
	addr, client := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		seed, _ := strconv.Atoi(r.URL.Query().Get("seed"))
		w.Write(body(n, byte(seed)))
	}))
	sizes := []int{0, 1, 19, lastDataCopyMax - 1, lastDataCopyMax, lastDataCopyMax + 1, handlerChunkWriteSize, handlerChunkWriteSize + 7, 20000}
	concurrently(t, 32, 60, func(g, i int) error {
		n, seed := sizes[(g+i)%len(sizes)], byte(g*7+i)
		resp, err := client.Get(fmt.Sprintf("http://%s/?n=%d&seed=%d", addr, n, seed))
		if err != nil {
			return err
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if !bytes.Equal(got, body(n, seed)) {
			return fmt.Errorf("body of %d bytes (seed %d) arrived as %d bytes, not the same", n, seed, len(got))
		}
		return nil
	})
}

// concurrently runs req(g, i) for i in [0, each) on each of clients
// goroutines g, a goroutine stopping at its first error, and fails the
// test with the errors once all are done.
func concurrently(t *testing.T, clients, each int, req func(g, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := req(g, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCloneHeader(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
	}{
		{"one field", http.Header{"Content-Type": {"text/plain"}}},
		{"several fields and values", http.Header{"A": {"1", "2"}, "B": {"3"}, "C": {"4", "5", "6"}}},
		{"empty value list", http.Header{"A": {}, "B": {"x"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.h.Clone()
			c := cloneHeader(tc.h)
			if !maps.EqualFunc(headerValues(c), headerValues(want), slices.Equal) {
				t.Fatalf("clone = %v, want %v", c, want)
			}
			// Appending to one field of the clone must not reach into
			// the next field's values (the backing array is shared).
			for k := range c {
				c[k] = append(c[k], "appended")
			}
			for k, vv := range c {
				if n := len(want[k]); len(vv) != n+1 || vv[n] != "appended" || !slices.Equal(vv[:n], want[k]) {
					t.Errorf("%s after appends = %q, want %q + appended", k, vv, want[k])
				}
			}
			// Changing the original leaves the snapshot alone.
			for k := range tc.h {
				tc.h[k] = append(tc.h[k][:0:0], "changed")
			}
			tc.h.Set("New", "v")
			if _, ok := c["New"]; ok {
				t.Error("a field added to the map after the snapshot appeared in it")
			}
		})
	}
}

// headerValues maps each field to its values, nil and empty alike.
func headerValues(h http.Header) map[string][]string {
	m := map[string][]string{}
	for k, vv := range h {
		m[k] = append([]string{}, vv...)
	}
	return m
}

// TestRequestHeaderValues covers change 5 and 6: the request's fields,
// repeated ones in order, more than the eight Fields has room for at
// first, arrive whole; appending to one field's values in the handler
// leaves every other field alone (they share a backing array).
func TestRequestHeaderValues(t *testing.T) {
	addr, client := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k := range r.Header {
			r.Header[k] = append(r.Header[k], "appended-to-"+k)
		}
		var lines []string
		for k, vv := range r.Header {
			if strings.HasPrefix(k, "X-") {
				lines = append(lines, k+"="+strings.Join(vv, ","))
			}
		}
		sort.Strings(lines)
		io.WriteString(w, strings.Join(lines, "\n"))
	}))
	req, err := http.NewRequest("GET", "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("X-A", "1")
	req.Header.Add("X-B", "2")
	req.Header.Add("X-A", "3")
	var want []string
	for i := range 12 {
		k := fmt.Sprintf("X-F%02d", i)
		req.Header.Set(k, strconv.Itoa(i))
		want = append(want, k+"="+strconv.Itoa(i)+",appended-to-"+k)
	}
	want = append(want, "X-A=1,3,appended-to-X-A", "X-B=2,appended-to-X-B")
	sort.Strings(want)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != strings.Join(want, "\n") {
		t.Errorf("handler saw\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
}

// serveH2C serves handler with this package's Server over cleartext
// HTTP/2 on a loopback port until the test ends, and returns its address
// and a client speaking h2c to it (x/net's own client).
func serveH2C(t *testing.T, handler http.Handler) (string, *http.Client) {
	t.Helper()
	addr, client, _ := serveH2CServer(t, handler)
	return addr, client
}

// serveH2CServer is serveH2C that also returns the Server.
func serveH2CServer(t *testing.T, handler http.Handler) (string, *http.Client, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	srv := &Server{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(c, &ServeConnOpts{Handler: handler})
		}
	}()
	tr := &xhttp2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return ln.Addr().String(), &http.Client{Transport: tr, Timeout: 30 * time.Second}, srv
}

// TestHandlerPool: handlers run concurrently however many there are (none
// waits for another to end), sequential requests reuse one pooled
// goroutine, a handler's panic does not cost the goroutine, and no more
// than maxIdle goroutines stay waiting.
func TestHandlerPool(t *testing.T) {
	const n = 40
	var entered sync.WaitGroup
	entered.Add(n)
	release := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/block":
			entered.Done()
			<-release
		case "/panic":
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "ok")
	})
	addr, client, srvp := serveH2CServer(t, handler)
	srvp.handlers.MaxIdle = 4

	get := func(path string) error {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "ok" {
			return fmt.Errorf("%s: body %q", path, b)
		}
		return nil
	}
	errs := make(chan error, n)
	for range n {
		go func() { errs <- get("/block") }()
	}
	all := make(chan struct{})
	go func() { entered.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(20 * time.Second):
		t.Fatal("not every handler was running at once: some waited for others")
	}
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for srvp.handlers.Waiting() != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines idle after the burst, want the cap, 4", srvp.handlers.Waiting())
		}
		time.Sleep(time.Millisecond)
	}

	started := srvp.handlers.Started()
	for i := range 50 {
		path := "/"
		if i%10 == 5 {
			path = "/panic"
		}
		err := get(path)
		if path == "/panic" {
			continue // the stream is reset; the client may see an error
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if more := srvp.handlers.Started() - started; more != 0 {
		t.Errorf("50 sequential requests started %d goroutines, want 0 (pooled)", more)
	}
}

// roomConn is a connection that reports a fixed write room (writeRoomer).
type roomConn struct {
	net.Conn
	room int
}

func (c *roomConn) WriteRoom() int              { return c.room }
func (c *roomConn) Write(p []byte) (int, error) { return len(p), nil }

// TestFlushWontBlock: only a flush, only over a connection that reports
// room, and only when what is buffered fits that room is written by the
// serve goroutine itself.
func TestFlushWontBlock(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	for _, tc := range []struct {
		name     string
		conn     net.Conn
		buffered int
		w        writeFramer
		want     bool
	}{
		{"flush with room", &roomConn{Conn: a, room: 1 << 10}, 100, flushFrameWriter{}, true},
		{"flush of exactly the room", &roomConn{Conn: a, room: 100}, 100, flushFrameWriter{}, true},
		{"flush larger than the room", &roomConn{Conn: a, room: 99}, 100, flushFrameWriter{}, false},
		{"no room", &roomConn{Conn: a, room: 0}, 1, flushFrameWriter{}, false},
		{"a connection that does not say", a, 100, flushFrameWriter{}, false},
		{"not a flush", &roomConn{Conn: a, room: 1 << 10}, 100, writeSettings{}, false},
	} {
		sc := &serverConn{conn: tc.conn, bw: newBufferedWriter(tc.conn, 0)}
		sc.bw.Write(make([]byte, tc.buffered))
		if got := sc.flushWontBlock(tc.w); got != tc.want {
			t.Errorf("%s: flushWontBlock = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestHeaderGet: headerGet says what http.Header.Get says for the
// canonical keys writeChunk asks for, whatever the map holds.
func TestHeaderGet(t *testing.T) {
	for _, h := range []http.Header{
		{},
		{"Content-Length": {"19"}, "Connection": {"close", "x"}},
		{"Content-Encoding": {""}, "Content-Length": {}},
		{"content-length": {"5"}}, // not canonical: Get does not find it either
	} {
		for _, k := range []string{"Content-Length", "Content-Encoding", "Connection"} {
			if got, want := headerGet(h, k), h.Get(k); got != want {
				t.Errorf("%v: headerGet(%q) = %q, Get says %q", h, k, got, want)
			}
		}
	}
}

// TestHeadersNotAwaitedKeepSnapshot: a streaming handler no longer waits
// for its HEADERS frame (change 2), so the frame may be encoded after the
// handler has changed its header map again; the client must still get the
// fields as they were at WriteHeader, and the body after them, for every
// one of many concurrent streams.
func TestHeadersNotAwaitedKeepSnapshot(t *testing.T) {
	addr, client := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		w.Header().Set("X-Id", id)
		w.Header().Set("X-Stage", "head")
		w.WriteHeader(http.StatusAccepted)
		w.(http.Flusher).Flush()
		w.Header().Set("X-Stage", "changed after WriteHeader")
		w.Header().Set("X-Late", "1")
		delete(w.Header(), "X-Id")
		io.WriteString(w, "body "+id)
	}))
	concurrently(t, 16, 40, func(g, i int) error {
		id := strconv.Itoa(g*1000 + i)
		resp, err := client.Get("http://" + addr + "/?id=" + id)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			return err
		case resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Id") != id ||
			resp.Header.Get("X-Stage") != "head" || resp.Header.Get("X-Late") != "":
			return fmt.Errorf("stream %s: status %d, header %v", id, resp.StatusCode, resp.Header)
		case string(body) != "body "+id:
			return fmt.Errorf("stream %s: body %q", id, body)
		}
		return nil
	})
}

// TestMetaFrameStateFresh checks readMetaFrame's state, kept in the Framer
// since change 10, starts afresh for every header block: a refused or
// truncated block leaves nothing behind for the next one on the connection.
func TestMetaFrameStateFresh(t *testing.T) {
	type field struct{ name, value string }
	req := []field{{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", "a.test"}}
	block := func(fs ...field) []byte {
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		for _, f := range fs {
			enc.WriteField(hpack.HeaderField{Name: f.name, Value: f.value})
		}
		return buf.Bytes()
	}
	long := strings.Repeat("v", 150)
	tests := []struct {
		name   string
		first  []field
		wantSE bool // the first block is refused with a stream error
		wantTr bool // the first block is truncated
	}{
		{"invalid value", append(append([]field{}, req...), field{"x-bad", "a\x00b"}), true, false},
		{"invalid name", append(append([]field{}, req...), field{"X-Upper", "v"}), true, false},
		{"pseudo after regular", append([]field{{":method", "GET"}, {"x-a", "1"}}, field{":path", "/"}), true, false},
		{"over the list size", append(append([]field{}, req...), field{"x-l1", long}, field{"x-l2", long}, field{"x-l3", long}), false, true},
		{"valid", append(append([]field{}, req...), field{"x-a", "1"}), false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var wire bytes.Buffer
			w := NewFramer(&wire, nil)
			for i, fs := range [][]field{tc.first, append(append([]field{}, req...), field{"x-next", "ok"})} {
				if err := w.WriteHeaders(HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: block(fs...), EndStream: true, EndHeaders: true}); err != nil {
					t.Fatal(err)
				}
			}
			r := NewFramer(nil, &wire)
			r.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
			r.MaxHeaderListSize = 512
			f, err := r.ReadFrame()
			var se StreamError
			switch {
			case tc.wantSE:
				if !errors.As(err, &se) || se.StreamID != 1 {
					t.Fatalf("first block: got %v, %v; want a stream error on stream 1", f, err)
				}
			case err != nil:
				t.Fatalf("first block: %v", err)
			default:
				if mh := f.(*MetaHeadersFrame); mh.Truncated != tc.wantTr {
					t.Fatalf("first block: Truncated = %v, want %v", mh.Truncated, tc.wantTr)
				}
			}
			f, err = r.ReadFrame()
			if err != nil {
				t.Fatalf("second block: %v", err)
			}
			mh := f.(*MetaHeadersFrame)
			if mh.Truncated || mh.StreamID != 3 || len(mh.Fields) != len(req)+1 || mh.PseudoValue("path") != "/" ||
				mh.RegularFields()[0] != (hpack.HeaderField{Name: "x-next", Value: "ok"}) {
				t.Fatalf("second block: stream %d, truncated %v, fields %v", mh.StreamID, mh.Truncated, mh.Fields)
			}
		})
	}
}

// TestStreamHeaderValues checks change 11: a stream's response writer
// hands out header value slices (hdrvals.Values) from an Arena that is
// reused request after request: every request gets zeroed slices of the
// length asked for, and each response carries its own values however many
// streams run at once on how many connections.
func TestStreamHeaderValues(t *testing.T) {
	sizes := []int{1, 14, 27, 40} // past the Arena's first backing array
	addr, client := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(hdrvals.Values); !ok {
			http.Error(w, "the response writer has no header value storage", http.StatusInternalServerError)
			return
		}
		id := r.URL.Query().Get("id")
		for _, n := range sizes {
			v := hdrvals.Take(w, n)
			if len(v) != n || cap(v) != n || slices.ContainsFunc(v, func(s string) bool { return s != "" }) {
				http.Error(w, fmt.Sprintf("Take(%d): len %d cap %d %q", n, len(v), cap(v), v), http.StatusInternalServerError)
				return
			}
			for i := range v {
				v[i] = id
			}
			w.Header()["X-Take-"+strconv.Itoa(n)] = v
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	concurrently(t, 8, 50, func(g, i int) error {
		id := fmt.Sprintf("%d-%d", g, i)
		resp, err := client.Get("http://" + addr + "/?id=" + id)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("request %s: %s %s", id, resp.Status, body)
		}
		for _, n := range sizes {
			got := resp.Header["X-Take-"+strconv.Itoa(n)]
			if len(got) != n || slices.ContainsFunc(got, func(s string) bool { return s != id }) {
				return fmt.Errorf("request %s: X-Take-%d = %q", id, n, got)
			}
		}
		return nil
	})
}

// TestStreamContext checks change 12: a stream's context behaves as the
// context.WithCancel it replaces, for its own methods, for
// context.AfterFunc and Cause, and for contexts derived from it.
func TestStreamContext(t *testing.T) {
	type key struct{}
	base := context.WithValue(context.Background(), key{}, "v")
	newCtx := func() *streamContext { return &streamContext{Context: context.WithoutCancel(base)} }
	ran := func(ch <-chan string, want string) error {
		select {
		case got := <-ch:
			if got != want {
				return fmt.Errorf("ran %q, want %q", got, want)
			}
			return nil
		case <-time.After(5 * time.Second):
			return fmt.Errorf("%q did not run", want)
		}
	}
	notRun := func(ch <-chan string) error {
		select {
		case got := <-ch:
			return fmt.Errorf("%q ran", got)
		case <-time.After(50 * time.Millisecond):
			return nil
		}
	}
	tests := []struct {
		name string
		run  func(c *streamContext) error
	}{
		{"Done and Err, before and after cancel", func(c *streamContext) error {
			d := c.Done()
			select {
			case <-d:
				return errors.New("Done closed before cancel")
			default:
			}
			if c.Err() != nil || context.Cause(c) != nil {
				return fmt.Errorf("before cancel: Err %v, Cause %v", c.Err(), context.Cause(c))
			}
			c.cancel()
			c.cancel() // a second cancel does nothing
			<-d
			<-c.Done()
			if c.Err() != context.Canceled || context.Cause(c) != context.Canceled {
				return fmt.Errorf("after cancel: Err %v, Cause %v", c.Err(), context.Cause(c))
			}
			return nil
		}},
		{"Done first asked after cancel is closed", func(c *streamContext) error {
			c.cancel()
			<-c.Done()
			return nil
		}},
		{"values and no deadline", func(c *streamContext) error {
			if c.Value(key{}) != "v" {
				return errors.New("the base context's value is missing")
			}
			if _, ok := c.Deadline(); ok {
				return errors.New("a deadline")
			}
			return nil
		}},
		{"AfterFuncs run once each, at cancel", func(c *streamContext) error {
			ch := make(chan string, 4)
			stop1 := context.AfterFunc(c, func() { ch <- "first" })
			c.AfterFunc(func() { ch <- "second" })
			if err := notRun(ch); err != nil {
				return err
			}
			c.cancel()
			got := map[string]bool{}
			for range 2 {
				select {
				case s := <-ch:
					got[s] = true
				case <-time.After(5 * time.Second):
				}
			}
			if !got["first"] || !got["second"] {
				return fmt.Errorf("ran %v, want both", got)
			}
			if stop1() {
				return errors.New("stop after the run reports it stopped it")
			}
			c.cancel()
			return notRun(ch)
		}},
		{"stop before cancel", func(c *streamContext) error {
			ch := make(chan string, 2)
			stop := context.AfterFunc(c, func() { ch <- "stopped" })
			keep := context.AfterFunc(c, func() { ch <- "kept" })
			if !stop() || stop() {
				return errors.New("stop: want true, then false")
			}
			c.cancel()
			if err := ran(ch, "kept"); err != nil {
				return err
			}
			if keep() {
				return errors.New("stop of a function that ran reports true")
			}
			return notRun(ch)
		}},
		{"AfterFunc after cancel runs at once", func(c *streamContext) error {
			c.cancel()
			ch := make(chan string, 1)
			stop := context.AfterFunc(c, func() { ch <- "late" })
			if err := ran(ch, "late"); err != nil {
				return err
			}
			if stop() {
				return errors.New("stop reports true")
			}
			return nil
		}},
		{"derived contexts end with it", func(c *streamContext) error {
			child, cancel := context.WithTimeout(c, time.Hour)
			defer cancel()
			grandchild, cancel2 := context.WithCancel(child)
			defer cancel2()
			c.cancel()
			select {
			case <-grandchild.Done():
			case <-time.After(5 * time.Second):
				return errors.New("a derived context did not end")
			}
			if child.Err() != context.Canceled || context.Cause(grandchild) != context.Canceled {
				return fmt.Errorf("derived: Err %v, Cause %v", child.Err(), context.Cause(grandchild))
			}
			return nil
		}},
		{"concurrent register, stop and cancel", func(c *streamContext) error {
			var wg sync.WaitGroup
			var runs, stops sync.Map
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					stop := context.AfterFunc(c, func() { runs.Store(i, true) })
					if i%2 == 0 && stop() {
						stops.Store(i, true)
					}
				}()
			}
			wg.Add(1)
			go func() { defer wg.Done(); c.cancel() }()
			wg.Wait()
			deadline := time.Now().Add(5 * time.Second)
			for i := range 20 {
				for {
					_, r := runs.Load(i)
					_, s := stops.Load(i)
					if r && s {
						return fmt.Errorf("function %d both ran and was stopped", i)
					}
					if r || s {
						break
					}
					if time.Now().After(deadline) {
						return fmt.Errorf("function %d neither ran nor was stopped", i)
					}
					time.Sleep(time.Millisecond)
				}
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(newCtx()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStreamContextEndsWithStream: a handler's request context ends when
// the client resets its stream, and what it scheduled with
// context.AfterFunc runs.
func TestStreamContextEndsWithStream(t *testing.T) {
	started, ended := make(chan struct{}), make(chan error, 1)
	addr, client := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if _, ok := ctx.(*streamContext); !ok {
			ended <- fmt.Errorf("request context is %T", ctx)
			return
		}
		after := make(chan struct{})
		context.AfterFunc(ctx, func() { close(after) })
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		close(started)
		select {
		case <-after:
			ended <- ctx.Err()
		case <-time.After(10 * time.Second):
			ended <- errors.New("the AfterFunc did not run after the reset")
		}
	}))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started
	cancel() // the client resets the stream
	if err := <-ended; err != context.Canceled {
		t.Fatalf("handler: %v, want context.Canceled", err)
	}
}
