package grpcweb

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
)

// ---- helpers ----

// frame builds one gRPC length-prefixed frame.
func frame(flag byte, payload []byte) []byte {
	b := []byte{flag}
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

type parsedFrame struct {
	flag byte
	data []byte
}

// parseFrames splits a gRPC-Web body into frames, refusing a truncated one.
func parseFrames(b []byte) ([]parsedFrame, error) {
	var out []parsedFrame
	for len(b) > 0 {
		if len(b) < 5 {
			return out, fmt.Errorf("truncated frame header (%d bytes)", len(b))
		}
		n := binary.BigEndian.Uint32(b[1:5])
		if uint64(len(b)-5) < uint64(n) {
			return out, fmt.Errorf("frame of %d bytes, %d left", n, len(b)-5)
		}
		out = append(out, parsedFrame{b[0], b[5 : 5+n]})
		b = b[5+n:]
	}
	return out, nil
}

// parseTrailer reads a trailer frame payload the way a gRPC-Web client does.
func parseTrailer(p []byte) (map[string][]string, error) {
	t := map[string][]string{}
	s := string(p)
	for s != "" {
		line, rest, ok := strings.Cut(s, "\r\n")
		if !ok {
			return nil, fmt.Errorf("unterminated line %q", s)
		}
		name, value, ok := strings.Cut(line, ": ")
		if !ok || name == "" || name != strings.ToLower(name) {
			return nil, fmt.Errorf("bad line %q", line)
		}
		t[name] = append(t[name], value)
		s = rest
	}
	return t, nil
}

// refDecode is the obviously correct gRPC-Web text decoder: every 4
// characters are one independent group; a short tail is unpadded base64.
func refDecode(s []byte) ([]byte, error) {
	var out []byte
	var buf [3]byte
	i := 0
	for ; i+4 <= len(s); i += 4 {
		g := s[i : i+4]
		if bytes.ContainsAny(g, "\r\n") {
			return out, errors.New("line break")
		}
		n, err := base64.StdEncoding.Decode(buf[:], g)
		if err != nil {
			return out, err
		}
		out = append(out, buf[:n]...)
	}
	if tail := s[i:]; len(tail) > 0 {
		if bytes.ContainsAny(tail, "\r\n") {
			return out, errors.New("line break")
		}
		n, err := base64.RawStdEncoding.Decode(buf[:], tail)
		if err != nil {
			return out, err
		}
		out = append(out, buf[:n]...)
	}
	return out, nil
}

// chunkedB64 encodes data as independently padded base64 chunks of the given
// sizes (the last chunk takes the rest), the way a gRPC-Web client may send
// a body it produced piecewise.
func chunkedB64(data []byte, every int) []byte {
	if every <= 0 {
		every = len(data) + 1
	}
	var out []byte
	for len(data) > 0 {
		n := min(every, len(data))
		out = base64.StdEncoding.AppendEncode(out, data[:n])
		data = data[n:]
	}
	return out
}

// stepReader returns at most size bytes per Read, then err.
type stepReader struct {
	data []byte
	size int
	err  error
}

func (s *stepReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		return 0, io.EOF
	}
	n := min(len(p), s.size, len(s.data))
	copy(p, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

func (s *stepReader) Close() error { return nil }

// readAllStep reads r with a buffer of bufSize bytes.
func readAllStep(r io.Reader, bufSize int) ([]byte, error) {
	var out []byte
	buf := make([]byte, bufSize)
	for range 1 << 22 {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
	return out, errors.New("reader never ended")
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// ---- unit tests ----

func TestIs(t *testing.T) {
	tests := []struct {
		ct     string
		want   bool
		text   bool
		suffix string
	}{
		{"application/grpc-web", true, false, ""},
		{"application/grpc-web+proto", true, false, "+proto"},
		{"application/grpc-web-text", true, true, ""},
		{"application/grpc-web-text+proto", true, true, "+proto"},
		{"Application/GRPC-Web-Text+Proto", true, true, "+proto"},
		{"application/grpc-web+json; charset=utf-8", true, false, "+json"},
		{"  application/grpc-web ;x=y", true, false, ""},
		{"application/grpc-web-text;", true, true, ""},
		{"application/grpc", false, false, ""},
		{"application/grpc+proto", false, false, ""},
		{"application/grpc-webx", false, false, ""},
		{"application/grpc-web+", false, false, ""},
		{"application/grpc-web-textual", false, false, ""},
		{"application/grpc-web+pro to", false, false, ""},
		{"application/grpc-web/x", false, false, ""},
		{"text/plain", false, false, ""},
		{"", false, false, ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "/s/M", nil)
		if tt.ct != "" {
			r.Header.Set("Content-Type", tt.ct)
		}
		if got := Is(r); got != tt.want {
			t.Errorf("Is(%q) = %v, want %v", tt.ct, got, tt.want)
		}
		text, suffix, ok := parseContentType(tt.ct)
		if ok != tt.want || text != tt.text || suffix != tt.suffix {
			t.Errorf("parseContentType(%q) = %v %q %v, want %v %q %v", tt.ct, text, suffix, ok, tt.text, tt.suffix, tt.want)
		}
	}
}

func TestTrailerFrame(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want string
	}{
		{"empty", http.Header{}, ""},
		{"status", http.Header{"Grpc-Status": {"0"}}, "grpc-status: 0\r\n"},
		{"sorted and lowercase", http.Header{"Grpc-Status": {"2"}, "Grpc-Message": {"test"}, "X-Custom-Bin": {"AAE="}},
			"grpc-message: test\r\ngrpc-status: 2\r\nx-custom-bin: AAE=\r\n"},
		{"multiple values", http.Header{"X-A": {"1", "2"}}, "x-a: 1\r\nx-a: 2\r\n"},
		{"injection dropped", http.Header{"X-A": {"ok", "bad\r\ngrpc-status: 0"}, "Bad Name": {"v"}, "": {"v"}},
			"x-a: ok\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendTrailerFrame([]byte("prefix"), tt.in)
			want := append([]byte("prefix"), frame(0x80, []byte(tt.want))...)
			if !bytes.Equal(got, want) {
				t.Fatalf("frame = %q, want %q", got, want)
			}
			frames, err := parseFrames(got[len("prefix"):])
			if err != nil || len(frames) != 1 || frames[0].flag != 0x80 {
				t.Fatalf("parse: %v %v", frames, err)
			}
			if _, err := parseTrailer(frames[0].data); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseFrames(t *testing.T) {
	body := append(frame(0, []byte("hello")), frame(0, nil)...)
	body = append(body, frame(0x80, []byte("grpc-status: 0\r\n"))...)
	frames, err := parseFrames(body)
	if err != nil || len(frames) != 3 || string(frames[0].data) != "hello" || len(frames[1].data) != 0 || frames[2].flag != 0x80 {
		t.Fatalf("frames %v, err %v", frames, err)
	}
	for _, cut := range []int{1, 4, 6, len(body) - 1} {
		if _, err := parseFrames(body[:cut]); err == nil {
			t.Errorf("truncated at %d: no error", cut)
		}
	}
}

func TestTextDecoder(t *testing.T) {
	sizes := []int{0, 1, 2, 3, 4, 5, 17, 1000, 3072, 3073, 5000}
	chunkings := []int{0, 1, 2, 3, 4, 5, 7, 100, 3071}
	readSizes := []int{1, 3, 4, 5, 13, 4096, 10000}
	bufSizes := []int{1, 2, 64, 8192}
	for _, size := range sizes {
		data := pattern(size)
		for _, every := range chunkings {
			if every == 1 && size > 1000 {
				continue
			}
			enc := chunkedB64(data, every)
			ref, err := refDecode(enc)
			if err != nil || !bytes.Equal(ref, data) {
				t.Fatalf("reference decoder: %v", err)
			}
			for _, rs := range readSizes {
				for _, bs := range bufSizes {
					if rs*bs < 4 && size > 1000 {
						continue
					}
					d := &textDecoder{src: &stepReader{data: enc, size: rs}}
					got, err := readAllStep(d, bs)
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("size %d chunks %d read %d buf %d: got %d bytes, err %v", size, every, rs, bs, len(got), err)
					}
				}
			}
		}
	}
}

func TestTextDecoderErrors(t *testing.T) {
	srcErr := errors.New("connection reset")
	tests := []struct {
		name    string
		in      string
		err     error // nil: success
		want    string
		wantErr error
	}{
		{"unpadded tail", "QUJD" + "QUI", nil, "ABCAB", nil},
		{"unpadded two", "QQ", nil, "A", nil},
		{"padding mid chunk", "QQ==QUI=QUJD", nil, "AABABC", nil},
		{"one char left", "QUJDQ", nil, "ABC", errBase64},
		{"data after padding in group", "QQ=A", nil, "", errBase64},
		{"bad alphabet", "QU!D", nil, "", errBase64},
		{"line break", "QUJD\nQUJD", nil, "ABC", errBase64},
		{"padded tail too short", "QQ=", nil, "", errBase64},
		{"source error", "QUJD", srcErr, "ABC", srcErr},
		{"source error mid group", "QUJDQU", srcErr, "ABC", srcErr},
		{"empty", "", nil, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, rs := range []int{1, 2, 4, 100} {
				d := &textDecoder{src: &stepReader{data: []byte(tt.in), size: rs, err: tt.err}}
				got, err := readAllStep(d, 7)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("read %d: err %v, want %v", rs, err, tt.wantErr)
				}
				if tt.wantErr == nil && string(got) != tt.want {
					t.Fatalf("read %d: got %q, want %q", rs, got, tt.want)
				}
				if tt.wantErr != nil && !strings.HasPrefix(tt.want, string(got)) {
					t.Fatalf("read %d: got %q before the error, want a prefix of %q", rs, got, tt.want)
				}
			}
		})
	}
}

type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }
func (stuckReader) Close() error             { return nil }

func TestTextDecoderNoProgress(t *testing.T) {
	d := &textDecoder{src: stuckReader{}}
	if _, err := d.Read(make([]byte, 10)); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("err %v, want io.ErrNoProgress", err)
	}
}

// decodeBody turns a recorded gRPC-Web body into frames.
func decodeBody(t *testing.T, body []byte, text bool) []parsedFrame {
	t.Helper()
	if text {
		var err error
		if body, err = refDecode(body); err != nil {
			t.Fatalf("response is not valid gRPC-Web text: %v", err)
		}
	}
	frames, err := parseFrames(body)
	if err != nil {
		t.Fatalf("response frames: %v", err)
	}
	return frames
}

// splitResponse checks the body shape (messages, then exactly one trailer
// frame) and returns the messages and trailer fields.
func splitResponse(t *testing.T, frames []parsedFrame) ([][]byte, map[string][]string) {
	t.Helper()
	if len(frames) == 0 || frames[len(frames)-1].flag != 0x80 {
		t.Fatalf("response does not end with a trailer frame: %v", frames)
	}
	var msgs [][]byte
	for _, f := range frames[:len(frames)-1] {
		if f.flag != 0 {
			t.Fatalf("unexpected frame flag %#x before the trailer", f.flag)
		}
		msgs = append(msgs, f.data)
	}
	tr, err := parseTrailer(frames[len(frames)-1].data)
	if err != nil {
		t.Fatal(err)
	}
	return msgs, tr
}

func TestResponseTranslation(t *testing.T) {
	msg1, msg2 := frame(0, []byte("first")), frame(0, pattern(5000))
	tests := []struct {
		name    string
		handler http.HandlerFunc
		msgs    []string
		trailer map[string][]string
		header  map[string]string // expected client response headers
	}{
		{
			name: "declared trailers",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/grpc")
				w.Header().Set("Trailer", "Grpc-Status, grpc-message")
				w.Header().Add("Trailer", "X-Meta")
				w.Header().Set("X-Head", "h")
				w.WriteHeader(200)
				w.Write(msg1)
				w.Write(msg2)
				w.Header().Set("Grpc-Status", "0")
				w.Header().Set("Grpc-Message", "")
				w.Header().Set("X-Meta", "m")
			},
			msgs:    []string{"first", string(pattern(5000))},
			trailer: map[string][]string{"grpc-status": {"0"}, "grpc-message": {""}, "x-meta": {"m"}},
			header:  map[string]string{"X-Head": "h"},
		},
		{
			name: "trailer prefix",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/grpc+proto")
				w.Write(msg1)
				w.Header().Set(http.TrailerPrefix+"Grpc-Status", "5")
				w.Header().Set(http.TrailerPrefix+"grpc-message", "not found")
			},
			msgs:    []string{"first"},
			trailer: map[string][]string{"grpc-status": {"5"}, "grpc-message": {"not found"}},
		},
		{
			name: "undeclared after body (proxy copy)",
			handler: func(w http.ResponseWriter, r *http.Request) {
				h := w.Header()
				h.Set("Content-Type", "application/grpc")
				h.Set("X-Kept", "same")
				w.WriteHeader(200)
				w.Write(msg1)
				h["Grpc-Status"] = []string{"0"}
				h["X-Kept"] = []string{"same"} // unchanged: not a trailer
			},
			msgs:    []string{"first"},
			trailer: map[string][]string{"grpc-status": {"0"}},
			header:  map[string]string{"X-Kept": "same"},
		},
		{
			name: "trailers only",
			handler: func(w http.ResponseWriter, r *http.Request) {
				h := w.Header()
				h.Set("Content-Type", "application/grpc")
				h.Set("Grpc-Status", "12")
				h.Set("Grpc-Message", "unknown method")
				h.Set("Content-Length", "0")
				w.WriteHeader(200)
			},
			trailer: map[string][]string{"grpc-status": {"12"}, "grpc-message": {"unknown method"}},
		},
		{
			name: "trailers only without WriteHeader",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/grpc")
				w.Header().Set("Grpc-Status", "16")
			},
			trailer: map[string][]string{"grpc-status": {"16"}},
		},
		{
			name: "gateway error page",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("Connection", "close")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, "Service Unavailable (no_healthy_upstream)\n")
			},
			trailer: map[string][]string{"grpc-status": {"14"}, "grpc-message": {"upstream HTTP status 503"}},
			header:  map[string]string{"Connection": "close"},
		},
		{
			name: "not found",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNotFound)
			},
			trailer: map[string][]string{"grpc-status": {"12"}, "grpc-message": {"upstream HTTP status 404"}},
		},
		{
			name: "status 200 but not gRPC",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				io.WriteString(w, "<html>")
			},
			trailer: map[string][]string{"grpc-status": {"2"}, "grpc-message": {"upstream response is not gRPC"}},
		},
		{
			name: "gRPC without status",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/grpc")
				w.Write(msg1)
			},
			msgs:    []string{"first"},
			trailer: map[string][]string{"grpc-status": {"2"}, "grpc-message": {"upstream sent no grpc-status"}},
		},
		{
			name:    "nothing written",
			handler: func(w http.ResponseWriter, r *http.Request) {},
			trailer: map[string][]string{"grpc-status": {"2"}, "grpc-message": {"upstream response is not gRPC"}},
		},
	}
	for _, tt := range tests {
		for _, ct := range []string{"application/grpc-web", "application/grpc-web-text+proto"} {
			t.Run(tt.name+"/"+ct, func(t *testing.T) {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodPost, "/s/M", bytes.NewReader(nil))
				req.Header.Set("Content-Type", ct)
				Handler(tt.handler).ServeHTTP(rec, req)
				if rec.Code != 200 {
					t.Fatalf("status %d, want 200", rec.Code)
				}
				if got := rec.Header().Get("Content-Type"); got != ct {
					t.Errorf("Content-Type %q, want %q", got, ct)
				}
				for _, k := range []string{"Grpc-Status", "Grpc-Message", "Trailer", "Content-Length"} {
					if v, ok := rec.Header()[k]; ok {
						t.Errorf("client header %s: %q leaked", k, v)
					}
				}
				for k, v := range tt.header {
					if got := rec.Header().Get(k); got != v {
						t.Errorf("client header %s = %q, want %q", k, got, v)
					}
				}
				if len(rec.Result().Trailer) != 0 {
					t.Errorf("HTTP trailers sent: %v", rec.Result().Trailer)
				}
				msgs, tr := splitResponse(t, decodeBody(t, rec.Body.Bytes(), strings.Contains(ct, "-text")))
				if len(msgs) != len(tt.msgs) {
					t.Fatalf("%d messages, want %d", len(msgs), len(tt.msgs))
				}
				for i := range msgs {
					if string(msgs[i]) != tt.msgs[i] {
						t.Errorf("message %d differs", i)
					}
				}
				if fmt.Sprint(tr) != fmt.Sprint(tt.trailer) {
					t.Errorf("trailer %v, want %v", tr, tt.trailer)
				}
			})
		}
	}
}

