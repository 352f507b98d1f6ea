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
