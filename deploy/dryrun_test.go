// Package deploy_test checks the manifests in deploy/ against a real
// kube-apiserver: every object of deploy/base (and the NodePort overlay's
// Service) passes a server-side dry-run apply, which is what
// `kubectl apply --server-side --dry-run=server` does. The Helm chart is
// compared with deploy/base in the nested module deploy/test.
package deploy_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/meshgate/meshgate/internal/k8stest"
)

func TestManifestsDryRunServer(t *testing.T) {
	cp := k8stest.Start(t, k8stest.Options{CRDs: true})
	c := cp.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	files := []string{"base/namespace.yaml", "base/serviceaccount.yaml", "base/rbac.yaml", "base/gatewayclass.yaml",
		"base/service-loadbalancer.yaml", "base/deployment.yaml", "base/pdb.yaml", "overlays/nodeport/service-nodeport.yaml"}
	crds, err := filepath.Glob("base/crds/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range crds {
		if filepath.Base(f) != "kustomization.yaml" {
			files = append(files, f)
		}
	}
	n := 0
	for _, f := range files {
		for i, u := range readObjects(t, f) {
			if u.GetKind() == "Namespace" {
				// Namespaced objects can only be tried in a namespace
				// that exists.
				if err := c.Create(ctx, u.DeepCopy()); err != nil {
					t.Fatalf("%s: create Namespace: %v", f, err)
				}
			}
			if strings.HasSuffix(f, "service-nodeport.yaml") && u.GetKind() == "Kustomization" {
				continue
			}
			err := c.Patch(ctx, u, client.Apply, client.DryRunAll, client.FieldOwner("meshgate-deploy-test"), client.ForceOwnership)
			if err != nil {
				t.Errorf("%s[%d] %s %s: server-side dry run refused it: %v", f, i, u.GetKind(), u.GetName(), err)
			}
			n++
		}
	}
	if n < 10 {
		t.Errorf("only %d objects checked; the manifests moved?", n)
	}
}

// readObjects parses the YAML documents of file. The overlay's Service is
// a strategic-merge patch, not a whole object: it is completed from the
// base Service so the API server sees what kustomize would produce.
func readObjects(t *testing.T, file string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if strings.HasPrefix(file, "overlays/") && u.GetKind() == "Service" {
			base := readObjects(t, "base/service-loadbalancer.yaml")[0]
			spec, _, _ := unstructured.NestedMap(base.Object, "spec")
			patch, _, _ := unstructured.NestedMap(u.Object, "spec")
			for k, v := range patch {
				spec[k] = v
			}
			if spec["type"] != "LoadBalancer" {
				delete(spec, "externalTrafficPolicy")
				delete(spec, "healthCheckNodePort")
			}
			if err := unstructured.SetNestedMap(base.Object, spec, "spec"); err != nil {
				t.Fatal(err)
			}
			u = base
		}
		out = append(out, u)
	}
	return out
}

// TestGatewayAPICRDsMatchModule: deploy/crds/gateway-api is the module's
// experimental bundle, byte for byte (deploy/sync-crds.sh copies it).
func TestGatewayAPICRDsMatchModule(t *testing.T) {
	dir, err := k8stest.GatewayAPICRDDir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("crds/gateway-api/*.yaml")
	if err != nil || len(files) < 10 {
		t.Fatalf("deploy/crds/gateway-api has %d files (%v); run deploy/sync-crds.sh", len(files), err)
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(dir, filepath.Base(f)))
		if err != nil {
			t.Fatalf("%s is not in the module's bundle: %v", f, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the module's copy; run deploy/sync-crds.sh", f)
		}
	}
}