func TestTextResponseChunks(t *testing.T) {
	data := pattern(20000)
	tests := []struct {
		name   string
		writes []int // byte counts; negative means Flush
	}{
		{"one write", []int{10000}},
		{"bytes with flushes", []int{1, -1, 1, -1, 1, 1, 1, -1, 2, -1}},
		{"odd sizes", []int{5, 7, 11, -1, 13, 3070, 3071, 3072, -1, 4096}},
		{"flush twice", []int{4, -1, -1, 5}},
		{"large", []int{9999, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/s/M", nil)
			req.Header.Set("Content-Type", "application/grpc-web-text")
			w, _, finish := Wrap(rec, req)
			w.Header().Set("Content-Type", "application/grpc")
			want := 0
			for _, n := range tt.writes {
				if n < 0 {
					w.(http.Flusher).Flush()
					if !rec.Flushed {
						t.Fatal("Flush did not reach the underlying writer")
					}
					// Everything written so far is decodable right now.
					got, err := refDecode(rec.Body.Bytes())
					if err != nil || !bytes.Equal(got, data[:want]) {
						t.Fatalf("after flush: %d bytes (want %d), err %v", len(got), want, err)
					}
					continue
				}
				if k, err := w.Write(data[want : want+n]); k != n || err != nil {
					t.Fatalf("Write = %d, %v", k, err)
				}
				want += n
			}
			w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
			if err := finish(); err != nil {
				t.Fatal(err)
			}
			body, err := refDecode(rec.Body.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			tf := appendTrailerFrame(nil, http.Header{"Grpc-Status": {"0"}})
			if !bytes.Equal(body, append(data[:want:want], tf...)) {
				t.Fatalf("body mismatch: %d bytes", len(body))
			}
			if _, err := w.Write([]byte("x")); !errors.Is(err, errFinished) {
				t.Fatalf("write after finish: %v", err)
			}
			if err := finish(); err != nil {
				t.Fatalf("second finish: %v", err)
			}
		})
	}
}

func TestRequestRewrite(t *testing.T) {
	msg := frame(0, pattern(1000))
	tests := []struct {
		name     string
		ct       string
		accept   string
		body     []byte
		wantCT   string
		wantCL   int64
		wantAcc  string
		wantBody []byte
	}{
		{"binary", "application/grpc-web", "*/*", msg, "application/grpc", int64(len(msg)), "*/*", msg},
		{"binary proto", "application/grpc-web+proto; x=1", "application/grpc-web", msg, "application/grpc+proto", int64(len(msg)), "", msg},
		{"text", "application/grpc-web-text", "application/grpc-web-text", chunkedB64(msg, 0), "application/grpc", -1, "", msg},
		{"text chunks", "application/grpc-web-text+proto", "", chunkedB64(msg, 100), "application/grpc+proto", -1, "", msg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/pkg.S/M", bytes.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ct)
			req.Header.Set("Content-Length", fmt.Sprint(len(tt.body)))
			req.Header.Set("X-Grpc-Web", "1")
			req.Header.Set("X-User-Agent", "grpc-web-javascript/0.1")
			req.Header.Set("Grpc-Timeout", "1S")
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			orig := req.Header.Clone()
			var seen *http.Request
			var body []byte
			Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = r
				var err error
				if body, err = io.ReadAll(r.Body); err != nil {
					t.Error(err)
				}
				w.Header().Set("Content-Type", "application/grpc")
				w.Header().Set("Grpc-Status", "0")
			})).ServeHTTP(httptest.NewRecorder(), req)
			h := seen.Header
			if got := h.Get("Content-Type"); got != tt.wantCT {
				t.Errorf("Content-Type %q, want %q", got, tt.wantCT)
			}
			if got := h.Get("Te"); got != "trailers" {
				t.Errorf("TE %q", got)
			}
			if got := h.Get("Accept"); got != tt.wantAcc {
				t.Errorf("Accept %q, want %q", got, tt.wantAcc)
			}
			if _, ok := h["X-Grpc-Web"]; ok {
				t.Error("X-Grpc-Web forwarded")
			}
			if h.Get("X-User-Agent") == "" || h.Get("Grpc-Timeout") != "1S" {
				t.Error("end-to-end headers lost")
			}
			if seen.ContentLength != tt.wantCL {
				t.Errorf("ContentLength %d, want %d", seen.ContentLength, tt.wantCL)
			}
			if tt.wantCL < 0 && h.Get("Content-Length") != "" {
				t.Error("stale Content-Length header")
			}
			if !bytes.Equal(body, tt.wantBody) {
				t.Errorf("body: %d bytes, want %d", len(body), len(tt.wantBody))
			}
			if fmt.Sprint(req.Header) != fmt.Sprint(orig) {
				t.Errorf("original request modified: %v", req.Header)
			}
		})
	}
}

