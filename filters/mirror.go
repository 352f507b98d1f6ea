package filters

import (
	"math/rand/v2"

	"github.com/meshgate/meshgate/ir"
)

// Mirror is a compiled RequestMirror filter: which backend gets copies and
// which share of requests is copied.
type Mirror struct {
	// Target is the backend copies go to; never nil (unresolved mirrors
	// are dropped at compile time).
	Target *ir.Backend
	// threshold is Percent scaled to [0, 1<<53]; a request is copied when a
	// uniform draw is below it.
	threshold uint64
}

// NewMirror compiles m, or returns nil when there is nothing to mirror to
// or the share is zero.
func NewMirror(m *ir.Mirror) *Mirror {
	if m == nil || m.Target == nil || m.Percent <= 0 {
		return nil
	}
	p := min(m.Percent, 100)
	return &Mirror{Target: m.Target, threshold: uint64(p / 100 * (1 << 53))}
}

// Sample reports whether this request is one of the share to copy.
func (m *Mirror) Sample() bool {
	return m.threshold >= 1<<53 || rand.Uint64N(1<<53) < m.threshold
}
