// Package upstream keeps per-backend runtime state that must outlive a config
// reload (load-balancing position today; health and outlier state later),
// keyed by the backend's stable name rather than by config objects.
package upstream

import (
	"sync"
	"sync/atomic"

	"github.com/meshgate/meshgate/ir"
)

// Balancer picks endpoints round-robin. State is keyed by ir.Backend.Name,
// so a reload that keeps a backend keeps its position.
//
// The zero value is ready to use.
type Balancer struct {
	counters sync.Map // backend name -> *atomic.Uint64
}

// Pick returns the next endpoint of b, or nil when b has none.
func (bl *Balancer) Pick(b *ir.Backend) *ir.Endpoint {
	n := len(b.Endpoints)
	switch n {
	case 0:
		return nil
	case 1:
		return &b.Endpoints[0]
	}
	c, ok := bl.counters.Load(b.Name)
	if !ok {
		c, _ = bl.counters.LoadOrStore(b.Name, new(atomic.Uint64))
	}
	i := c.(*atomic.Uint64).Add(1)
	return &b.Endpoints[i%uint64(n)]
}
