package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		// counts of loaded objects by kind
		gateways, routes, backends, secrets int
		rejected                            []string // substrings, one per rejected object, in order
		ignored                             int
		parseErr                            string // want a *ParseError containing this
	}{
		{
			name:     "multi-document with comments and blank documents",
			yaml:     "# top\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {gatewayClassName: c, listeners: [{name: l, port: 80, protocol: HTTP}]}\n---\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: apps}\nspec: {}\n",
			gateways: 1, routes: 1,
		},
		{
			name:     "unknown field names the path",
			yaml:     "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {rulez: []}\n",
			rejected: []string{`t.yaml:1: HTTPRoute default/r: unknown field "spec.rulez"`},
		},
		{
			name:     "wrong type names the field",
			yaml:     "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {listeners: [{port: eighty}]}\n",
			rejected: []string{"spec.listeners.port"},
		},
		{
			name:     "missing name",
			yaml:     "apiVersion: gateway.meshgate.dev/v1alpha1\nkind: Backend\nmetadata: {namespace: x}\nspec: {endpoints: [{address: a, port: 1}]}\n",
			rejected: []string{"metadata.name: required"},
		},
		{
			name:     "Meshgate kind checked against its CRD's OpenAPI schema",
			yaml:     "apiVersion: gateway.meshgate.dev/v1alpha1\nkind: Backend\nmetadata: {name: b}\nspec: {endpoints: []}\n",
			rejected: []string{"t.yaml:1: Backend default/b: spec.endpoints: Invalid value: 0: spec.endpoints in body should have at least 1 items"},
		},
		{
			name:     "Meshgate kind checked against its CRD's limits and CEL rules",
			yaml:     "apiVersion: gateway.meshgate.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p, namespace: apps}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]\n  retry: {attempts: 11}\n  loadBalancer: {type: RingHash}\n",
			rejected: []string{"t.yaml:1: TrafficPolicy apps/p: spec.retry.attempts: Invalid value: 11: spec.retry.attempts in body should be less than or equal to 10; spec.loadBalancer: Invalid value: consistentHash is required for RingHash and Maglev and allowed only with them"},
		},
		{
			name:     "Meshgate kind: unknown field still rejected after validation",
			yaml:     "apiVersion: gateway.meshgate.dev/v1alpha1\nkind: Backend\nmetadata: {name: b}\nspec: {endpoints: [{address: a, port: 1}], weight: 3}\n",
			rejected: []string{`unknown field "spec.weight"`},
		},
		{
			name:     "missing kind",
			yaml:     "apiVersion: v1\nmetadata: {name: x}\n",
			rejected: []string{"apiVersion and kind are required"},
		},
		{
			name:    "unknown kind is ignored, not rejected",
			yaml:    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
			ignored: 1,
		},
		{
			name:     "duplicate object keeps the first",
			yaml:     "apiVersion: gateway.meshgate.dev/v1alpha1\nkind: Backend\nmetadata: {name: b}\nspec: {endpoints: [{address: 127.0.0.1, port: 1}]}\n---\napiVersion: gateway.meshgate.dev/v1alpha1\nkind: Backend\nmetadata: {name: b, namespace: default}\nspec: {endpoints: [{address: 127.0.0.2, port: 2}]}\n",
			backends: 1,
			rejected: []string{"t.yaml:6: Backend default/b: duplicate object; the one at t.yaml:1 is used"},
		},
		{
			name:    "secret stringData merged into data",
			yaml:    "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\nstringData: {tls.crt: abc}\n",
			secrets: 1,
		},
		{
			name:     "syntax error reports absolute line",
			yaml:     "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: [\n",
			parseErr: "t.yaml:",
		},
		{
			name:     "document that is not a mapping",
			yaml:     "- a\n- b\n",
			parseErr: "t.yaml:1: document is not a mapping",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("t.yaml", []byte(tc.yaml))
			if tc.parseErr != "" {
				var pe *ParseError
				if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.parseErr) {
					t.Fatalf("err = %v, want ParseError containing %q", err, tc.parseErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Gateways) != tc.gateways || len(s.HTTPRoutes) != tc.routes || len(s.Backends) != tc.backends || len(s.Secrets) != tc.secrets {
				t.Errorf("loaded gateways=%d routes=%d backends=%d secrets=%d", len(s.Gateways), len(s.HTTPRoutes), len(s.Backends), len(s.Secrets))
			}
			if len(s.Ignored) != tc.ignored {
				t.Errorf("ignored = %v, want %d", s.Ignored, tc.ignored)
			}
			if len(s.Rejected) != len(tc.rejected) {
				t.Fatalf("rejected = %v, want %d", s.Rejected, len(tc.rejected))
			}
			for i, want := range tc.rejected {
				if got := s.Rejected[i].String(); !strings.Contains(got, want) {
					t.Errorf("rejected[%d] = %q, want it to contain %q", i, got, want)
				}
			}
		})
	}
}

