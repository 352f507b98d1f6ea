package deploytest

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// sameObjects asserts two sets hold the same objects under normalize.
func sameObjects(t *testing.T, aName string, a []obj, bName string, b []obj) {
	t.Helper()
	am, bm := index(t, aName, a), index(t, bName, b)
	for _, k := range sortedKeys(am) {
		if _, ok := bm[k]; !ok {
			t.Errorf("%s has %s, %s does not", aName, k, bName)
		}
	}
	for _, k := range sortedKeys(bm) {
		ao, ok := am[k]
		if !ok {
			t.Errorf("%s has %s, %s does not", bName, k, aName)
			continue
		}
		if diff := cmp.Diff(normalize(ao), normalize(bm[k])); diff != "" {
			t.Errorf("%s differs between %s (-) and %s (+):\n%s", k, aName, bName, diff)
		}
	}
}

// withoutNamespace drops the Namespace object: deploy/base creates
// meshgate-system, the chart is installed into it with
// `-n meshgate-system --create-namespace` and does not create it.
func withoutNamespace(objs []obj) []obj {
	var out []obj
	for _, o := range objs {
		if o["kind"] != "Namespace" {
			out = append(out, o)
		}
	}
	return out
}

func byKind(objs []obj, kind string) []obj {
	var out []obj
	for _, o := range objs {
		if o["kind"] == kind {
			out = append(out, o)
		}
	}
	return out
}

func one(t *testing.T, objs []obj, kind string) obj {
	t.Helper()
	got := byKind(objs, kind)
	if len(got) != 1 {
		t.Fatalf("want one %s, have %d", kind, len(got))
	}
	return got[0]
}

// TestKustomizeBaseIsTheFiles: `kubectl apply -k deploy/base` applies the
// files as written (no transformers), so `kubectl apply -f` of the same files
// gives the same objects.
func TestKustomizeBaseIsTheFiles(t *testing.T) {
	built := kustomize(t, "deploy/base")
	files := append(readDir(t, "deploy/base"), readDir(t, "deploy/base/crds")...)
	sameObjects(t, "deploy/base/*.yaml", files, "kustomize build deploy/base", built)
	for _, o := range built {
		if o["kind"] != "Namespace" && get(o, "metadata", "namespace") != nil && get(o, "metadata", "namespace") != namespace {
			t.Errorf("%s: not in %s", key(o), namespace)
		}
	}
}

// TestHelmDefaultsMatchBase: the chart with its default values renders the
// objects of deploy/base (minus the Namespace), compared under normalize.
func TestHelmDefaultsMatchBase(t *testing.T) {
	base := withoutNamespace(kustomize(t, "deploy/base"))
	sameObjects(t, "deploy/base", base, "helm template (defaults)", mustRender(t, nil))
}

// TestNodePort: the overlay turns the Service into a NodePort Service with
// fixed node ports and changes nothing else; the chart with the matching
// values renders the same objects.
func TestNodePort(t *testing.T) {
	base := kustomize(t, "deploy/base")
	overlay := kustomize(t, "deploy/overlays/nodeport")

	svc := one(t, overlay, "Service")
	if got := get(svc, "spec", "type"); got != "NodePort" {
		t.Errorf("overlay Service type = %v, want NodePort", got)
	}
	if got := get(svc, "spec", "externalTrafficPolicy"); got != "Local" {
		t.Errorf("overlay Service externalTrafficPolicy = %v, want Local", got)
	}
	nodePorts := map[string]float64{}
	for _, p := range get(svc, "spec", "ports").([]any) {
		pm := p.(obj)
		if np, ok := pm["nodePort"].(float64); ok {
			nodePorts[str(pm["name"])] = np
		}
		if pm["protocol"] != "TCP" || pm["targetPort"] == nil {
			t.Errorf("overlay Service port %v lost fields of the base: %v", pm["name"], pm)
		}
	}
	if !reflect.DeepEqual(nodePorts, map[string]float64{"http": 30080, "https": 30443}) {
		t.Errorf("overlay node ports = %v, want http 30080, https 30443", nodePorts)
	}
	// Everything but the Service is the base, unchanged.
	var rest []obj
	for _, o := range overlay {
		if o["kind"] != "Service" {
			rest = append(rest, o)
		}
	}
	var baseRest []obj
	for _, o := range base {
		if o["kind"] != "Service" {
			baseRest = append(baseRest, o)
		}
	}
	sameObjects(t, "deploy/base", baseRest, "deploy/overlays/nodeport", rest)

	// The chart: service.type=NodePort alone changes the type only...
	plain := one(t, mustRender(t, map[string]any{"service": map[string]any{"type": "NodePort"}}), "Service")
	if got := get(plain, "spec", "type"); got != "NodePort" {
		t.Errorf("helm service.type=NodePort: Service type = %v", got)
	}
	for _, p := range get(plain, "spec", "ports").([]any) {
		if _, ok := p.(obj)["nodePort"]; ok {
			t.Errorf("helm service.type=NodePort without nodePorts set a nodePort: %v", p)
		}
	}
	// ...and with the overlay's node ports it renders the overlay.
	helm := mustRender(t, map[string]any{"service": map[string]any{
		"type":      "NodePort",
		"nodePorts": map[string]any{"http": 30080, "https": 30443},
	}})
	sameObjects(t, "deploy/overlays/nodeport", withoutNamespace(overlay), "helm template (service.type=NodePort)", helm)
}

