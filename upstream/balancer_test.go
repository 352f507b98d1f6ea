package upstream

import (
	"testing"

	"github.com/meshgate/meshgate/ir"
)

func TestBalancerPick(t *testing.T) {
	tests := []struct {
		name      string
		endpoints []string
		picks     int
		want      map[string]int
	}{
		{name: "no endpoints", picks: 3, want: map[string]int{}},
		{name: "one endpoint", endpoints: []string{"a:1"}, picks: 3, want: map[string]int{"a:1": 3}},
		{name: "even spread", endpoints: []string{"a:1", "b:1", "c:1"}, picks: 9, want: map[string]int{"a:1": 3, "b:1": 3, "c:1": 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var bl Balancer
			b := &ir.Backend{Name: "backend/default/x"}
			for _, e := range tc.endpoints {
				b.Endpoints = append(b.Endpoints, ir.Endpoint{Address: e})
			}
			got := map[string]int{}
			for i := 0; i < tc.picks; i++ {
				if ep := bl.Pick(b); ep != nil {
					got[ep.Address]++
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("endpoint %s picked %d times, want %d", k, got[k], v)
				}
			}
		})
	}
}

func TestBalancerStateSurvivesNewConfig(t *testing.T) {
	var bl Balancer
	mk := func() *ir.Backend {
		return &ir.Backend{Name: "backend/default/x", Endpoints: []ir.Endpoint{{Address: "a:1"}, {Address: "b:1"}}}
	}
	first := bl.Pick(mk()).Address
	// A reload builds a new *ir.Backend with the same name: rotation goes on.
	if second := bl.Pick(mk()).Address; second == first {
		t.Fatalf("rotation restarted after reload: %s twice", first)
	}
}
