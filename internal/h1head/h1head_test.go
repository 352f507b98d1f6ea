package h1head

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/textproto"
	"strings"
	"testing"
	"testing/iotest"
)

func TestIntern(t *testing.T) {
	for _, n := range knownNames {
		if c := textproto.CanonicalMIMEHeaderKey(n); c != n {
			t.Errorf("%q is listed but its canonical form is %q", n, c)
		}
		for _, spell := range []string{n, strings.ToLower(n)} {
			got, ok := Intern(spell)
			if !ok || got != n {
				t.Errorf("Intern(%q) = %q, %v; want %q, true", spell, got, ok, n)
			}
			if got, ok := Intern([]byte(spell)); !ok || got != n {
				t.Errorf("Intern([]byte(%q)) = %q, %v; want %q, true", spell, got, ok, n)
			}
		}
	}
	for spell, n := range oddSpellings {
		if got, ok := Intern(spell); !ok || got != n || textproto.CanonicalMIMEHeaderKey(spell) != n {
			t.Errorf("Intern(%q) = %q, %v; want %q, true", spell, got, ok, n)
		}
	}
	for _, unknown := range []string{"", "X-Custom", "content-TYPE", "Content-Type ", "Host:", "hOST"} {
		if got, ok := Intern(unknown); ok {
			t.Errorf("Intern(%q) = %q, true; want not known", unknown, got)
		}
	}
	b := []byte("content-length")
	if n := testing.AllocsPerRun(100, func() { Intern(b) }); n != 0 {
		t.Errorf("Intern allocates %v times", n)
	}
}

// validRef is the definition ValidValue implements.
func validRef(v []byte) bool {
	for _, c := range v {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func TestValidValue(t *testing.T) {
	// Every byte value at every position of values up to 19 bytes long,
	// in a background of printable and obs-text bytes.
	for n := 1; n < 20; n++ {
		for _, bg := range []byte{'a', ' ', 0x80, 0xff, '~'} {
			v := bytes.Repeat([]byte{bg}, n)
			for pos := range n {
				for c := range 256 {
					v[pos] = byte(c)
					if got, want := ValidValue(v), validRef(v); got != want {
						t.Fatalf("ValidValue(%q) = %v, want %v", v, got, want)
					}
					if got := ValidValue(string(v)); got != validRef(v) {
						t.Fatalf("ValidValue(string %q) = %v", v, got)
					}
				}
				v[pos] = bg
			}
		}
	}
	if !ValidValue("") || !ValidValue([]byte(nil)) {
		t.Error("the empty value is valid")
	}
}

func FuzzValidValue(f *testing.F) {
	for _, s := range []string{"", "text/html", "a\tb", "a\x00b", "12345678\x7f", "\x80\xff\x1f"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if got, want := ValidValue(v), validRef(v); got != want {
			t.Fatalf("ValidValue(%q) = %v, want %v", v, got, want)
		}
	})
}

// readLines reads lines until an empty one, as the head parsers do, and
// returns them joined, then what the reader holds after the head.
func readLines(t *testing.T, br *bufio.Reader) (head, rest string, err error) {
	var lr LineReader
	lr.Reset(br)
	var b strings.Builder
	partial := false // the last line was cut at the buffer's size
	for range 1000 {
		line, err := lr.ReadLine()
		b.Write(line)
		if err == bufio.ErrBufferFull {
			partial = true
			continue
		}
		if err != nil {
			return b.String(), "", err
		}
		if !partial && (string(line) == "\n" || string(line) == "\r\n") {
			break
		}
		partial = false
	}
	lr.Done()
	r, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	return b.String(), string(r), nil
}

func TestLineReader(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Long: " + "0123456789012345678901234567890123456789" + "\r\n\r\n"
	const msg = head + "hello"
	cases := []struct {
		name string
		r    func() io.Reader
		size int
	}{
		{"all buffered", func() io.Reader { return strings.NewReader(msg) }, 4096},
		{"one byte a read", func() io.Reader { return iotest.OneByteReader(strings.NewReader(msg)) }, 4096},
		{"half a read", func() io.Reader { return iotest.HalfReader(strings.NewReader(msg)) }, 4096},
		{"lines longer than the buffer", func() io.Reader { return strings.NewReader(msg) }, 16},
		{"small buffer, small reads", func() io.Reader { return iotest.HalfReader(strings.NewReader(msg)) }, 16},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, rest, err := readLines(t, bufio.NewReaderSize(c.r(), c.size))
			if err != nil || got != head || rest != "hello" {
				t.Fatalf("got head %q, rest %q, err %v; want %q, %q", got, rest, err, head, "hello")
			}
		})
	}
	t.Run("truncated", func(t *testing.T) {
		_, _, err := readLines(t, bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nDate: x")))
		if !errors.Is(err, io.EOF) {
			t.Fatalf("err = %v, want EOF", err)
		}
	})
	t.Run("already buffered", func(t *testing.T) {
		// Two heads in one read: the second is cut from the buffer.
		br := bufio.NewReader(strings.NewReader("A: 1\r\n\r\nB: 2\r\n\r\ntail"))
		if h, _, err := readLinesKeep(br); err != nil || h != "A: 1\r\n\r\n" {
			t.Fatalf("first head %q, %v", h, err)
		}
		if br.Buffered() == 0 {
			t.Fatal("want the second head buffered")
		}
		if h, rest, err := readLines(t, br); err != nil || h != "B: 2\r\n\r\n" || rest != "tail" {
			t.Fatalf("second head %q, rest %q, %v", h, rest, err)
		}
	})
}