func TestParseDefaultsAndSecretData(t *testing.T) {
	s, err := Parse("t.yaml", []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\nstringData: {tls.crt: abc}\ndata: {tls.key: ZGVm}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: c, namespace: ignored}\nspec: {controllerName: x}\n"))
	if err != nil {
		t.Fatal(err)
	}
	sec := s.Secrets[0]
	if sec.Namespace != DefaultNamespace || string(sec.Data["tls.crt"]) != "abc" || string(sec.Data["tls.key"]) != "def" || sec.StringData != nil {
		t.Errorf("secret = ns %q data %q stringData %v", sec.Namespace, sec.Data, sec.StringData)
	}
	if ns := s.GatewayClasses[0].Namespace; ns != "" {
		t.Errorf("cluster-scoped GatewayClass kept namespace %q", ns)
	}
}

func TestParseAppliesCRDDefaults(t *testing.T) {
	s, err := Parse("t.yaml", []byte("apiVersion: gateway.meshgate.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec:\n  targetRefs: [{group: '', kind: Service, name: svc}]\n  retry: {}\n  outlierDetection: {consecutive5xx: 7}\n---\napiVersion: gateway.meshgate.dev/v1alpha1\nkind: FaultInjection\nmetadata: {name: f}\nspec: {abort: {httpStatus: 503, percentage: '0.5'}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Rejected) != 0 || len(s.TrafficPolicies) != 1 || len(s.FaultInjections) != 1 {
		t.Fatalf("rejected %v; loaded %d policies, %d faults", s.Rejected, len(s.TrafficPolicies), len(s.FaultInjections))
	}
	spec := s.TrafficPolicies[0].Spec
	if spec.Retry.Attempts == nil || *spec.Retry.Attempts != 2 {
		t.Errorf("retry.attempts = %v, want the CRD default 2", spec.Retry.Attempts)
	}
	od := spec.OutlierDetection
	if *od.Consecutive5xx != 7 || od.MaxEjectionPercent == nil || *od.MaxEjectionPercent != 50 {
		t.Errorf("outlierDetection = consecutive5xx %d maxEjectionPercent %v, want 7 (set) and 50 (default)", *od.Consecutive5xx, od.MaxEjectionPercent)
	}
	if spec.Retry.Budget != nil {
		t.Errorf("retry.budget = %+v, want unset (defaults apply inside set objects only)", spec.Retry.Budget)
	}
}

func TestLoadPathFolder(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ns := func(n string) string { return "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + n + "}\n" }
	write("a.yaml", ns("a"))
	write("sub/deeper/b.yml", ns("b"))
	write("sub/c.json", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}`)
	write("notes.txt", ns("ignored-extension"))
	write(".hidden/d.yaml", ns("ignored-hidden"))
	s, err := LoadPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range s.Namespaces {
		names = append(names, n.Name)
	}
	if got := strings.Join(names, ","); got != "a,c,b" {
		t.Errorf("namespaces = %s, want a,c,b (lexical file order, recursive, yaml/yml/json only)", got)
	}

	// The loader's digest of the source bytes stands in for the hash.
	again, _ := LoadPath(dir)
	if s.Hash() != again.Hash() || s.Digest == ([32]byte{}) {
		t.Error("same files, different or missing digest")
	}
	write("a.yaml", ns("a2"))
	if changed, _ := LoadPath(dir); changed.Hash() == s.Hash() {
		t.Error("changed file, same hash")
	}
	write("sub/broken.yaml", "kind: [\n")
	if _, err := LoadPath(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "sub/broken.yaml")+":1") {
		t.Errorf("broken file: err = %v, want file:line", err)
	}
	if _, err := LoadPath(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing path: no error")
	}
}

func TestHashStable(t *testing.T) {
	data, err := os.ReadFile("testdata/routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Parse("x", data)
	b, _ := Parse("x", data)
	if a.Hash() != b.Hash() {
		t.Error("same input, different hash")
	}
	c, _ := Parse("x", append(data, []byte("\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: z}\n")...))
	if a.Hash() == c.Hash() {
		t.Error("different input, same hash")
	}
}

// FuzzParse: any bytes either load or fail with an error; never a panic.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/routes.yaml", "../examples/demo/gateway.yaml", "../examples/demo/backends.yaml", "../examples/demo/tls.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("apiVersion: gateway.meshgate.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec:\n  targetRefs: [{group: '', kind: Service, name: s}]\n  retry: {attempts: 3, backoff: {baseInterval: 1s, maxInterval: 2s}}\n  loadBalancer: {type: Maglev, consistentHash: {type: Header, name: x}}\n"))
	f.Add([]byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {a: b}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err == nil {
			_ = s.Hash()
		}
	})
}
