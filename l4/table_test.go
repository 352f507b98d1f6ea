package l4

import (
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func routeAt(name string, rule int, age time.Duration, hostnames ...string) *ir.L4Route {
	r := l4Route(name, hostnames, weighted(1, irBackend("svc/"+name)))
	r.RuleIndex = rule
	r.CreationTimestamp = epoch.Add(-age)
	return r
}

func routeName(rt *route) string {
	if rt == nil {
		return "<none>"
	}
	return rt.id()
}

func TestCompileTCPPicksOneRoute(t *testing.T) {
	tests := []struct {
		name   string
		routes [][]*ir.L4Route // per listener host
		want   string
	}{
		{"none", nil, "<none>"},
		{"single", [][]*ir.L4Route{{routeAt("ns/a", 0, 0)}}, "ns/a#0"},
		{"oldest wins across hosts", [][]*ir.L4Route{
			{routeAt("ns/a", 0, time.Hour)},
			{routeAt("ns/b", 0, 2*time.Hour)},
		}, "ns/b#0"},
		{"then name", [][]*ir.L4Route{{routeAt("ns/b", 0, 0), routeAt("ns/a", 1, 0)}}, "ns/a#1"},
		{"then rule", [][]*ir.L4Route{{routeAt("ns/a", 2, 0), routeAt("ns/a", 1, 0)}}, "ns/a#1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []ir.Protocol{ir.ProtocolTCP, ir.ProtocolUDP} {
				l := &ir.Listener{Name: "x", Protocol: p}
				for i, rs := range tc.routes {
					l.Hosts = append(l.Hosts, &ir.ListenerHost{Name: "h" + string(rune('0'+i)), L4Routes: rs})
				}
				_, rt := mustCompile(t, l).match("ignored.example.com")
				if got := routeName(rt); got != tc.want {
					t.Errorf("%s: got %s, want %s", p, got, tc.want)
				}
			}
		})
	}
}

func TestCompileTLSMatch(t *testing.T) {
	l := streamListener(ir.ProtocolTLS,
		&ir.ListenerHost{Name: "any", TLSMode: ir.TLSPassthrough, L4Routes: []*ir.L4Route{
			routeAt("ns/catchall", 0, 0),
			routeAt("ns/a", 0, 0, "a.example.com"),
			routeAt("ns/young-wild", 0, time.Minute, "*.example.com"),
			routeAt("ns/old-wild", 0, time.Hour, "*.example.com"),
			routeAt("ns/deep", 0, 0, "*.eu.example.com"),
		}},
		&ir.ListenerHost{Name: "wild", Hostname: "*.Wild.test", TLSMode: ir.TLSPassthrough, L4Routes: []*ir.L4Route{
			routeAt("ns/w", 0, 0),
		}},
		&ir.ListenerHost{Name: "exact", Hostname: "exact.wild.test", TLSMode: ir.TLSPassthrough, L4Routes: []*ir.L4Route{
			routeAt("ns/named-only", 0, 0, "other.wild.test"),
		}},
		// Same hostname as "wild": merged, its routes join.
		&ir.ListenerHost{Name: "wild2", Hostname: "*.wild.test", TLSMode: ir.TLSTerminate, L4Routes: []*ir.L4Route{
			routeAt("ns/w2", 0, 0, "z.wild.test"),
		}},
		&ir.ListenerHost{Name: "term", Hostname: "secure.example.org", TLSMode: ir.TLSTerminate, L4Routes: []*ir.L4Route{
			routeAt("ns/s", 0, 0),
		}},
	)
	l.Certificates = []*ir.Certificate{selfSigned(t, "secure.example.org").ir}
	tbl := mustCompile(t, l)
	tests := []struct{ sni, host, route string }{
		{"a.example.com", "any", "ns/a#0"},
		{"A.Example.COM.", "any", "ns/a#0"},
		{"b.example.com", "any", "ns/old-wild#0"},
		{"x.y.example.com", "any", "ns/old-wild#0"},
		{"x.eu.example.com", "any", "ns/deep#0"},
		{"example.com", "any", "ns/catchall#0"},
		{"", "any", "ns/catchall#0"},
		{"wild.test", "any", "ns/catchall#0"},
		{"x.wild.test", "wild,wild2", "ns/w#0"},
		{"z.wild.test", "wild,wild2", "ns/w2#0"},
		{"a.b.wild.test", "wild,wild2", "ns/w#0"},
		// The most specific host wins even without a route for the name:
		// no fallback to a less specific host.
		{"exact.wild.test", "exact", "<none>"},
		{"secure.example.org", "term", "ns/s#0"},
	}
	for _, tc := range tests {
		t.Run(tc.sni, func(t *testing.T) {
			vh, rt := tbl.match(tc.sni)
			if vh == nil {
				t.Fatalf("no host for %q", tc.sni)
			}
			if vh.name != tc.host {
				t.Errorf("host %s, want %s", vh.name, tc.host)
			}
			if got := routeName(rt); got != tc.route {
				t.Errorf("route %s, want %s", got, tc.route)
			}
		})
	}
	if vh, _ := tbl.match("secure.example.org"); vh.mode != ir.TLSTerminate {
		t.Errorf("host mode %s, want Terminate", vh.mode)
	}
	if vh, _ := tbl.match("x.wild.test"); vh.mode != ir.TLSPassthrough {
		t.Errorf("merged host mode %s, want the first host's Passthrough", vh.mode)
	}
	if tbl.tlsConfig == nil || len(tbl.tlsConfig.NextProtos) != 0 {
		t.Errorf("terminate config %+v: want one without ALPN", tbl.tlsConfig)
	}
}

