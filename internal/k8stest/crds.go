package k8stest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"
	"unicode"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

const (
	gatewayAPIModule = "sigs.k8s.io/gateway-api"
	// gatewayAPIVersion is used when the test binary carries no build info
	// for the module; normally the version linked into the binary wins, so
	// the CRDs always match the Go types in the scheme.
	gatewayAPIVersion = "v1.6.3"
	moduleName        = "github.com/meshgate/meshgate"
)

// GatewayAPICRDDir returns the directory holding the experimental-channel
// Gateway API CRDs of the gateway-api module version this binary is built
// with, in the Go module cache.
func GatewayAPICRDDir() (string, error) {
	version := gatewayAPIVersion
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path != gatewayAPIModule {
				continue
			}
			if m.Replace != nil {
				if filepath.IsAbs(m.Replace.Path) || strings.HasPrefix(m.Replace.Path, ".") {
					return filepath.Join(m.Replace.Path, "config", "crd", "experimental"), nil
				}
				version = m.Replace.Version
			} else if m.Version != "" && m.Version != "(devel)" {
				version = m.Version
			}
		}
	}
	modcache, err := goModCache()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(modcache, escapeModulePath(gatewayAPIModule)+"@"+version, "config", "crd", "experimental")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("gateway API CRDs not found (%v); run `go mod download %s@%s`", err, gatewayAPIModule, version)
	}
	return dir, nil
}

func goModCache() (string, error) {
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d, nil
	}
	if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); d != "" {
			return d, nil
		}
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		return filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot locate the Go module cache: %w", err)
	}
	return filepath.Join(home, "go", "pkg", "mod"), nil
}

// escapeModulePath applies the module cache's case encoding ("A" -> "!a").
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			b.WriteRune(unicode.ToLower(r))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// RepoRoot returns the root of the Meshgate checkout, found by walking up
// from the working directory (a test's package directory) to its go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+moduleName+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", moduleName)
		}
		dir = parent
	}
}

// crdFiles lists the manifests Options.CRDs installs: the Gateway API
// experimental bundle (every file its kustomization names, including the
// safe-upgrades ValidatingAdmissionPolicy) and api/crds/*.yaml.
func crdFiles() ([]string, error) {
	gwDir, err := GatewayAPICRDDir()
	if err != nil {
		return nil, err
	}
	var files []string
	kust, err := os.ReadFile(filepath.Join(gwDir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(kust, &k); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", gwDir, err)
	}
	if len(k.Resources) == 0 {
		return nil, fmt.Errorf("%s/kustomization.yaml lists no resources", gwDir)
	}
	for _, r := range k.Resources {
		files = append(files, filepath.Join(gwDir, r))
	}

	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	own, err := filepath.Glob(filepath.Join(root, "api", "crds", "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(own) == 0 {
		return nil, fmt.Errorf("no CRDs in %s/api/crds", root)
	}
	sort.Strings(own)
	return append(files, own...), nil
}

// readManifests decodes every YAML document of the files.
func readManifests(files []string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if len(m) == 0 {
				continue
			}
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
	return objs, nil
}

// InstallManifests creates every object of the YAML files (objects that
// already exist are left alone) and waits until each CustomResourceDefinition
// among them is Established.
func InstallManifests(ctx context.Context, c client.Client, files ...string) error {
	objs, err := readManifests(files)
	if err != nil {
		return err
	}
	var crds []string
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o.GetName())
		}
	}
	for _, name := range crds {
		if err := waitEstablished(ctx, c, name); err != nil {
			return err
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, c client.Client, name string) error {
	for {
		var crd apiextensionsv1.CustomResourceDefinition
		err := c.Get(ctx, client.ObjectKey{Name: name}, &crd)
		if err == nil {
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not Established: %w (last error: %v)", name, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
