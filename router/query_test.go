package router

import (
	"net/http"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/ir"
)

// TestAmbiguousQueryNeverMatches: a query condition does not match a query
// a backend could read differently.
func TestAmbiguousQueryNeverMatches(t *testing.T) {
	m, err := compileMatch(&ir.Match{
		Path:        ir.PathMatch{Type: ir.PathPrefix, Value: "/"},
		QueryParams: []ir.StringMatch{{Type: ir.MatchExact, Name: "role", Value: "user"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query string
		want  bool
	}{
		{"role=user", true},
		{"a=1&role=user", true},
		{"role=user;role=admin", false},
		{"a=%zz&role=user", false},
		{"a=%4&role=user", false},
		{strings.Repeat("x=1&", 1000) + "role=user", false},
		{strings.Repeat("x=1&", 998) + "role=user", true},
	} {
		r, _ := http.NewRequest("GET", "http://h/", nil)
		r.URL.RawQuery = tc.query
		if got := m.matches(r); got != tc.want {
			t.Errorf("query %.40q: match %v, want %v", tc.query, got, tc.want)
		}
	}
}
