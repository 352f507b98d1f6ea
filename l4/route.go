package l4

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/meshgate/meshgate/ir"
)

// route is one compiled L4 route rule: the ir it came from plus the running
// weight totals that make a weighted pick one random number and a binary
// search.
type route struct {
	ir *ir.L4Route
	// host names the listener host(s) the route was found under, for logs.
	host string
	// cum holds the running totals of the positive weights; pick maps
	// each entry to its index in ir.Backends.
	cum   []int64
	pick  []int
	total int64
}

func newRoute(r *ir.L4Route, host string) *route {
	rt := &route{ir: r, host: host}
	for i, b := range r.Backends {
		if b.Weight > 0 {
			rt.total += int64(b.Weight)
			rt.cum = append(rt.cum, rt.total)
			rt.pick = append(rt.pick, i)
		}
	}
	return rt
}

// backend picks one of the route's backends in proportion to its weight.
// randN returns a uniform value in [0, n) (rand.Int64N; tests pass a fixed
// function). It reports false when no backend has a positive weight. The
// picked backend's Target may still be nil (an invalid backendRef).
func (r *route) backend(randN func(n int64) int64) (*ir.WeightedBackend, bool) {
	if r == nil || r.total <= 0 {
		return nil, false
	}
	v := randN(r.total)
	// The first running total greater than v owns v.
	i, _ := slices.BinarySearch(r.cum, v+1)
	return &r.ir.Backends[r.pick[i]], true
}

// olderFirst orders routes claiming the same connections: oldest
// CreationTimestamp, then "namespace/name", then rule index, as Gateway API
// resolves conflicts.
func olderFirst(a, b *ir.L4Route) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return cmp.Compare(a.RuleIndex, b.RuleIndex)
}

// routeID names a route rule in logs: "namespace/name#rule".
func (r *route) id() string {
	if r == nil {
		return ""
	}
	return r.ir.Name + "#" + strconv.Itoa(r.ir.RuleIndex)
}
