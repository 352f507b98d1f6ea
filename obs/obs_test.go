package obs

import "testing"

// TestMemo: each sink key gets its own slot, the same one every time; a
// slot outlives Reset; keys past the slots get none.
func TestMemo(t *testing.T) {
	var r Request
	var keys [memoSlots + 1]MemoKey
	for i := range memoSlots {
		*r.Memo(&keys[i]) = i
	}
	r.Path, r.Status = "/x", 200
	r.Reset()
	if r.Path != "" || r.Status != 0 || r.Rule != -1 {
		t.Errorf("Reset kept fields: %+v", r)
	}
	for i := range memoSlots {
		if got := *r.Memo(&keys[i]); got != i {
			t.Errorf("slot %d holds %v after Reset, want %d", i, got, i)
		}
	}
	if s := r.Memo(&keys[memoSlots]); s != nil {
		t.Errorf("key past %d slots got a slot", memoSlots)
	}
	// A copy has its own slots.
	c := r
	*c.Memo(&keys[0]) = "copy"
	if got := *r.Memo(&keys[0]); got != 0 {
		t.Errorf("writing a copy's slot changed the original's: %v", got)
	}
}

// TestSame: Same is ==, whether or not the strings share their bytes.
func TestSame(t *testing.T) {
	base := "default/web"
	tests := []struct {
		a, b string
		want bool
	}{
		{base, base, true},
		{base, string([]byte(base)), true}, // equal, other bytes
		{base, base[:7], false},            // same address, other length
		{base[:7], "default", true},
		{base, "default/wex", false},
		{"", "", true},
		{"", base[:0], true},
		{"a", "", false},
	}
	for _, tt := range tests {
		if got := Same(tt.a, tt.b); got != tt.want {
			t.Errorf("Same(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
