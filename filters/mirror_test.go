package filters

import (
	"testing"

	"github.com/meshgate/meshgate/ir"
)

func TestMirror(t *testing.T) {
	b := &ir.Backend{Name: "shadow"}
	if NewMirror(nil) != nil || NewMirror(&ir.Mirror{Percent: 100}) != nil || NewMirror(&ir.Mirror{Target: b}) != nil {
		t.Fatal("a mirror without target or share must compile to nil")
	}
	for _, tc := range []struct {
		percent  float64
		min, max int // copies out of 10,000
	}{
		{100, 10000, 10000},
		{150, 10000, 10000},
		{50, 4500, 5500},
		{1, 30, 200},
	} {
		m := NewMirror(&ir.Mirror{Target: b, Percent: tc.percent})
		n := 0
		for i := 0; i < 10000; i++ {
			if m.Sample() {
				n++
			}
		}
		if n < tc.min || n > tc.max {
			t.Errorf("percent %v: %d of 10000 copied, want %d-%d", tc.percent, n, tc.min, tc.max)
		}
	}
}
