package l4

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// realClientHello returns the first TLS record crypto/tls writes as a
// client with cfg: its ClientHello.
func realClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c, s := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tls.Client(c, cfg).Handshake() // fails once s is closed
	}()
	defer func() { s.Close(); c.Close(); <-done }()
	s.SetReadDeadline(time.Now().Add(ioTimeout))
	hdr := make([]byte, recordHeaderLen)
	if _, err := io.ReadFull(s, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(s, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// realHellos are ClientHellos of several client settings with the SNI each
// carries.
func realHellos(t testing.TB) []struct {
	name, sni string
	hello     []byte
} {
	long := strings.Repeat("abcdefghi.", 20) + "example.com"
	cfgs := []struct {
		name, sni string
		cfg       *tls.Config
	}{
		{"default", "a.example.com", &tls.Config{ServerName: "a.example.com"}},
		{"upper case", "b.example.com", &tls.Config{ServerName: "B.Example.COM"}},
		{"no sni", "", &tls.Config{InsecureSkipVerify: true}},
		{"ip address sends no sni", "", &tls.Config{ServerName: "127.0.0.1"}},
		{"tls12 alpn", "c.example.com", &tls.Config{ServerName: "c.example.com", MaxVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}},
		{"long name", long, &tls.Config{ServerName: long}},
	}
	var out []struct {
		name, sni string
		hello     []byte
	}
	for _, c := range cfgs {
		out = append(out, struct {
			name, sni string
			hello     []byte
		}{c.name, c.sni, realClientHello(t, c.cfg)})
	}
	return out
}

// refragment splits the handshake message of a single-record hello into
// records of at most size bytes.
func refragment(hello []byte, size int) []byte {
	msg := hello[recordHeaderLen:]
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

func TestParseRealClientHellos(t *testing.T) {
	for _, h := range realHellos(t) {
		t.Run(h.name, func(t *testing.T) {
			got, err := parseClientHello(h.hello)
			if err != nil || got != h.sni {
				t.Fatalf("got %q, %v; want %q", got, err, h.sni)
			}
			// Every proper prefix asks for more.
			for i := range len(h.hello) {
				if _, err := parseClientHello(h.hello[:i]); !errors.Is(err, errIncomplete) {
					t.Fatalf("prefix of %d bytes: err %v, want errIncomplete", i, err)
				}
			}
			// Trailing bytes (early data, the next record) are ignored.
			if got, err := parseClientHello(append(bytes.Clone(h.hello), 23, 3, 3, 0, 1, 0)); err != nil || got != h.sni {
				t.Errorf("with trailing record: got %q, %v", got, err)
			}
			// The ClientHello split over several records.
			for _, size := range []int{1, 7, 100} {
				frag := refragment(h.hello, size)
				if len(frag) > maxClientHelloBytes {
					continue
				}
				if got, err := parseClientHello(frag); err != nil || got != h.sni {
					t.Errorf("records of %d bytes: got %q, %v", size, got, err)
				}
				// Fed as it arrives, byte by byte, through the reader.
				buf, got, err := readClientHello(iotest.OneByteReader(bytes.NewReader(frag)))
				if err != nil || got != h.sni || !bytes.Equal(buf, frag) {
					t.Errorf("records of %d bytes read one by one: got %q, %v, %d bytes", size, got, err, len(buf))
				}
			}
		})
	}
}

// Synthetic ClientHellos for the malformed cases.

func helloBody(exts []byte) []byte {
	b := []byte{3, 3}
	b = append(b, make([]byte, 32)...) // random
	b = append(b, 0)                   // session id
	b = append(b, 0, 2, 0x13, 0x01)    // cipher suites
	b = append(b, 1, 0)                // compression
	if exts != nil {
		b = append(b, byte(len(exts)>>8), byte(len(exts)))
		b = append(b, exts...)
	}
	return b
}

func handshake(typ byte, body []byte) []byte {
	n := len(body)
	return append([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

func record(typ byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{typ, 3, 1, byte(n >> 8), byte(n)}, payload...)
}

func hello(exts []byte) []byte {
	return record(recordTypeHandshake, handshake(handshakeTypeClientHello, helloBody(exts)))
}

func ext(typ uint16, data []byte) []byte {
	return append([]byte{byte(typ >> 8), byte(typ), byte(len(data) >> 8), byte(len(data))}, data...)
}

func sniExt(entries ...[]byte) []byte {
	var list []byte
	for _, e := range entries {
		list = append(list, e...)
	}
	return ext(extensionServerName, append([]byte{byte(len(list) >> 8), byte(len(list))}, list...))
}

func hostEntry(typ byte, name string) []byte {
	return append([]byte{typ, byte(len(name) >> 8), byte(len(name))}, name...)
}

func TestParseClientHelloCases(t *testing.T) {
	huge := handshake(handshakeTypeClientHello, make([]byte, maxRecordPayload))
	tests := []struct {
		name    string
		data    []byte
		want    string
		wantErr string // "" for success; "incomplete" for errIncomplete
	}{
		{"sni", hello(sniExt(hostEntry(0, "Api.Example.com"))), "api.example.com", ""},
		{"no extensions", hello(nil), "", ""},
		{"other extensions only", hello(ext(16, []byte{0, 3, 2, 'h', '2'})), "", ""},
		{"non host_name entry skipped", hello(sniExt(hostEntry(7, "x"), hostEntry(0, "b.test"))), "b.test", ""},
		{"first host_name wins", hello(sniExt(hostEntry(0, "a.test"), hostEntry(0, "b.test"))), "a.test", ""},
		{"empty", nil, "", "incomplete"},
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "", "not a TLS handshake"},
		{"sslv2", []byte{0x80, 0x2e, 1, 3, 1, 0, 0x15}, "", "not a TLS handshake"},
		{"alert record", record(21, []byte{2, 40}), "", "not a TLS handshake"},
		{"bad version", []byte{22, 2, 0, 0, 4}, "", "record version"},
		{"zero length record", []byte{22, 3, 1, 0, 0}, "", "record length"},
		{"oversized record", []byte{22, 3, 1, 0x40, 1}, "", "record length"},
		{"server hello", record(22, handshake(2, helloBody(nil))), "", "not ClientHello"},
		{"message larger than bound", record(22, huge[:100]), "", "larger than"},
		{"truncated body", record(22, handshake(1, []byte{3, 3, 0})), "", "truncated"},
		{"long session id", record(22, handshake(1, append(append([]byte{3, 3}, make([]byte, 32)...), 33))), "", "session id"},
		{"odd cipher suites", record(22, handshake(1, append(append([]byte{3, 3}, make([]byte, 32)...), 0, 0, 3, 1, 2, 3, 1, 0))), "", "cipher suites"},
		{"no compression", record(22, handshake(1, append(append([]byte{3, 3}, make([]byte, 32)...), 0, 0, 2, 0x13, 1, 0))), "", "compression"},
		{"extensions length short", record(22, handshake(1, append(helloBody(nil), 0, 9, 0, 0))), "", "extensions length"},
		{"extensions length long", record(22, handshake(1, append(helloBody(nil), 0, 1, 0, 0))), "", "extensions length"},
		{"truncated extension", hello([]byte{0, 16, 0, 9, 1}), "", "truncated extension"},
		{"duplicate sni", hello(append(sniExt(hostEntry(0, "a.test")), sniExt(hostEntry(0, "b.test"))...)), "", "duplicate"},
		{"empty sni list", hello(ext(0, []byte{0, 0})), "", "server_name"},
		{"empty sni extension", hello(ext(0, nil)), "", "server_name"},
		{"truncated sni entry", hello(ext(0, []byte{0, 4, 0, 0, 9, 'a'})), "", "truncated server_name"},
		{"empty host name", hello(sniExt(hostEntry(0, ""))), "", "length 0"},
		{"trailing dot", hello(sniExt(hostEntry(0, "a.test."))), "", "empty label"},
		{"double dot", hello(sniExt(hostEntry(0, "a..test"))), "", "empty label"},
		{"space", hello(sniExt(hostEntry(0, "a test"))), "", "byte"},
		{"nul", hello(sniExt(hostEntry(0, "a\x00.test"))), "", "byte"},
		{"wildcard", hello(sniExt(hostEntry(0, "*.test"))), "", "byte"},
		{"non ascii", hello(sniExt(hostEntry(0, "bücher.test"))), "", "byte"},
		{"too long", hello(sniExt(hostEntry(0, strings.Repeat("a", 254)))), "", "length 254"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseClientHello(tc.data)
			switch {
			case tc.wantErr == "incomplete":
				if !errors.Is(err, errIncomplete) {
					t.Fatalf("err %v, want errIncomplete", err)
				}
			case tc.wantErr == "":
				if err != nil || got != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
			default:
				if err == nil || errors.Is(err, errIncomplete) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error about %q", got, err, tc.wantErr)
				}
			}
		})
	}
}

func TestReadClientHelloBounds(t *testing.T) {
	// A valid ClientHello split into 1-byte records needs 6 bytes per
	// message byte: past the bound long before it ends.
	big := hello(sniExt(hostEntry(0, strings.Repeat("a", 200)), hostEntry(9, strings.Repeat("b", 3000))))
	frag := refragment(big, 1)
	if _, _, err := readClientHello(bytes.NewReader(frag)); !errors.Is(err, errHelloTooLarge) {
		t.Errorf("fragmented past the bound: err %v, want errHelloTooLarge", err)
	}
	// A stream that ends early.
	full := hello(sniExt(hostEntry(0, "a.test")))
	if _, _, err := readClientHello(bytes.NewReader(full[:20])); !errors.Is(err, io.EOF) {
		t.Errorf("short stream: err %v, want EOF", err)
	}
	// Bytes after the ClientHello in the same read are kept for replay.
	withMore := append(bytes.Clone(full), 1, 2, 3)
	buf, sni, err := readClientHello(bytes.NewReader(withMore))
	if err != nil || sni != "a.test" || !bytes.Equal(buf, withMore) {
		t.Errorf("got %q, %v, %d bytes; want a.test and all %d bytes", sni, err, len(buf), len(withMore))
	}
}

func FuzzParseClientHello(f *testing.F) {
	for _, h := range realHellos(f) {
		f.Add(h.hello)
		f.Add(refragment(h.hello, 50))
	}
	f.Add(hello(sniExt(hostEntry(0, "a.test"))))
	f.Add(hello(nil))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sni, err := parseClientHello(data)
		if err != nil && sni != "" {
			t.Fatalf("error %v with name %q", err, sni)
		}
		// Feeding the same bytes in two steps gives the same answer.
		if len(data) > 1 {
			var a helloAssembler
			_, err1 := a.feed(data[:len(data)/2])
			if err1 == nil || !errors.Is(err1, errIncomplete) {
				return // decided on the first half already
			}
			sni2, err2 := a.feed(data)
			if sni2 != sni || (err2 == nil) != (err == nil) {
				t.Fatalf("split feed: %q, %v; whole: %q, %v", sni2, err2, sni, err)
			}
		}
	})
}
