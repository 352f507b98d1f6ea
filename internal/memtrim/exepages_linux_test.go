package memtrim

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestReadOnlyMapping(t *testing.T) {
	const exe = "/usr/bin/gateway"
	tests := []struct {
		name   string
		line   string
		lo, hi uintptr
		ok     bool
	}{
		{"code", "00400000-028ad000 r-xp 00000000 fe:00 9994436 /usr/bin/gateway", 0x400000, 0x28ad000, true},
		{"rodata", "028ad000-051a3000 r--p 024ad000 fe:00 9994436 /usr/bin/gateway", 0x28ad000, 0x51a3000, true},
		{"writable data is the process's own", "051a3000-05276000 rw-p 04da3000 fe:00 9994436 /usr/bin/gateway", 0, 0, false},
		{"shared", "00400000-028ad000 r--s 00000000 fe:00 9994436 /usr/bin/gateway", 0, 0, false},
		{"another file", "7f00000-7f10000 r-xp 00000000 fe:00 12 /usr/lib/libc.so.6", 0, 0, false},
		{"anonymous", "297810800000-297811400000 rw-p 00000000 00:00 0", 0, 0, false},
		{"path with a space is not exe", "00400000-028ad000 r-xp 00000000 fe:00 1 /usr/bin/gateway (deleted)", 0, 0, false},
		{"bad range", "zz-028ad000 r-xp 00000000 fe:00 1 /usr/bin/gateway", 0, 0, false},
		{"empty range", "028ad000-028ad000 r-xp 00000000 fe:00 1 /usr/bin/gateway", 0, 0, false},
		{"short", "00400000-028ad000 r-xp", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi, ok := readOnlyMapping(tt.line, exe)
			if lo != tt.lo || hi != tt.hi || ok != tt.ok {
				t.Errorf("readOnlyMapping(%q) = %#x, %#x, %v; want %#x, %#x, %v", tt.line, lo, hi, ok, tt.lo, tt.hi, tt.ok)
			}
		})
	}
}

// TestReleaseExePages checks that the test binary's read-only mappings
// hold fewer resident pages after ReleaseExePages than before, and that
// the process keeps running from them (this test returning is the proof).
func TestReleaseExePages(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	before := residentReadOnlyKB(t, exe)
	advised, err := ReleaseExePages()
	if err != nil {
		t.Fatal(err)
	}
	after := residentReadOnlyKB(t, exe)
	t.Logf("advised %d KB; resident read-only pages of the binary: %d KB before, %d KB after", advised>>10, before, after)
	if advised == 0 {
		t.Fatal("no read-only mapping of the binary was found")
	}
	if after >= before {
		t.Errorf("resident read-only pages: %d KB after release, %d KB before", after, before)
	}
	Release() // the whole trim runs too
}

// residentReadOnlyKB sums the Rss of the binary's private read-only
// mappings from /proc/self/smaps.
func residentReadOnlyKB(t *testing.T, exe string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	total, counting := 0, false
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.Contains(k, " ") && !strings.Contains(k, "-") {
			if counting && k == "Rss" {
				n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				if err != nil {
					t.Fatalf("smaps line %q: %v", line, err)
				}
				total += n
			}
			continue
		}
		_, _, counting = readOnlyMapping(line, exe)
	}
	return total
}
