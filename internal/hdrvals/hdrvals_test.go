package hdrvals

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestArenaTake(t *testing.T) {
	var a Arena
	first := a.Take(3)
	if len(first) != 3 || cap(first) != 3 {
		t.Fatalf("Take(3): len %d cap %d, want 3 and 3", len(first), cap(first))
	}
	first[0], first[1], first[2] = "a", "b", "c"
	second := a.Take(2)
	second[0] = "d"
	// An append to a full slice must copy, never write into the next one.
	grown := append(first[:1:1], "x")
	if first[1] != "b" || second[0] != "d" || grown[1] != "x" {
		t.Fatalf("slices overlap: first %q second %q grown %q", first, second, grown)
	}
	// More than the array holds: a new array, earlier slices untouched.
	big := a.Take(minArena * 3)
	if len(big) != minArena*3 || first[0] != "a" || second[0] != "d" {
		t.Fatalf("growing lost values: big len %d, first %q, second %q", len(big), first, second)
	}
}

func TestArenaResetReuses(t *testing.T) {
	var a Arena
	s := a.Take(4)
	s[0] = "secret"
	a.Reset()
	if s[0] != "" {
		t.Fatalf("Reset kept %q reachable", s[0])
	}
	again := a.Take(4)
	if &again[0] != &s[0] {
		t.Fatal("Reset did not reuse the array")
	}
	if allocs := testing.AllocsPerRun(100, func() { a.Reset(); a.Take(8); a.Take(8) }); allocs != 0 {
		t.Fatalf("Take after Reset allocates %v times, want 0", allocs)
	}
	a.Release()
	if a.buf != nil || a.used != 0 {
		t.Fatal("Release kept the array")
	}
}

type arenaWriter struct {
	http.ResponseWriter
	a    Arena
	memo any
}

func (w *arenaWriter) HeaderValues(n int) []string { return w.a.Take(n) }
func (w *arenaWriter) ConnMemo() *any              { return &w.memo }

// valuesWriter has value storage but no memo, as an HTTP/2 stream.
type valuesWriter struct {
	http.ResponseWriter
	a Arena
}

func (w *valuesWriter) HeaderValues(n int) []string { return w.a.Take(n) }

type wrapper struct{ http.ResponseWriter }

func (w wrapper) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestTake(t *testing.T) {
	aw := &arenaWriter{ResponseWriter: httptest.NewRecorder()}
	vw := &valuesWriter{ResponseWriter: httptest.NewRecorder()}
	tests := []struct {
		name  string
		w     http.ResponseWriter
		arena *Arena // where Take's values come from; nil: a new slice
		memo  *any   // the memo slot Find finds
	}{
		{name: "source", w: aw, arena: &aw.a, memo: &aw.memo},
		{name: "wrapped source", w: wrapper{wrapper{aw}}, arena: &aw.a, memo: &aw.memo},
		{name: "values, no memo", w: vw, arena: &vw.a},
		{name: "wrapped values, no memo", w: wrapper{vw}, arena: &vw.a},
		{name: "plain writer", w: httptest.NewRecorder()},
		{name: "wrapped plain writer", w: wrapper{httptest.NewRecorder()}},
		{name: "nil", w: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			beforeA, beforeV := aw.a.used, vw.a.used
			s := Take(tc.w, 2)
			if len(s) != 2 {
				t.Fatalf("len %d, want 2", len(s))
			}
			took := map[*Arena]bool{&aw.a: aw.a.used > beforeA, &vw.a: vw.a.used > beforeV}
			for a, got := range took {
				if got != (a == tc.arena) {
					t.Fatalf("values from arena %p: %v, want them from %p", a, got, tc.arena)
				}
			}
			// The memo slot is found the same way, or is absent.
			var slot *any
			if src := Find(tc.w); src != nil {
				slot = src.ConnMemo()
			}
			if slot != tc.memo {
				t.Fatalf("memo slot = %p, want %p", slot, tc.memo)
			}
		})
	}
}
