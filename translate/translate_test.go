package translate

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/ir"
)

var update = flag.Bool("update", false, "rewrite testdata/*.out.yaml from the current output")

// golden is what an .out.yaml file holds.
type golden struct {
	Config   *ir.Config     `json:"config"`
	Statuses []ObjectStatus `json:"statuses"`
}

func loadCase(t testing.TB, in string) *config.Snapshot {
	t.Helper()
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	s, err := config.Parse(filepath.Base(in), data)
	if err != nil {
		t.Fatalf("parse %s: %v", in, err)
	}
	return s
}

func marshal(t testing.TB, r *Result) string {
	t.Helper()
	b, err := yaml.Marshal(golden{Config: r.Config, Statuses: r.Statuses})
	if err != nil {
		t.Fatalf("marshal result: %v", err)
	}
	return string(b)
}

func inputs(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.in.yaml")
	}
	return files
}

// TestGolden translates each testdata/<case>.in.yaml and compares the result
// with <case>.out.yaml. Run `go test ./translate -update` to rewrite the
// outputs, then review the diff.
func TestGolden(t *testing.T) {
	for _, in := range inputs(t) {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := marshal(t, Translate(loadCase(t, in), Options{}))
			out := strings.TrimSuffix(in, ".in.yaml") + ".out.yaml"
			if *update {
				if err := os.WriteFile(out, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s differs (-want +got; run with -update to accept):\n%s", out, diff)
			}
		})
	}
}

// TestDeterministic checks that the order of objects in the snapshot does
// not change the output, since providers list objects in arbitrary order.
func TestDeterministic(t *testing.T) {
	for _, in := range inputs(t) {
		t.Run(strings.TrimSuffix(filepath.Base(in), ".in.yaml"), func(t *testing.T) {
			t.Parallel()
			s := loadCase(t, in)
			want := marshal(t, Translate(s, Options{}))
			r := loadCase(t, in)
			slices.Reverse(r.GatewayClasses)
			slices.Reverse(r.Gateways)
			slices.Reverse(r.ListenerSets)
			slices.Reverse(r.HTTPRoutes)
			slices.Reverse(r.ReferenceGrants)
			slices.Reverse(r.Services)
			slices.Reverse(r.EndpointSlices)
			slices.Reverse(r.Secrets)
			slices.Reverse(r.Namespaces)
			slices.Reverse(r.Backends)
			if got := marshal(t, Translate(r, Options{})); got != want {
				t.Errorf("output depends on input order:\n%s", cmp.Diff(want, got))
			}
		})
	}
}

func TestTranslateNilAndEmpty(t *testing.T) {
	for _, s := range []*config.Snapshot{nil, {}} {
		r := Translate(s, Options{})
		if r.Config == nil || len(r.Config.Listeners) != 0 || len(r.Statuses) != 0 {
			t.Errorf("Translate(%v) = %+v, want an empty config and no statuses", s, r)
		}
	}
}

// TestCertificatePEM checks what the golden files cannot show: the PEM
// blocks reach the ir.
func TestCertificatePEM(t *testing.T) {
	r := Translate(loadCase(t, "testdata/https_valid_cert.in.yaml"), Options{})
	var n int
	for _, l := range r.Config.Listeners {
		for _, c := range l.Certificates {
			n++
			if !strings.Contains(string(c.CertPEM), "BEGIN CERTIFICATE") || !strings.Contains(string(c.KeyPEM), "PRIVATE KEY") {
				t.Errorf("certificate %s has no PEM data", c.Name)
			}
		}
	}
	if n == 0 {
		t.Fatal("no certificate in the config")
	}
}

func TestOptions(t *testing.T) {
	s := loadCase(t, "testdata/basic.in.yaml")
	r := Translate(s, Options{ControllerName: "example.com/other"})
	if len(r.Config.Listeners) != 0 {
		t.Errorf("a GatewayClass of another controller produced listeners: %+v", r.Config.Listeners)
	}
	for _, st := range r.Statuses {
		if (st.Kind == "Gateway" || st.Kind == "GatewayClass" || st.Kind == "HTTPRoute") && !st.Ignored {
			t.Errorf("%s %s/%s not ignored under another controller name", st.Kind, st.Namespace, st.Name)
		}
	}
	r = Translate(s, Options{DefaultAddress: "::"})
	if len(r.Config.Listeners) != 1 || r.Config.Listeners[0].Address != "[::]:80" {
		t.Errorf("DefaultAddress :: gave listeners %+v, want [::]:80", r.Config.Listeners)
	}
}

