package router

import (
	"cmp"
	"strings"
)

// comparePrecedence orders two routes of the same hostname bucket: negative
// when a takes precedence over b. The criteria are those of the
// HTTPRouteRule.Matches doc comment, in order (see Compile).
func comparePrecedence(a, b *Route) int {
	am, bm := &a.m, &b.m
	if c := cmp.Compare(am.kind, bm.kind); c != 0 {
		return c // Exact, then PathPrefix, then RegularExpression
	}
	if c := cmp.Compare(bm.pathLen, am.pathLen); c != 0 {
		return c // longer path value first
	}
	if c := cmp.Compare(b2i(bm.method != ""), b2i(am.method != "")); c != 0 {
		return c // a method match first
	}
	if c := cmp.Compare(len(bm.headers), len(am.headers)); c != 0 {
		return c
	}
	if c := cmp.Compare(len(bm.query), len(am.query)); c != 0 {
		return c
	}
	if c := a.IR.CreationTimestamp.Compare(b.IR.CreationTimestamp); c != 0 {
		return c // oldest first
	}
	if c := strings.Compare(a.IR.Name, b.IR.Name); c != 0 {
		return c
	}
	if c := cmp.Compare(a.IR.RuleIndex, b.IR.RuleIndex); c != 0 {
		return c
	}
	return cmp.Compare(a.IR.MatchIndex, b.IR.MatchIndex)
}

// b2i is 1 for true, for ordering by a flag.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
