// Package deploytest checks the files under deploy/: the kustomize base and
// overlay, the Helm chart and the CRD copies. It is its own module so that
// Helm and kustomize stay out of the gateway's go.mod:
//
//	cd deploy/test && go test -count=1 ./...
package deploytest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const (
	namespace   = "meshgate-system"
	releaseName = "meshgate"
)

// obj is one Kubernetes object as sigs.k8s.io/yaml decodes it (numbers are
// float64, the same for every source, so objects compare with DeepEqual).
type obj = map[string]any

// root is the repository root (this file is in deploy/test).
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// parseDocs splits a multi-document YAML stream and decodes each non-empty
// document.
func parseDocs(t *testing.T, name string, data []byte) []obj {
	t.Helper()
	var out []obj
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var o obj
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(o) > 0 {
			out = append(out, o)
		}
	}
}

// key identifies an object: apiVersion, kind, namespace and name.
func key(o obj) string {
	md, _ := o["metadata"].(obj)
	return fmt.Sprintf("%v %v %v/%v", o["apiVersion"], o["kind"], md["namespace"], md["name"])
}

func str(v any) string { s, _ := v.(string); return s }

// get walks nested maps; nil when a step is missing.
func get(o any, path ...string) any {
	for _, p := range path {
		m, ok := o.(obj)
		if !ok {
			return nil
		}
		o = m[p]
	}
	return o
}

// index maps objects by key and fails on duplicates.
func index(t *testing.T, what string, objs []obj) map[string]obj {
	t.Helper()
	m := make(map[string]obj, len(objs))
	for _, o := range objs {
		k := key(o)
		if _, dup := m[k]; dup {
			t.Fatalf("%s: %s appears twice", what, k)
		}
		m[k] = o
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// --- kustomize ---

// kustomize builds a kustomization directory (relative to the repository
// root) with kustomize's default options, as `kubectl apply -k` would.
func kustomize(t *testing.T, dir string) []obj {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root(t), dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []obj
	for _, r := range rm.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatalf("kustomize build %s: %v", dir, err)
		}
		// Round-trip through YAML so types match the other sources.
		b, err := yaml.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, parseDocs(t, dir, b)...)
	}
	return out
}

// readDir decodes every *.yaml file of a directory except kustomization.yaml.
func readDir(t *testing.T, dir string) []obj {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root(t), dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []obj
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, parseDocs(t, f, b)...)
	}
	return out
}

// --- Helm ---

// helmRender renders deploy/helm/meshgate as `helm install meshgate -n
// meshgate-system` would, with the given values over values.yaml. Strict
// mode: a template naming a value that values.yaml lacks is an error.
func helmRender(t *testing.T, vals map[string]any) ([]obj, error) {
	t.Helper()
	chrt, err := loader.Load(filepath.Join(root(t), "deploy", "helm", "meshgate"))
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	if vals == nil {
		vals = map[string]any{}
	}
	rv, err := chartutil.ToRenderValues(chrt, vals, chartutil.ReleaseOptions{
		Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Engine{Strict: true}.Render(chrt, rv)
	if err != nil {
		return nil, err
	}
	var out []obj
	for _, name := range sortedKeys(files) {
		if !strings.HasSuffix(name, ".yaml") {
			continue // NOTES.txt, _helpers.tpl
		}
		out = append(out, parseDocs(t, name, []byte(files[name]))...)
	}
	return out, nil
}

func mustRender(t *testing.T, vals map[string]any) []obj {
	t.Helper()
	objs, err := helmRender(t, vals)
	if err != nil {
		t.Fatalf("helm render: %v", err)
	}
	return objs
}

// helmLabels are the labels the chart adds for Helm's own bookkeeping.
var helmLabels = []string{
	"helm.sh/chart",
	"app.kubernetes.io/managed-by",
	"app.kubernetes.io/instance",
	"app.kubernetes.io/version",
}

// normalize is the comparison rule between the chart and deploy/base:
// in the object's metadata and its pod template's metadata (the only
// metadata a chart decorates), the four Helm bookkeeping labels and every
// annotation whose key starts with "helm.sh/" (resource-policy on the CRDs)
// are removed, and a labels or annotations map left empty is dropped.
// Everything else, selectors and matchLabels included, must be identical.
func normalize(o obj) obj {
	var c obj
	b, _ := yaml.Marshal(o)
	_ = yaml.Unmarshal(b, &c)
	for _, md := range []any{get(c, "metadata"), get(c, "spec", "template", "metadata")} {
		m, ok := md.(obj)
		if !ok {
			continue
		}
		if labels, ok := m["labels"].(obj); ok {
			for _, l := range helmLabels {
				delete(labels, l)
			}
			if len(labels) == 0 {
				delete(m, "labels")
			}
		}
		if ann, ok := m["annotations"].(obj); ok {
			for k := range ann {
				if strings.HasPrefix(k, "helm.sh/") {
					delete(ann, k)
				}
			}
			if len(ann) == 0 {
				delete(m, "annotations")
			}
		}
	}
	return c
}