// TestLineReaderHead: Head gives the lines' bytes when they were all
// buffered at Reset, and nil once one had to be read.
func TestLineReaderHead(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("A: 1\r\n\r\nB: 2\r\n\r\n"))
	br.Peek(1)
	var lr LineReader
	lr.Reset(br)
	headLines(lr.ReadLine)
	lr.Done()
	if got := string(lr.Head()); got != "A: 1\r\n\r\n" {
		t.Fatalf("Head = %q, want the first head", got)
	}
	br = bufio.NewReader(iotest.OneByteReader(strings.NewReader("A: 1\r\n\r\n")))
	lr.Reset(br)
	headLines(lr.ReadLine)
	if got := lr.Head(); got != nil {
		t.Fatalf("Head = %q for a head read in pieces, want nil", got)
	}
}

// readLinesKeep is readLines without reading the rest.
func readLinesKeep(br *bufio.Reader) (string, string, error) {
	var lr LineReader
	lr.Reset(br)
	lines, err := headLines(lr.ReadLine)
	lr.Done()
	return strings.Join(lines, ""), "", err
}

// FuzzLineReader checks LineReader against bufio.Reader.ReadSlice for any
// input, buffer size and read sizes.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"), uint8(16), true)
	f.Add([]byte("x\n\ny\n"), uint8(0), false)
	f.Fuzz(func(t *testing.T, in []byte, size uint8, half bool) {
		mk := func() *bufio.Reader {
			var r io.Reader = bytes.NewReader(in)
			if half {
				r = iotest.HalfReader(r)
			}
			return bufio.NewReaderSize(r, 16+int(size))
		}
		want := mk()
		wantLines, wantErr := headLines(func() ([]byte, error) { return want.ReadSlice('\n') })
		wantRest, _ := io.ReadAll(want)

		got := mk()
		var lr LineReader
		lr.Reset(got)
		gotLines, gotErr := headLines(lr.ReadLine)
		lr.Done()
		head := string(lr.Head()) // before the reader reads again
		gotRest, _ := io.ReadAll(got)
		if strings.Join(gotLines, "") != strings.Join(wantLines, "") || gotErr != wantErr || !bytes.Equal(gotRest, wantRest) {
			t.Fatalf("LineReader: %q %v rest %q; ReadSlice: %q %v rest %q", gotLines, gotErr, gotRest, wantLines, wantErr, wantRest)
		}
		if lr.Head() != nil && head != strings.Join(gotLines, "") {
			t.Fatalf("Head %q, lines %q", head, gotLines)
		}
	})
}

// headLines reads lines with next, as ReadSlice('\n') returns them, up
// to an empty line or an error other than ErrBufferFull.
func headLines(next func() ([]byte, error)) (lines []string, err error) {
	for {
		line, err := next()
		lines = append(lines, string(line))
		if err != nil && err != bufio.ErrBufferFull {
			return lines, err
		}
		if err == nil && (string(line) == "\n" || string(line) == "\r\n") {
			return lines, nil
		}
	}
}

func BenchmarkLineReader(b *testing.B) {
	head := []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Fri, 27 Nov 2026 13:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 615\r\nLast-Modified: Tue, 01 Jan 2026 00:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"abc-267\"\r\nAccept-Ranges: bytes\r\n\r\n")
	rd := bytes.NewReader(head)
	br := bufio.NewReader(rd)
	var lr LineReader
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(head)
		br.Reset(rd)
		br.Peek(1)
		lr.Reset(br)
		for {
			line, _ := lr.ReadLine()
			if len(line) <= 2 {
				break
			}
		}
		lr.Done()
	}
}

var benchValues = [][]byte{[]byte("nginx/1.22.1"), []byte("Fri, 27 Nov 2026 13:00:00 GMT"), []byte("text/html"), []byte("615"), []byte("Tue, 01 Jan 2026 00:00:00 GMT"), []byte("\"6554ee6f-267\""), []byte("bytes")}

func BenchmarkValidValue(b *testing.B) {
	for b.Loop() {
		for _, v := range benchValues {
			if !ValidValue(v) {
				b.Fatal(v)
			}
		}
	}
}

func BenchmarkValidValueBytewise(b *testing.B) {
	for b.Loop() {
		for _, v := range benchValues {
			if !validRef(v) {
				b.Fatal(v)
			}
		}
	}
}
