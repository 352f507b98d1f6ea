package upstream

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/meshgate/meshgate/ir"
)

const (
	// maglevSize is the Maglev lookup table size: a prime, so every
	// endpoint's permutation visits every slot; ~65k entries keep each
	// endpoint's share within a fraction of a percent of its weight for
	// hundreds of endpoints.
	maglevSize = 65537
	// ringPointsPerWeight is how many ring points a unit of weight gets.
	ringPointsPerWeight = 100
	// maxRingPoints bounds the ring when weights are large.
	maxRingPoints = 1 << 20
)

// choose returns the eps index of the endpoint for in, or -1 when none is
// in rotation.
func (v *view) choose(st *backendState, bl *Balancer, in PickInput) int32 {
	if len(v.active) == 0 {
		return -1
	}
	if in.Prefer != "" && in.Prefer != in.Avoid {
		if i, ok := v.index[in.Prefer]; ok && v.usable[i] {
			return i
		}
	}
	excl := int32(-1)
	if in.Avoid != "" && len(v.active) > 1 {
		if i, ok := v.index[in.Avoid]; ok {
			excl = v.activePos[i]
		}
	}
	var p int32
	switch v.lb {
	case ir.LBRandom:
		p = v.drawWeighted(bl.draw(), excl, -1)
	case ir.LBLeastRequest:
		p = v.pickLeast(bl, excl)
	case ir.LBRingHash:
		if in.HasHash {
			p = v.pickRing(in.Hash, excl)
		} else {
			p = v.drawWeighted(bl.draw(), excl, -1)
		}
	case ir.LBMaglev:
		if in.HasHash {
			p = v.pickMaglev(in.Hash, excl)
		} else {
			p = v.drawWeighted(bl.draw(), excl, -1)
		}
	default:
		p = v.pickRR(st, excl)
	}
	return v.active[p]
}

// pickRR returns the active position at the next round-robin position,
// skipping excl (-1: none).
func (v *view) pickRR(st *backendState, excl int32) int32 {
	for range 4 {
		if p := v.rrAt(st.rr.Add(1)); p != excl {
			return p
		}
	}
	// excl holds most of the schedule: take its neighbour.
	return (excl + 1) % int32(len(v.active))
}

// rrAt maps a round-robin position to an active position.
//
// Unequal weights use interleaved weighted round robin: the schedule is
// rounds r = 0, 1, ..., max weight - 1, and round r visits, heaviest first,
// every endpoint whose weight is above r. Over a full schedule (the sum of
// the weights) each endpoint is visited exactly its weight times, and
// within a round no endpoint repeats. Rounds with the same members form a
// segment (one per distinct weight), so a position is found by binary
// search over at most one segment per endpoint, with no table as long as
// the weights.
func (v *view) rrAt(pos uint64) int32 {
	if v.equal {
		return int32(pos % uint64(len(v.active)))
	}
	pos %= v.rrTotal
	segs := v.rrSegs
	lo, hi := 0, len(segs)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if segs[mid].end > pos {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	s := &segs[lo]
	return v.rrOrder[(pos-s.start)%s.count]
}

// rrSeg is a run of rounds that visit the same rrOrder[:count].
type rrSeg struct {
	start, end, count uint64
}

// buildRR fills the interleaved round-robin schedule of v.
func buildRR(v *view) {
	n := len(v.weights)
	order := make([]int32, n)
	for p := range order {
		order[p] = int32(p)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		return cmp.Compare(v.weights[b], v.weights[a])
	})
	var prev, pos uint64
	for k := n - 1; k >= 0; {
		w := v.weights[order[k]]
		count := uint64(k + 1) // order[:k+1] all weigh at least w
		size := (w - prev) * count
		v.rrSegs = append(v.rrSegs, rrSeg{start: pos, end: pos + size, count: count})
		pos += size
		prev = w
		for k >= 0 && v.weights[order[k]] == w {
			k--
		}
	}
	v.rrOrder = order
	v.rrTotal = pos
}