func TestNotGRPCWebPassesThrough(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x"))
	req.Header.Set("Content-Type", "application/grpc")
	rec := httptest.NewRecorder()
	w, r, finish := Wrap(rec, req)
	if w != http.ResponseWriter(rec) || r != req || finish() != nil {
		t.Fatal("Wrap changed a plain gRPC request")
	}
	Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r != req {
			t.Error("request replaced")
		}
		w.Header().Set("Trailer", "Grpc-Status")
		w.Write([]byte("raw"))
		w.Header().Set("Grpc-Status", "0")
	})).ServeHTTP(rec, req)
	if rec.Body.String() != "raw" || rec.Result().Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("body %q trailers %v", rec.Body.String(), rec.Result().Trailer)
	}
}

// TestStreamingOverHTTP1 checks, over a real HTTP/1.1 connection, that a
// flushed message reaches the client while the handler still runs.
func TestStreamingOverHTTP1(t *testing.T) {
	for _, ct := range []string{"application/grpc-web", "application/grpc-web-text"} {
		t.Run(ct, func(t *testing.T) {
			release := make(chan struct{})
			srv := httptest.NewServer(Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/grpc")
				w.Write(frame(0, []byte("one")))
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				w.Write(frame(0, []byte("two")))
				w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
			})))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/s/M", nil)
			req.Header.Set("Content-Type", ct)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			first := len(frame(0, []byte("one")))
			if strings.Contains(ct, "text") {
				first = base64.StdEncoding.EncodedLen(first)
			}
			buf := make([]byte, first)
			if _, err := io.ReadFull(resp.Body, buf); err != nil {
				t.Fatalf("first message did not arrive before the handler finished: %v", err)
			}
			close(release)
			rest, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			msgs, tr := splitResponse(t, decodeBody(t, append(buf, rest...), strings.Contains(ct, "text")))
			if len(msgs) != 2 || string(msgs[0]) != "one" || string(msgs[1]) != "two" || tr["grpc-status"][0] != "0" {
				t.Fatalf("messages %q trailer %v", msgs, tr)
			}
		})
	}
}