// TestHelmValues: the switches in values.yaml do what they say, and the chart
// refuses what cannot work.
func TestHelmValues(t *testing.T) {
	objs := mustRender(t, map[string]any{
		"installCRDs":         false,
		"gatewayClass":        map[string]any{"create": false},
		"trustedProxies":      []any{"10.0.0.0/8", "192.168.0.0/16"},
		"extraArgs":           []any{"--log-level=debug"},
		"service":             map[string]any{"type": "ClusterIP"},
		"podDisruptionBudget": map[string]any{"enabled": false},
	})
	for _, kind := range []string{"CustomResourceDefinition", "GatewayClass", "PodDisruptionBudget"} {
		if n := len(byKind(objs, kind)); n != 0 {
			t.Errorf("%s rendered %d times although turned off", kind, n)
		}
	}
	if _, ok := get(one(t, objs, "Service"), "spec", "externalTrafficPolicy").(string); ok {
		t.Error("ClusterIP Service has externalTrafficPolicy")
	}
	args := containerArgs(t, one(t, objs, "Deployment"))
	for _, want := range []string{"--trusted-proxies=10.0.0.0/8,192.168.0.0/16", "--log-level=debug"} {
		if !contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}

	other := mustRender(t, map[string]any{"gatewayClass": map[string]any{"controllerName": "example.com/other"}})
	if args := containerArgs(t, one(t, other, "Deployment")); !contains(args, "--controller-name=example.com/other") {
		t.Errorf("custom controllerName not passed: %q", args)
	}

	single := mustRender(t, map[string]any{"replicas": 1, "leaderElection": map[string]any{"enabled": false}})
	for _, r := range byKind(single, "Role") {
		if get(r, "metadata", "name") != "meshgate-acme" {
			t.Errorf("leader election off still renders Role %s", get(r, "metadata", "name"))
		}
	}
	if args := containerArgs(t, one(t, single, "Deployment")); contains(args, "--leader-elect") {
		t.Errorf("leader election off still passes --leader-elect: %q", args)
	}

	for name, vals := range map[string]map[string]any{
		"replicas 2 without leader election": {"leaderElection": map[string]any{"enabled": false}},
		"unknown service type":               {"service": map[string]any{"type": "ExternalName"}},
	} {
		if _, err := helmRender(t, vals); err == nil {
			t.Errorf("%s: rendered, want an error", name)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestCRDCopies: deploy/base/crds and the chart's files/crds are exact copies
// of api/crds (deploy/sync-crds.sh), and the generated kustomization lists
// exactly them.
func TestCRDCopies(t *testing.T) {
	r := root(t)
	src, _ := filepath.Glob(filepath.Join(r, "api", "crds", "*.yaml"))
	if len(src) == 0 {
		t.Fatalf("no CRDs in api/crds/*.yaml: run `make generate`, then deploy/sync-crds.sh")
	}
	var names []string
	for _, f := range src {
		names = append(names, filepath.Base(f))
	}
	for _, dir := range []string{"deploy/base/crds", "deploy/helm/meshgate/files/crds"} {
		copies, _ := filepath.Glob(filepath.Join(r, dir, "*.yaml"))
		var have []string
		for _, f := range copies {
			if b := filepath.Base(f); b != "kustomization.yaml" {
				have = append(have, b)
			}
		}
		if !reflect.DeepEqual(have, names) {
			t.Errorf("%s holds %v, api/crds holds %v: run deploy/sync-crds.sh", dir, have, names)
			continue
		}
		for _, n := range names {
			want, _ := os.ReadFile(filepath.Join(r, "api", "crds", n))
			got, _ := os.ReadFile(filepath.Join(r, dir, n))
			if string(want) != string(got) {
				t.Errorf("%s/%s differs from api/crds/%s: run deploy/sync-crds.sh", dir, n, n)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(r, "deploy", "base", "crds", "kustomization.yaml"))
	if err != nil {
		t.Fatalf("%v: run deploy/sync-crds.sh", err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(k.Resources, names) {
		t.Errorf("deploy/base/crds/kustomization.yaml lists %v, want %v: run deploy/sync-crds.sh", k.Resources, names)
	}
	// Every CRD is in the base build (and so, by TestHelmDefaultsMatchBase,
	// in the chart).
	if n := len(byKind(kustomize(t, "deploy/base"), "CustomResourceDefinition")); n != len(names) {
		t.Errorf("kustomize build deploy/base has %d CRDs, want %d", n, len(names))
	}
}