// drawWeighted returns an active position drawn with probability
// proportional to its weight from r, a uniform random number, excluding
// positions ex1 and ex2 (-1: none). At least one position must remain.
func (v *view) drawWeighted(r uint64, ex1, ex2 int32) int32 {
	if ex1 > ex2 {
		ex1, ex2 = ex2, ex1
	}
	if v.equal {
		n := uint64(len(v.active))
		if ex1 >= 0 {
			n--
		}
		if ex2 >= 0 {
			n--
		}
		x, _ := bits.Mul64(r, n)
		// Skip the excluded positions, lowest first.
		if ex1 >= 0 && x >= uint64(ex1) {
			x++
		}
		if ex2 >= 0 && x >= uint64(ex2) {
			x++
		}
		return int32(x)
	}
	total := v.total
	if ex1 >= 0 {
		total -= v.weights[ex1]
	}
	if ex2 >= 0 {
		total -= v.weights[ex2]
	}
	x, _ := bits.Mul64(r, total)
	if ex1 >= 0 && x >= v.cum[ex1]-v.weights[ex1] {
		x += v.weights[ex1]
	}
	if ex2 >= 0 && x >= v.cum[ex2]-v.weights[ex2] {
		x += v.weights[ex2]
	}
	// First position whose running sum passes x.
	lo, hi := 0, len(v.cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if v.cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return int32(lo)
}

// pickLeast is power of two choices: two distinct endpoints drawn by
// weight, the one with fewer requests in flight wins, the first drawn on a
// tie (so an idle backend is balanced exactly by weight).
func (v *view) pickLeast(bl *Balancer, excl int32) int32 {
	a := v.drawWeighted(bl.draw(), excl, -1)
	left := len(v.active) - 1
	if excl >= 0 {
		left--
	}
	if left < 1 {
		return a
	}
	b := v.drawWeighted(bl.draw(), excl, a)
	if v.eps[v.active[b]].st.inFlight.Load() < v.eps[v.active[a]].st.inFlight.Load() {
		return b
	}
	return a
}

// ringPoint is one point of the hash ring.
type ringPoint struct {
	hash uint64
	pos  int32 // active position
}

// buildRing places ~ringPointsPerWeight points per unit of weight for
// every active endpoint, at hashes derived from its address only, so an
// endpoint keeps its points whatever else changes (ketama).
func buildRing(v *view) []ringPoint {
	scale := float64(ringPointsPerWeight)
	if t := float64(v.total) * scale; t > maxRingPoints {
		scale = maxRingPoints / float64(v.total)
	}
	var pts []ringPoint
	for p, i := range v.active {
		k := max(1, int(math.Round(float64(v.weights[p])*scale)))
		h := HashString(v.eps[i].ep.Address)
		for j := range k {
			pts = append(pts, ringPoint{hash: mix64(h + uint64(j+1)*0x9e3779b97f4a7c15), pos: int32(p)})
		}
	}
	slices.SortFunc(pts, func(a, b ringPoint) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		// Ties (vanishingly rare) go to the lower address, not to
		// whichever endpoint is listed first.
		return cmp.Compare(v.eps[v.active[a.pos]].ep.Address, v.eps[v.active[b.pos]].ep.Address)
	})
	return pts
}

// pickRing returns the endpoint of the first point at or after h, walking
// on past excl.
func (v *view) pickRing(h uint64, excl int32) int32 {
	pts := v.ring
	lo, hi := 0, len(pts)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if pts[mid].hash < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(pts) {
		lo = 0
	}
	for pts[lo].pos == excl {
		if lo++; lo == len(pts) {
			lo = 0
		}
	}
	return pts[lo].pos
}

// buildMaglev fills the Maglev lookup table (Eisenbud et al., NSDI 2016)
// with weights as Envoy does: every endpoint walks its own permutation of
// the slots (offset and skip from its address hash) and takes the next
// free slot in turn, an endpoint of weight w taking a turn in w of every
// max-weight rounds. Removing an endpoint frees only its slots plus a few
// others.
func buildMaglev(v *view) []uint16 {
	n := len(v.active)
	if n == 0 {
		return nil
	}
	if n > math.MaxUint16 {
		n = math.MaxUint16 // more endpoints than slots fit: the rest get none
	}
	type entry struct {
		offset, skip, next, target, weight uint64
	}
	ents := make([]entry, n)
	var maxW uint64
	for p := range n {
		h := HashString(v.eps[v.active[p]].ep.Address)
		ents[p] = entry{
			offset: h % maglevSize,
			skip:   mix64(h^0x5851f42d4c957f2d)%(maglevSize-1) + 1,
			weight: v.weights[p],
		}
		maxW = max(maxW, v.weights[p])
	}
	// Turns go by address, so the table does not depend on the order
	// the config lists endpoints in.
	order := make([]int, n)
	for p := range order {
		order[p] = p
	}
	slices.SortFunc(order, func(a, b int) int {
		return strings.Compare(v.eps[v.active[a]].ep.Address, v.eps[v.active[b]].ep.Address)
	})
	table := make([]uint16, maglevSize)
	taken := make([]bool, maglevSize)
	filled := 0
	for iter := uint64(1); filled < maglevSize; iter++ {
		for _, p := range order {
			if filled == maglevSize {
				break
			}
			e := &ents[p]
			if iter*e.weight < e.target {
				continue
			}
			e.target += maxW
			c := (e.offset + e.skip*e.next) % maglevSize
			for taken[c] {
				e.next++
				c = (e.offset + e.skip*e.next) % maglevSize
			}
			table[c], taken[c] = uint16(p), true
			e.next++
			filled++
		}
	}
	return table
}

// pickMaglev returns the table's endpoint for h, probing on past excl.
func (v *view) pickMaglev(h uint64, excl int32) int32 {
	j := h % maglevSize
	for int32(v.maglev[j]) == excl {
		if j++; j == maglevSize {
			j = 0
		}
	}
	return int32(v.maglev[j])
}