// ---- real gRPC server behind a proxy ----

func h2cTransport() *http2.Transport {
	return &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// forwardH2C mirrors proxy.Forwarder's h2c path: headers copied, announced
// trailers declared, body copied with a flush per read, then the upstream's
// trailers copied into the header map.
func forwardH2C(tr http.RoundTripper, addr string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+addr+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header
		req.ContentLength = r.ContentLength
		resp, err := tr.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		defer resp.Body.Close()
		h := w.Header()
		for k, vs := range resp.Header {
			h[k] = vs
		}
		for k := range resp.Trailer {
			h.Add("Trailer", k)
		}
		w.WriteHeader(resp.StatusCode)
		buf := make([]byte, 4096)
		for range 1 << 20 {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				break
			}
		}
		for k, vs := range resp.Trailer {
			h[k] = vs
		}
	})
}

func startGRPC(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, interop.NewTestServer())
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRealGRPC(t *testing.T) {
	addr := startGRPC(t)
	tr := h2cTransport()
	t.Cleanup(tr.CloseIdleConnections)
	reverse := func(addr string) http.Handler {
		return &httputil.ReverseProxy{
			Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(&url.URL{Scheme: "http", Host: addr}) },
			Transport:     tr,
			FlushInterval: -1,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				w.WriteHeader(http.StatusBadGateway)
			},
		}
	}
	proxies := []struct {
		name string
		h    func(addr string) http.Handler
	}{
		{"reverseproxy", reverse},
		{"forwardh2c", func(addr string) http.Handler { return forwardH2C(tr, addr) }},
	}
	bigStream := &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}, {Size: 1000}, {Size: 70000}}}
	tests := []struct {
		name     string
		method   string
		reqs     [][]byte // request messages
		header   map[string]string
		upstream string // "" = the gRPC server
		sizes    []int  // payload body sizes of the responses
		status   string
		message  string
		trailer  map[string]string
		respHdr  map[string]string
	}{
		{name: "unary", method: "UnaryCall", reqs: [][]byte{mustMarshal(t, &testgrpc.SimpleRequest{ResponseSize: 1000})}, sizes: []int{1000}, status: "0"},
		{name: "unary metadata", method: "UnaryCall", reqs: [][]byte{mustMarshal(t, &testgrpc.SimpleRequest{ResponseSize: 10})},
			header: map[string]string{"X-Grpc-Test-Echo-Initial": "hello", "X-Grpc-Test-Echo-Trailing-Bin": "AAEC"},
			sizes:  []int{10}, status: "0",
			trailer: map[string]string{"x-grpc-test-echo-trailing-bin": "AAEC"},
			respHdr: map[string]string{"X-Grpc-Test-Echo-Initial": "hello"}},
		{name: "server streaming", method: "StreamingOutputCall", reqs: [][]byte{mustMarshal(t, bigStream)}, sizes: []int{1, 1000, 70000}, status: "0"},
		{name: "unknown method", method: "NoSuchMethod", reqs: [][]byte{nil}, status: "12"},
		{name: "unimplemented call", method: "UnimplementedCall", reqs: [][]byte{mustMarshal(t, &testgrpc.Empty{})}, status: "12"},
		{name: "status code and message", method: "UnaryCall",
			reqs:   [][]byte{mustMarshal(t, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: 2, Message: "test"}})},
			status: "2", message: "test"},
		{name: "upstream down", method: "UnaryCall", reqs: [][]byte{mustMarshal(t, &testgrpc.SimpleRequest{})}, upstream: closedAddr(t), status: "14"},
	}
	for _, px := range proxies {
		upstreams := map[string]*httptest.Server{}
		gw := func(target string) *httptest.Server {
			if s, ok := upstreams[target]; ok {
				return s
			}
			s := httptest.NewServer(Handler(px.h(target)))
			t.Cleanup(s.Close)
			upstreams[target] = s
			return s
		}
		for _, tt := range tests {
			for _, ct := range []string{"application/grpc-web", "application/grpc-web+proto", "application/grpc-web-text", "application/grpc-web-text+proto"} {
				t.Run(px.name+"/"+tt.name+"/"+ct, func(t *testing.T) {
					target := addr
					if tt.upstream != "" {
						target = tt.upstream
					}
					srv := gw(target)
					text := strings.Contains(ct, "-text")
					var body []byte
					for _, m := range tt.reqs {
						f := frame(0, m)
						if text {
							// Each message as its own padded base64 chunk,
							// the first split in two.
							h := len(f) / 2
							body = append(body, chunkedB64(f[:h], 0)...)
							body = append(body, chunkedB64(f[h:], 0)...)
						} else {
							body = append(body, f...)
						}
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/grpc.testing.TestService/"+tt.method, bytes.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					req.Header.Set("Content-Type", ct)
					req.Header.Set("X-Grpc-Web", "1")
					if text {
						req.Header.Set("Accept", "application/grpc-web-text")
					}
					for k, v := range tt.header {
						req.Header.Set(k, v)
					}
					resp, err := srv.Client().Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					raw, err := io.ReadAll(resp.Body)
					if err != nil {
						t.Fatal(err)
					}
					if resp.StatusCode != 200 || resp.ProtoMajor != 1 {
						t.Fatalf("%s %d, want HTTP/1.x 200", resp.Proto, resp.StatusCode)
					}
					if got := resp.Header.Get("Content-Type"); got != ct {
						t.Errorf("Content-Type %q, want %q", got, ct)
					}
					if v := resp.Header.Get("Grpc-Status"); v != "" {
						t.Errorf("grpc-status %q left in headers", v)
					}
					if len(resp.Trailer) != 0 {
						t.Errorf("HTTP trailers %v", resp.Trailer)
					}
					for k, v := range tt.respHdr {
						if got := resp.Header.Get(k); got != v {
							t.Errorf("header %s = %q, want %q", k, got, v)
						}
					}
					msgs, trailer := splitResponse(t, decodeBody(t, raw, text))
					if got := trailer["grpc-status"]; len(got) != 1 || got[0] != tt.status {
						t.Fatalf("grpc-status %v, want %s (trailer %v)", got, tt.status, trailer)
					}
					if tt.message != "" {
						if got := trailer["grpc-message"]; len(got) != 1 || got[0] != tt.message {
							t.Errorf("grpc-message %v, want %q", got, tt.message)
						}
					}
					for k, v := range tt.trailer {
						if got := trailer[k]; len(got) != 1 || got[0] != v {
							t.Errorf("trailer %s = %v, want %q", k, got, v)
						}
					}
					if len(msgs) != len(tt.sizes) {
						t.Fatalf("%d messages, want %d", len(msgs), len(tt.sizes))
					}
					for i, m := range msgs {
						var n int
						if tt.method == "UnaryCall" {
							var r testgrpc.SimpleResponse
							if err := proto.Unmarshal(m, &r); err != nil {
								t.Fatal(err)
							}
							n = len(r.GetPayload().GetBody())
						} else {
							var r testgrpc.StreamingOutputCallResponse
							if err := proto.Unmarshal(m, &r); err != nil {
								t.Fatal(err)
							}
							n = len(r.GetPayload().GetBody())
						}
						if n != tt.sizes[i] {
							t.Errorf("message %d: payload %d bytes, want %d", i, n, tt.sizes[i])
						}
					}
				})
			}
		}
	}
}

