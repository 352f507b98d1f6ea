package router

import (
	"testing"

	"github.com/meshgate/meshgate/ir"
)

// TestMisdirected follows the Gateway API conformance cases for HTTPS
// listeners sharing a port: a Host that picks another listener than the SNI
// did is misdirected; a Host no listener claims falls to the catch-all.
func TestMisdirected(t *testing.T) {
	l := &ir.Listener{Name: "l", Address: "0.0.0.0:443", Protocol: ir.ProtocolHTTPS, Hosts: []*ir.ListenerHost{
		{Name: "gw/any"},
		{Name: "gw/second", Hostname: "second-example.org"},
		{Name: "gw/wild", Hostname: "*.wildcard.org"},
		{Name: "gw/fourth", Hostname: "fourth-example.wildcard.org"},
	}}
	tbl, err := Compile(l)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sni, host string
		want      bool
	}{
		{"example.org", "example.org", false},
		{"example.org", "second-example.org", true},
		{"example.org", "unknown-example.org", false},
		{"second-example.org", "second-example.org:443", false},
		{"second-example.org", "example.org", true},
		{"second-example.org", "unknown-example.org", true},
		{"third-example.wildcard.org", "fith-example.wildcard.org", false},
		{"third-example.wildcard.org", "fourth-example.wildcard.org", true},
		{"fourth-example.wildcard.org", "FOURTH-example.wildcard.org.", false},
		{"fourth-example.wildcard.org", "fith-example.wildcard.org", true},
		{"unknown-example.org", "example.org", false},
		{"", "second-example.org", false},
	}
	for _, tc := range tests {
		if got := tbl.Misdirected(tc.sni, tc.host); got != tc.want {
			t.Errorf("Misdirected(sni %q, host %q) = %v, want %v", tc.sni, tc.host, got, tc.want)
		}
	}
}
