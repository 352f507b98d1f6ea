package memtrim

import "testing"

// TestReleaseReports: Release says what the process's RSS was before and
// after, and how much of the binary it unmapped.
func TestReleaseReports(t *testing.T) {
	r := Release()
	if r.Err != nil {
		t.Fatalf("Release: %v", r.Err)
	}
	if r.RSSBefore <= 0 || r.RSSAfter <= 0 {
		t.Fatalf("RSS before %d, after %d: want both > 0", r.RSSBefore, r.RSSAfter)
	}
	if r.ExeUnmapped <= 0 {
		t.Fatalf("unmapped %d bytes of the test binary: want > 0", r.ExeUnmapped)
	}
	if r.Took <= 0 {
		t.Fatalf("took %v", r.Took)
	}
}
