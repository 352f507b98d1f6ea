package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func v2Header(cmd, fam byte, body []byte) []byte {
	b := append([]byte{}, proxyV2Sig...)
	b = append(b, 0x20|cmd, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

func TestReadProxyHeader(t *testing.T) {
	v4 := append(append(append([]byte{203, 0, 113, 7}, 10, 0, 0, 1), 0x30, 0x39), 0, 80) // 203.0.113.7:12345 -> 10.0.0.1:80
	v6 := make([]byte, 36)
	copy(v6, net.ParseIP("2001:db8::5").To16())
	copy(v6[16:], net.ParseIP("2001:db8::1").To16())
	binary.BigEndian.PutUint16(v6[32:], 4444)
	tlv := append(append([]byte{}, v4...), 0x04, 0, 2, 'o', 'k') // a NOOP TLV
	for _, tc := range []struct {
		name, in, want string // want "" keeps the peer; "err" refuses
	}{
		{"v1 tcp4", "PROXY TCP4 203.0.113.7 10.0.0.1 12345 80\r\nGET", "203.0.113.7:12345"},
		{"v1 tcp6", "PROXY TCP6 2001:db8::5 2001:db8::1 4444 443\r\n", "[2001:db8::5]:4444"},
		{"v1 unknown", "PROXY UNKNOWN\r\n", ""},
		{"v1 unknown with addresses", "PROXY UNKNOWN ffff:f...f ffff:f...f 65535 65535\r\n", ""},
		{"v1 family mismatch", "PROXY TCP4 2001:db8::5 10.0.0.1 1 2\r\n", "err"},
		{"v1 bad port", "PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n", "err"},
		{"v1 leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n", "err"},
		{"v1 no CR", "PROXY TCP4 1.2.3.4 5.6.7.8 1 80\n", "err"},
		{"v1 too long", "PROXY TCP4 " + strings.Repeat("1", 200) + "\r\n", "err"},
		{"v1 too few fields", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "err"},
		{"plain HTTP", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "err"},
		{"TLS hello", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03abc", "err"},
		{"short", "PROX", "err"},
		{"v2 tcp4", string(v2Header(1, 0x11, v4)), "203.0.113.7:12345"},
		{"v2 tcp4 with TLV", string(v2Header(1, 0x11, tlv)), "203.0.113.7:12345"},
		{"v2 tcp6", string(v2Header(1, 0x21, v6)), "[2001:db8::5]:4444"},
		{"v2 local", string(v2Header(0, 0x00, nil)), ""},
		{"v2 unspec", string(v2Header(1, 0x00, nil)), ""},
		{"v2 short ipv4", string(v2Header(1, 0x11, v4[:8])), "err"},
		{"v2 bad version", string(append(append([]byte{}, proxyV2Sig...), 0x31, 0x11, 0, 0)), "err"},
		{"v2 bad command", string(v2Header(5, 0x11, v4)), "err"},
		{"v2 truncated", string(v2Header(1, 0x11, v4))[:20], "err"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.in), 256)
			a, err := readProxyHeader(br)
			switch {
			case tc.want == "err":
				if err == nil {
					t.Fatalf("accepted, address %v", a)
				}
			case err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "" && a != nil:
				t.Fatalf("address %v, want the peer's", a)
			case tc.want != "" && (a == nil || a.String() != tc.want):
				t.Fatalf("address %v, want %s", a, tc.want)
			}
		})
	}
}

// TestProxyConn: the address comes from the header and the bytes after it
// reach the reader untouched; a connection without a header is refused
// within the deadline.
func TestProxyConn(t *testing.T) {
	a, b := net.Pipe()
	go func() {
		a.Write([]byte("PROXY TCP4 198.51.100.9 10.0.0.1 5555 80\r\nGET / HTTP/1.1\r\n"))
		a.Close()
	}()
	c, err := acceptProxy(b, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.RemoteAddr().String() != "198.51.100.9:5555" {
		t.Fatalf("remote %v", c.RemoteAddr())
	}
	rest, _ := io.ReadAll(c)
	if string(rest) != "GET / HTTP/1.1\r\n" {
		t.Fatalf("rest %q", rest)
	}
	x, y := net.Pipe()
	defer x.Close()
	start := time.Now()
	if _, err := acceptProxy(y, 100*time.Millisecond); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("silent client: %v after %v", err, time.Since(start))
	}
}

func FuzzReadProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 10.0.0.1 12345 80\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2Header(1, 0x11, []byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2}))
	f.Add(v2Header(1, 0x21, make([]byte, 36)))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 256)
		a, err := readProxyHeader(br)
		if err != nil {
			return
		}
		if a != nil {
			if _, _, e := net.SplitHostPort(a.String()); e != nil {
				t.Fatalf("address %q", a.String())
			}
		}
		// Nothing past the header is consumed beyond what the header
		// declares: what is left is a suffix of the input.
		rest, _ := io.ReadAll(br)
		if !bytes.HasSuffix(in, rest) {
			t.Fatalf("rest is not a suffix of the input")
		}
	})
}