// ---- fuzz ----

// FuzzDecodeText checks the streaming -text request decoder against the
// group-by-group reference for any input and read pattern; it must never
// panic.
func FuzzDecodeText(f *testing.F) {
	f.Add([]byte(""), uint8(1), uint8(1))
	f.Add([]byte("QUJD"), uint8(1), uint8(3))
	f.Add([]byte("QQ==QUI=QUJD"), uint8(3), uint8(2))
	f.Add(chunkedB64(frame(0, pattern(300)), 7), uint8(5), uint8(64))
	f.Add(chunkedB64(pattern(5000), 1000), uint8(255), uint8(255))
	f.Add([]byte("QUJDQU"), uint8(2), uint8(1))
	f.Add([]byte("QQ=A\n"), uint8(4), uint8(4))
	f.Fuzz(func(t *testing.T, in []byte, readSize, bufSize uint8) {
		rs := int(readSize)%64 + 1
		if readSize > 200 {
			rs = 8192
		}
		d := &textDecoder{src: &stepReader{data: in, size: rs}}
		got, err := readAllStep(d, int(bufSize)+1)
		want, werr := refDecode(in)
		if (err != nil) != (werr != nil) {
			t.Fatalf("decoder err %v, reference err %v", err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("decoded %x, reference %x", got, want)
		}
	})
}

// FuzzEncodeText checks that any sequence of writes and flushes of a -text
// response decodes to the bytes written plus the trailer frame.
func FuzzEncodeText(f *testing.F) {
	f.Add([]byte("hello world"), []byte{1, 0, 2, 5})
	f.Add(pattern(5000), []byte{255, 0, 0, 3, 200})
	f.Fuzz(func(t *testing.T, data, plan []byte) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/s/M", nil)
		req.Header.Set("Content-Type", "application/grpc-web-text")
		w, _, finish := Wrap(rec, req)
		w.Header().Set("Content-Type", "application/grpc")
		rest := data
		for _, p := range plan {
			if p == 0 {
				w.(http.Flusher).Flush()
				continue
			}
			n := min(int(p), len(rest))
			w.Write(rest[:n])
			rest = rest[n:]
		}
		w.Write(rest)
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
		if err := finish(); err != nil {
			t.Fatal(err)
		}
		got, err := refDecode(rec.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		want := append(bytes.Clone(data), appendTrailerFrame(nil, http.Header{"Grpc-Status": {"0"}})...)
		if !bytes.Equal(got, want) {
			t.Fatalf("round trip differs")
		}
	})
}