func TestIntersectHostname(t *testing.T) {
	t.Parallel()
	tests := []struct {
		listener, route string
		want            string
		ok              bool
	}{
		{"", "", "", true},
		{"", "a.example.com", "a.example.com", true},
		{"a.example.com", "", "a.example.com", true},
		{"a.example.com", "a.example.com", "a.example.com", true},
		{"a.example.com", "b.example.com", "", false},
		{"*.example.com", "a.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", "", false},
		{"a.example.com", "*.example.com", "a.example.com", true},
		{"example.com", "*.example.com", "", false},
		{"*.example.com", "*.b.example.com", "*.b.example.com", true},
		{"*.b.example.com", "*.example.com", "*.b.example.com", true},
		{"*.example.com", "*.example.net", "", false},
		{"*.example.com", "xexample.com", "", false},
		{"*.example.com", "a.xexample.com", "", false},
	}
	for _, tt := range tests {
		got, ok := intersectHostname(tt.listener, tt.route)
		if got != tt.want || ok != tt.ok {
			t.Errorf("intersectHostname(%q, %q) = %q, %v; want %q, %v", tt.listener, tt.route, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCheckPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path string
		ok   bool
	}{
		{"/", true},
		{"/foo/bar", true},
		{"/foo/", true},
		{"/a-b_c.d~e%20", true},
		{"foo", false},
		{"", false},
		{"/foo//bar", false},
		{"/foo/./bar", false},
		{"/foo/../bar", false},
		{"/foo/..", false},
		{"/foo/.", false},
		{"/foo%2fbar", false},
		{"/foo#frag", false},
		{"/foo?q=1", false},
		{"/foo bar", false},
	}
	for _, tt := range tests {
		if err := checkPath(tt.path); (err == nil) != tt.ok {
			t.Errorf("checkPath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
		}
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"10s", 10 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"500ms", 500 * time.Millisecond, true},
		{"0s", TimeoutDisabled, true},
		{"0ms", TimeoutDisabled, true},
		{"1.5s", 0, false},
		{"-1s", 0, false},
		{"10", 0, false},
		{"100000s", 0, false},
		{"1us", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := parseDuration(gwapiv1.Duration(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestAddrsOverlap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
	}{
		{"0.0.0.0", "10.0.0.1", true},
		{"10.0.0.1", "0.0.0.0", true},
		{"::", "10.0.0.1", true},
		{"::", "::1", true},
		{"0.0.0.0", "::1", false},
		{"10.0.0.1", "10.0.0.2", false},
		{"10.0.0.1", "10.0.0.1", false},
	}
	for _, tt := range tests {
		if got := addrsOverlap(tt.a, tt.b); got != tt.want {
			t.Errorf("addrsOverlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// FuzzTranslate feeds arbitrary manifests through the loader and the
// translator, which must never panic. It calls translate, not Translate, so
// the recover in Translate does not hide a panic.
func FuzzTranslate(f *testing.F) {
	for _, in := range inputs(f) {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := config.Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		r := translate(s, Options{})
		if _, err := yaml.Marshal(golden{Config: r.Config, Statuses: r.Statuses}); err != nil {
			t.Fatalf("marshal: %v", err)
		}
	})
}

// TestAddressPool: with an address pool, Gateways sharing a port get their
// own addresses (no conflict), the same whatever the snapshot order, and a
// Gateway with spec.addresses keeps its own.
func TestAddressPool(t *testing.T) {
	s := loadCase(t, "testdata/gateway_sharing.in.yaml")
	pool := netip.MustParsePrefix("127.10.0.0/16")
	addrs := func(s *config.Snapshot) map[string][]string {
		r := Translate(s, Options{AddressPool: pool})
		out := map[string][]string{}
		for _, st := range r.Statuses {
			if st.Kind == "Gateway" && !st.Ignored {
				out[st.Namespace+"/"+st.Name] = st.Addresses
				for _, c := range st.Conditions {
					if c.Type == "Programmed" && c.Status != "True" && len(st.Addresses) > 0 && pool.Contains(netip.MustParseAddr(st.Addresses[0])) {
						t.Errorf("Gateway %s/%s with a pool address not programmed: %s", st.Namespace, st.Name, c.Message)
					}
				}
			}
		}
		return out
	}
	first := addrs(s)
	if len(first) < 2 {
		t.Fatalf("want several Gateways in the case, got %v", first)
	}
	seen := map[string]string{}
	for gw, a := range first {
		if gw == "team-c/pinned" {
			if !reflect.DeepEqual(a, []string{"10.0.0.7", "2001:db8::7"}) {
				t.Errorf("Gateway with spec.addresses got %v", a)
			}
			continue
		}
		if len(a) != 1 || !pool.Contains(netip.MustParseAddr(a[0])) {
			t.Fatalf("Gateway %s has addresses %v, want one from %s", gw, a, pool)
		}
		if other, dup := seen[a[0]]; dup {
			t.Errorf("Gateways %s and %s share %s", gw, other, a[0])
		}
		seen[a[0]] = gw
	}
	// Reversed order, same answer.
	rev := *s
	rev.Gateways = nil
	for i := len(s.Gateways) - 1; i >= 0; i-- {
		rev.Gateways = append(rev.Gateways, s.Gateways[i])
	}
	if second := addrs(&rev); !reflect.DeepEqual(first, second) {
		t.Errorf("addresses depend on snapshot order:\n%v\n%v", first, second)
	}
}