func TestCompileTLSMissingSNI(t *testing.T) {
	named := streamListener(ir.ProtocolTLS, &ir.ListenerHost{Name: "h", TLSMode: ir.TLSPassthrough,
		L4Routes: []*ir.L4Route{routeAt("ns/a", 0, 0, "a.example.com")}})
	if vh, rt := mustCompile(t, named).match(""); vh == nil || rt != nil {
		t.Errorf("no SNI: host %v route %v; want the \"\" host and no route", vh, rt)
	}
	hostOnly := streamListener(ir.ProtocolTLS, &ir.ListenerHost{Name: "h", Hostname: "a.example.com",
		TLSMode: ir.TLSPassthrough, L4Routes: []*ir.L4Route{routeAt("ns/a", 0, 0)}})
	if vh, _ := mustCompile(t, hostOnly).match(""); vh != nil {
		t.Errorf("no SNI matched host %s; want none", vh.name)
	}
}

func TestCompileErrors(t *testing.T) {
	bad := selfSigned(t, "bad.example.com").ir
	bad.KeyPEM = []byte("not a key")
	tests := []struct {
		name string
		l    *ir.Listener
		want string
	}{
		{"nil", nil, "nil listener"},
		{"http", &ir.Listener{Name: "x", Protocol: ir.ProtocolHTTP}, "not TCP, TLS or UDP"},
		{"unknown mode", streamListener(ir.ProtocolTLS, &ir.ListenerHost{Name: "h", TLSMode: "Sideways"}), "unknown TLS mode"},
		{"terminate without certs", streamListener(ir.ProtocolTLS, &ir.ListenerHost{Name: "h", TLSMode: ir.TLSTerminate}), "without certificates"},
		{"empty mode is terminate", streamListener(ir.ProtocolTLS, &ir.ListenerHost{Name: "h"}), "without certificates"},
		{"bad certificate", &ir.Listener{Name: "x", Protocol: ir.ProtocolTLS, Certificates: []*ir.Certificate{bad},
			Hosts: []*ir.ListenerHost{{Name: "h", TLSMode: ir.TLSTerminate}}}, "bad.example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.l)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestRouteBackendByWeight(t *testing.T) {
	a, b, c := irBackend("a"), irBackend("b"), irBackend("c")
	rt := newRoute(l4Route("r", nil, weighted(3, a), weighted(0, b), weighted(1, c), weighted(-5, b)), "h")
	want := []string{"a", "a", "a", "c"}
	for v, name := range want {
		wb, ok := rt.backend(func(n int64) int64 {
			if n != 4 {
				t.Fatalf("total weight %d, want 4", n)
			}
			return int64(v)
		})
		if !ok || wb.Target.Name != name {
			t.Errorf("value %d: got %v, want %s", v, wb, name)
		}
	}
	for _, r := range []*ir.L4Route{
		l4Route("none", nil),
		l4Route("zeros", nil, weighted(0, a), weighted(0, b)),
	} {
		if _, ok := newRoute(r, "h").backend(func(int64) int64 { return 0 }); ok {
			t.Errorf("%s: picked a backend", r.Name)
		}
	}
}
